/**
 * One GET to the API server under the inactivity watchdog: the request every list page and watch
 * of a reflector goes through. A non-200 answer becomes an UpstreamFailure carrying the Status
 * body (bounded read) and the Retry-After; a transport error becomes a 'network' failure; a stop
 * of the reflector aborts it.
 */
import type { IncomingMessage } from 'node:http';
import { retryAfterMs, UpstreamFailure } from './failure.js';
import type { ReflectorOptions } from './reflector-core.js';
import { readBody, Watchdog } from './stream.js';
import type { KubeStatus } from './types.js';
import { parseJson } from './json.js';

/** An error body longer than this is not read further (a Status is a few hundred bytes). */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface RequestContext {
  readonly o: Pick<ReflectorOptions, 'transport' | 'clock' | 'metrics' | 'inactivityTimeoutMs' | 'staleAfterMs'>;
  readonly id: string;
  readonly stopSignal: AbortSignal;
  /** Aborts this request too (with its reason), e.g. when the watch a probe belongs to ends. */
  readonly signal?: AbortSignal;
}

/** A 200 response still streaming; `done()` stops its watchdog once the body is consumed. */
export interface GuardedResponse {
  readonly res: IncomingMessage;
  readonly watchdog: Watchdog;
  readonly signal: AbortSignal;
  readonly done: () => void;
  /** Ends the request from outside: a read under way rejects with `reason`. */
  readonly abort: (reason: unknown) => void;
}

/** The `verb` label of a request: a LIST page, a watch, the CRD list of not-served.ts, the kube-system read of cluster-name.ts, or the one-item consistent LIST of revision-probe.ts. */
export type UpstreamVerb = 'list' | 'watch' | 'crd-list' | 'cluster-name' | 'revision-probe';

/** Sends a GET under the inactivity watchdog; non-200 responses become UpstreamFailure. */
export async function guardedGet(r: RequestContext, verb: UpstreamVerb, path: string): Promise<GuardedResponse> {
  const controller = new AbortController();
  const onStop = (): void => controller.abort(r.stopSignal.reason);
  const onAbort = (): void => controller.abort(r.signal?.reason);
  r.stopSignal.addEventListener('abort', onStop, { once: true });
  r.signal?.addEventListener('abort', onAbort, { once: true });
  if (r.signal?.aborted === true) onAbort();
  const timeoutMs = Math.max(1, Math.min(r.o.inactivityTimeoutMs, Math.floor(r.o.staleAfterMs * 0.75)));
  const watchdog = new Watchdog(r.o.clock, timeoutMs, () =>
    controller.abort(new UpstreamFailure('watchdog', `no data from the API server for ${timeoutMs} ms`)),
  );
  const done = (): void => {
    watchdog.cancel();
    r.stopSignal.removeEventListener('abort', onStop);
    r.signal?.removeEventListener('abort', onAbort);
  };
  let res: IncomingMessage;
  try {
    res = await r.o.transport.get(path, controller.signal);
  } catch (err) {
    done();
    // Ended by its owner (a probe whose watch ended): not an error of the API server's.
    if (r.signal?.aborted !== true) r.o.metrics.requests.inc({ resource: r.id, verb, code: 'error' });
    if (controller.signal.aborted) throw controller.signal.reason;
    if (err instanceof UpstreamFailure) throw err;
    throw new UpstreamFailure('network', `${verb} request failed: ${(err as Error).message}`, undefined, undefined, undefined, err);
  }
  const status = res.statusCode ?? 0;
  r.o.metrics.requests.inc({ resource: r.id, verb, code: String(status) });
  if (status !== 200) {
    let body: KubeStatus | undefined;
    try {
      const text = await readBody(res, watchdog, controller.signal, MAX_ERROR_BODY_BYTES);
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null) body = parsed as KubeStatus;
    } catch {
      // An unreadable error body: the status code alone decides.
    } finally {
      done();
    }
    const retry = retryAfterMs(res.headers['retry-after'], body, r.o.clock.now());
    throw new UpstreamFailure('http', `${verb} ${r.id}: HTTP ${status}${body?.message ? ` (${body.message})` : ''}`, status, body, retry);
  }
  watchdog.touch();
  return { res, watchdog, signal: controller.signal, done, abort: (reason) => controller.abort(reason) };
}

/**
 * The JSON body of a small answer (the CRD list of not-served.ts, the kube-system namespace of
 * cluster-name.ts), read whole up to `maxBytes` (above: body-too-large, naming `what`), then the
 * response's watchdog is stopped.
 */
export async function readJson(page: GuardedResponse, maxBytes: number, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readBody(page.res, page.watchdog, page.signal, maxBytes, (bytes) => new UpstreamFailure('body-too-large', `${what} of ${bytes} bytes or more`, 200));
  } finally {
    page.done();
  }
  return parseJson(text);
}
