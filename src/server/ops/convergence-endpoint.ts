/**
 * GET /v1/convergence on the HTTP port: the convergence barrier over HTTP (the waiting itself is
 * fanout/convergence.ts).
 *
 *   /v1/convergence?resource=networkpolicies&resourceVersion=RV[&timeoutMs=30000][&node=a&node=b]
 *
 * Answers:
 *  - 200 with the report (ConvergenceReport) when every agent in scope has applied RV, and also
 *    200 with `converged: false, timedOut: true` at the timeout: the question was answered, the
 *    answer is "not yet". A status code would lose the laggards to proxies and clients that treat
 *    4xx/5xx as failures, and 408 would invite automatic retries of a request that already waited.
 *  - 400 CATTAIL_CONVERGENCE_BAD_REQUEST for bad parameters (unknown ones included: a typo such
 *    as `rv=` must not turn into "missing" silently).
 *  - 503 CATTAIL_CONVERGENCE_TOO_MANY_WAITERS with Retry-After beyond the waiter cap, or when a
 *    waiting request's scope grows past the agents bound as agents connect.
 * A request whose asker goes away stops waiting (its slot is freed at once).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CattailError } from '../../errors.js';
import { isResourceVersion } from '../../../proto/index.js';
import type { ConvergenceQuery, ConvergenceReport } from '../fanout/convergence.js';

export const CONVERGENCE_PATH = '/v1/convergence';
export const DEFAULT_CONVERGENCE_TIMEOUT_MS = 30_000;
export const MAX_CONVERGENCE_TIMEOUT_MS = 300_000;
/** Beyond a wait's own timeout, how long its socket may stay silent before the port's idle timeout cuts it (ms). */
const CONVERGENCE_TIMEOUT_SLACK_MS = 30_000;
/** Node names one request may list (each at most 253 characters, as in HELLO). */
export const MAX_CONVERGENCE_NODES = 1_000;
const MAX_NODE_CHARS = 253;
/**
 * The largest request head the HTTP port reads (its `maxHeaderSize`, in bytes): the longest
 * request line this endpoint accepts (every `node` parameter at its longest, as Kubernetes node
 * names need no escaping) plus Node's default 16 KiB for the rest. At Node's default alone, a
 * `cattail converge --node` naming ~400 cloud node names (about 47 characters each) was answered
 * 431 with no body by every replica, well under the 1,000 names the endpoint accepts.
 */
export const HTTP_PORT_MAX_HEADER_BYTES = MAX_CONVERGENCE_NODES * ('&node='.length + MAX_NODE_CHARS) + 16_384;
const RETRY_AFTER_S = 1;
const PARAMS = new Set(['resource', 'resourceVersion', 'timeoutMs', 'node']);

/** What the endpoint needs of the tracker. */
export interface ConvergenceSource {
  resolveResource(name: string): string;
  wait(q: ConvergenceQuery, signal?: AbortSignal): Promise<ConvergenceReport>;
}

function bad(message: string): CattailError {
  return new CattailError('CATTAIL_CONVERGENCE_BAD_REQUEST', message);
}

function single(params: URLSearchParams, name: string): string | undefined {
  const all = params.getAll(name);
  if (all.length > 1) throw bad(`${name} may be given once, got ${all.length} values`);
  return all[0];
}

/** Validates the query string; throws CATTAIL_CONVERGENCE_BAD_REQUEST naming what is wrong. */
export function parseConvergenceQuery(params: URLSearchParams, resolveResource: (name: string) => string): ConvergenceQuery {
  for (const k of params.keys()) if (!PARAMS.has(k)) throw bad(`unknown parameter ${JSON.stringify(k)} (expected ${[...PARAMS].join(', ')})`);
  const resource = single(params, 'resource');
  if (resource === undefined || resource === '') throw bad('resource is required (a resource id such as networkpolicies.networking.k8s.io, or its plural alone)');
  const resourceVersion = single(params, 'resourceVersion');
  if (resourceVersion === undefined || resourceVersion === '') throw bad('resourceVersion is required');
  if (!isResourceVersion(resourceVersion)) throw bad(`resourceVersion must be a decimal resourceVersion (1 to 64 digits), got ${JSON.stringify(resourceVersion)}`);
  const t = single(params, 'timeoutMs');
  let timeoutMs = DEFAULT_CONVERGENCE_TIMEOUT_MS;
  if (t !== undefined) {
    timeoutMs = /^\d{1,7}$/.test(t) ? Number(t) : NaN;
    if (!(timeoutMs <= MAX_CONVERGENCE_TIMEOUT_MS)) throw bad(`timeoutMs must be an integer from 0 to ${MAX_CONVERGENCE_TIMEOUT_MS}, got ${JSON.stringify(t)}`);
  }
  const named = params.getAll('node');
  if (named.length > MAX_CONVERGENCE_NODES) throw bad(`at most ${MAX_CONVERGENCE_NODES} node parameters, got ${named.length}`);
  for (const n of named) if (n === '' || n.length > MAX_NODE_CHARS) throw bad(`node names must have 1 to ${MAX_NODE_CHARS} characters`);
  return { resource: resolveResource(resource), resourceVersion, timeoutMs, nodes: named.length > 0 ? [...new Set(named)] : undefined };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

function errorBody(err: CattailError): unknown {
  return { error: { code: err.code, message: err.message } };
}

export function serveConvergence(source: ConvergenceSource, url: URL, req: IncomingMessage, res: ServerResponse): void {
  let waiting: Promise<ConvergenceReport>;
  let q: ConvergenceQuery;
  const asker = new AbortController();
  try {
    q = parseConvergenceQuery(url.searchParams, (n) => source.resolveResource(n));
    waiting = source.wait(q, asker.signal);
  } catch (err) {
    if (!CattailError.is(err)) throw err;
    if (err.code === 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS') json(res, 503, errorBody(err), { 'retry-after': String(RETRY_AFTER_S) });
    else json(res, 400, errorBody(err));
    return;
  }
  // 'close' also fires after a normal end; aborting a finished wait does nothing. The socket's
  // close too: a request pipelined behind another on the same connection has a response that
  // is queued without a socket, and emits no 'close' when the caller hangs up, so its wait
  // (and waiter slot) would stay for up to its timeout.
  // The wait is silent: the HTTP port's idle timeout (hardenHttpPort) would cut it off.
  res.setTimeout(q.timeoutMs + CONVERGENCE_TIMEOUT_SLACK_MS);
  const onSocketClose = (): void => asker.abort();
  req.socket.once('close', onSocketClose);
  res.on('close', () => {
    asker.abort();
    req.socket.off('close', onSocketClose);
  });
  waiting.then(
    (report) => json(res, 200, report),
    (err: unknown) => {
      // Dropped while waiting: its scope grew past the bound as agents connected (convergence.ts).
      if (CattailError.is(err) && err.code === 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS') json(res, 503, errorBody(err), { 'retry-after': String(RETRY_AFTER_S) });
      else json(res, 500, { error: { code: 'CATTAIL_INTERNAL', message: (err as Error).message } });
    },
  );
}
