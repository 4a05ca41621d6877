/**
 * `cattail converge --service NAMESPACE/NAME`: the replicas to ask, from the Service's
 * EndpointSlices (the client library's source, src/client/discovery.ts), by the ops port's name.
 *
 * Unlike an agent choosing where to connect, a barrier must ask EVERY replica that may hold
 * agents: not-ready ones (a stale replica keeps serving its agents) and terminating ones (a
 * draining replica holds agents until the last has moved) included. A replica that is gone by the
 * time it is asked fails the command (REPLICA_FAILED): its agents are unknown.
 */
import { type EndpointSliceLike, kubeEndpointSliceSource, parseServiceRef, sliceEndpoints } from '../client/discovery.js';
import { CattailError } from '../errors.js';

/** `http://address:port` (or https, for replicas run with --http-tls) of every endpoint of the slices, by the named port, deduplicated. */
export function replicaOpsUrls(slices: readonly EndpointSliceLike[], portName: string, scheme: 'http' | 'https' = 'http'): string[] {
  const out = new Set<string>();
  for (const e of sliceEndpoints(slices, portName)) out.add(`${scheme}://${e.host}:${e.port}`);
  return [...out].sort();
}

/**
 * The replicas' ops URLs. Bounded by `timeoutMs` and by `signal`: the read is client-node's, which
 * takes neither, and an API server that accepts the connection and never answers held the command
 * (and a deploy pipeline's barrier) past its --timeout-ms and its first SIGTERM, with no coded error.
 */
export async function discoverReplicas(service: string, portName: string, scheme: 'http' | 'https', kubeconfig: string | undefined, signal: AbortSignal, timeoutMs: number): Promise<string[]> {
  const { namespace, name } = parseServiceRef(service);
  const source = await kubeEndpointSliceSource(kubeconfig);
  const failed = (why: string): CattailError => new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `the EndpointSlices of ${service} ${why}`, { details: { service, timeoutMs } });
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const bounded = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failed(`did not come within ${timeoutMs} ms`)), timeoutMs);
    onAbort = () => reject(failed('were not read: the command was stopped'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  let slices: readonly EndpointSliceLike[];
  try {
    slices = await Promise.race([source.list(namespace, name, signal), bounded]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
  const urls = replicaOpsUrls(slices, portName, scheme);
  if (urls.length === 0) throw new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `service ${service} has no endpoint with a port named ${JSON.stringify(portName)}`, { details: { service, portName } });
  return urls;
}
