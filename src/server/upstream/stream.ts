import type { IncomingMessage } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { Clock, Timer } from '../../clock.js';
import { UpstreamFailure } from './failure.js';

/**
 * Reading response bodies under an inactivity watchdog. A stream that goes silent — a black-holed
 * connection, a stalled proxy, a peer that is alive but stuck — is aborted after `timeoutMs`
 * without a byte; TCP keepalive alone never detects the stalled-but-alive case. Every timer is
 * the injected Clock's.
 */
export class Watchdog {
  private last: number;
  private timer: Timer | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    private readonly onFire: () => void,
  ) {
    this.last = clock.monotonic();
    this.arm(timeoutMs);
  }

  touch(): void {
    this.last = this.clock.monotonic();
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  private arm(ms: number): void {
    // One timer re-armed lazily (not per chunk): checks the idle time when it fires.
    this.timer = this.clock.setTimeout(() => {
      const idle = this.clock.monotonic() - this.last;
      if (idle >= this.timeoutMs) {
        this.timer = undefined;
        this.onFire();
      } else this.arm(this.timeoutMs - idle);
    }, ms);
    this.timer.unref();
  }
}

/**
 * How every body read ends: exactly once, on a clean end, a reset, an abort or a socket error. A
 * failed read destroys the response so a half-read socket is never reused. Shared by the watch
 * and list readers so both classify failures the same way (UpstreamFailure 'network', or the
 * abort signal's reason).
 */
function settleOnce(res: IncomingMessage, signal: AbortSignal, what: string, onEnd: () => void, reject: (err: unknown) => void): { finish(err?: unknown): void; readonly done: boolean } {
  let done = false;
  const finish = (err?: unknown): void => {
    if (done) return;
    done = true;
    signal.removeEventListener('abort', onAbort);
    if (err === undefined) onEnd();
    else {
      res.destroy();
      reject(err);
    }
  };
  const onAbort = (): void => finish(signal.reason ?? new UpstreamFailure('network', 'request aborted'));
  signal.addEventListener('abort', onAbort, { once: true });
  res.on('error', (err) => finish(signal.aborted ? signal.reason : new UpstreamFailure('network', `${what} failed: ${err.message}`, undefined, undefined, undefined, err)));
  res.on('close', () => {
    if (!done) finish(signal.aborted ? signal.reason : new UpstreamFailure('network', 'connection closed before the end of the body'));
  });
  return {
    finish,
    get done() {
      return done;
    },
  };
}

/**
 * Feeds complete lines to `onLine` and calls `onChunk` after each network chunk (the natural
 * batching point: events that arrived together are flushed together). Resolves on a clean end of
 * the body; rejects with an UpstreamFailure on reset, abort or when `onLine` throws.
 */
export function readLines(res: IncomingMessage, onLine: (line: string) => void, onChunk: () => void, watchdog: Watchdog, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    let rest = '';
    const s = settleOnce(res, signal, 'stream', resolve, reject);
    res.on('data', (chunk: Buffer) => {
      if (s.done) return;
      watchdog.touch();
      const text = rest + decoder.write(chunk);
      let start = 0;
      try {
        for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
          const line = text.slice(start, nl);
          start = nl + 1;
          if (line.trim() !== '') onLine(line);
          if (s.done) return;
        }
        rest = text.slice(start);
        onChunk();
      } catch (err) {
        s.finish(err);
      }
    });
    res.on('end', () => {
      if (s.done) return;
      try {
        const last = rest + decoder.end();
        if (last.trim() !== '') onLine(last);
        onChunk();
        s.finish();
      } catch (err) {
        s.finish(err);
      }
    });
  });
}

/** The whole body as text (lists, error Status bodies). */
export async function readBody(res: IncomingMessage, watchdog: Watchdog, signal: AbortSignal, maxBytes = Number.POSITIVE_INFINITY): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const s = settleOnce(res, signal, 'body', () => resolve(Buffer.concat(chunks).toString('utf8')), reject);
    res.on('data', (chunk: Buffer) => {
      watchdog.touch();
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
    });
    res.on('end', () => s.finish());
  });
}
