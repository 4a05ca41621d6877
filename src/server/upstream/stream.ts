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
 * abort signal's reason). `onEnd` runs inside a stream event handler, where a throw would be an
 * uncaught exception that ends the process: whatever it throws (a string too long for V8, an
 * allocation that fails) rejects the read instead, coded.
 */
function settleOnce(res: IncomingMessage, signal: AbortSignal, what: string, onEnd: () => void, reject: (err: unknown) => void): { finish(err?: unknown): void; readonly done: boolean } {
  let done = false;
  const finish = (err?: unknown): void => {
    if (done) return;
    done = true;
    signal.removeEventListener('abort', onAbort);
    if (err === undefined) {
      try {
        onEnd();
        return;
      } catch (thrown) {
        err = thrown instanceof UpstreamFailure ? thrown : new UpstreamFailure('malformed', `${what} could not be read: ${(thrown as Error)?.message ?? String(thrown)}`, undefined, undefined, undefined, thrown);
      }
    }
    res.destroy();
    reject(err);
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
/**
 * Longest watch line accepted, in characters: 16 Mi. etcd refuses objects above 1.5 MiB by
 * default (a few MiB when raised), so a line ten times that is a broken or hostile server; without
 * a cap one endless line would grow this replica's memory until it dies.
 */
const MAX_LINE_CHARS = 16 * 1024 * 1024;

export function readLines(res: IncomingMessage, onLine: (line: string) => void, onChunk: () => void, watchdog: Watchdog, signal: AbortSignal, maxLineChars = MAX_LINE_CHARS): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const decoder = new StringDecoder('utf8');
    // The unfinished line, as the pieces that arrived: joined once when its newline comes, so a
    // long line costs linear time (appending to one string per chunk would be quadratic).
    let pending: string[] = [];
    let pendingChars = 0;
    const s = settleOnce(res, signal, 'stream', resolve, reject);
    res.on('data', (chunk: Buffer) => {
      if (s.done) return;
      watchdog.touch();
      let start = 0;
      try {
        const text = decoder.write(chunk);
        for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
          let line = text.slice(start, nl);
          if (pending.length > 0) {
            line = pending.join('') + line;
            pending = [];
            pendingChars = 0;
          }
          start = nl + 1;
          if (line.trim() !== '') onLine(line);
          if (s.done) return;
        }
        if (start < text.length) {
          pending.push(text.slice(start));
          pendingChars += text.length - start;
        }
        // The line is not applied (its event is unknown, so the stream cannot go on consistently):
        // the watch fails and is retried with backoff from the last good RV.
        if (pendingChars > maxLineChars) throw new UpstreamFailure('malformed', `a watch line longer than ${maxLineChars} characters`);
        onChunk();
      } catch (err) {
        s.finish(err);
      }
    });
    res.on('end', () => {
      if (s.done) return;
      try {
        const last = pending.join('') + decoder.end();
        if (last.trim() !== '') onLine(last);
        onChunk();
        s.finish();
      } catch (err) {
        s.finish(err);
      }
    });
  });
}

/**
 * The whole body as text (lists, error Status bodies), holding at most `maxBytes` of it. Past
 * `maxBytes`, with `tooLarge` the read fails with the error it makes (the response is destroyed:
 * nothing more is read or held; a Content-Length above the cap fails before the first byte), and
 * without it the read ends there with the text held so far, the response destroyed (an error
 * Status: its first bytes are enough). Reading on and dropping the rest, as this once did, left a
 * request whose error body never ends (a broken proxy trickling bytes) open for good, each chunk
 * feeding its inactivity watchdog, and its resource without another attempt. A body
 * whose text cannot be built (above V8's largest string, ~512 Mi characters) fails with a
 * 'body-too-large' UpstreamFailure; nothing here throws out of a stream handler.
 */
export async function readBody(res: IncomingMessage, watchdog: Watchdog, signal: AbortSignal, maxBytes = Number.POSITIVE_INFINITY, tooLarge?: (bytes: number) => UpstreamFailure): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const s = settleOnce(res, signal, 'body', () => resolve(toText(chunks, size)), reject);
    const declared = Number(res.headers['content-length']);
    if (tooLarge !== undefined && Number.isFinite(declared) && declared > maxBytes) {
      s.finish(tooLarge(declared));
      return;
    }
    res.on('data', (chunk: Buffer) => {
      if (s.done) return;
      watchdog.touch();
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else if (tooLarge !== undefined) s.finish(tooLarge(size));
      else {
        s.finish();
        res.destroy();
      }
    });
    res.on('end', () => s.finish());
  });
}

/** The chunks as UTF-8 text; a body too large to join or decode is a coded failure, not a throw. */
function toText(chunks: Buffer[], bytes: number): string {
  try {
    return Buffer.concat(chunks).toString('utf8');
  } catch (err) {
    // ERR_STRING_TOO_LONG (above V8's largest string) or a RangeError from the allocation.
    throw new UpstreamFailure('body-too-large', `a response body of ${bytes} bytes cannot be held as text: ${(err as Error)?.message ?? String(err)}`, undefined, undefined, undefined, err);
  }
}
