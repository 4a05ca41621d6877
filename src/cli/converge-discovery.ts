/**
 * `cattail converge --service NAMESPACE/NAME`: the replicas to ask, from the Service's
 * EndpointSlices (the client library's source, src/client/discovery.ts), by the ops port's name.
 *
 * Unlike an agent choosing where to connect, a barrier must ask EVERY replica that may hold
 * agents: not-ready ones (a stale replica keeps serving its agents) and terminating ones (a
 * draining replica holds agents until the last has moved) included. A replica that is gone by the
 * time it is asked fails the command (REPLICA_FAILED): its agents are unknown.
 */
import { EndpointSliceReader, type EndpointSliceLike, sliceEndpoints } from '../client/discovery.js';
import { realClock } from '../clock.js';
import { CattailError } from '../errors.js';

/** `http://address:port` (or https, for replicas run with --http-tls) of every endpoint of the slices, by the named port, deduplicated. */
export function replicaOpsUrls(slices: readonly EndpointSliceLike[], portName: string, scheme: 'http' | 'https' = 'http'): string[] {
  const out = new Set<string>();
  for (const e of sliceEndpoints(slices, portName)) out.add(`${scheme}://${e.host}:${e.port}`);
  return [...out].sort();
}

/**
 * The replicas' ops URLs. Bounded by `timeoutMs` (the client library's EndpointSliceReader, as for
 * an agent's looks) and by `signal`: the read is client-node's, which takes neither, and an API
 * server that accepts the connection and never answers held the command (and a deploy pipeline's
 * barrier) past its --timeout-ms and its first SIGTERM, with no coded error.
 */
export async function discoverReplicas(service: string, portName: string, scheme: 'http' | 'https', kubeconfig: string | undefined, signal: AbortSignal, timeoutMs: number): Promise<string[]> {
  const reader = new EndpointSliceReader({ service, source: undefined, kubeconfigPath: kubeconfig, timeoutMs, setTimeout: (fn, ms) => realClock.setTimeout(fn, ms) });
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    onAbort = () => reject(new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `the EndpointSlices of ${service} were not read: the command was stopped`, { details: { service } }));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  let slices: readonly EndpointSliceLike[];
  try {
    slices = await Promise.race([reader.read(), stopped]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
  const urls = replicaOpsUrls(slices, portName, scheme);
  if (urls.length === 0) throw new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `service ${service} has no endpoint with a port named ${JSON.stringify(portName)}`, { details: { service, portName } });
  return urls;
}
