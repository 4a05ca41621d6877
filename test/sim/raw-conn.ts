import { connect, type Socket } from 'node:net';
import { waitUntil } from '../support/wait.js';

/**
 * A raw HTTP/1.1 connection: sees exactly what the server put on the wire — a FIN, an RST, a
 * missing terminating chunk — which an HTTP client library folds into one "aborted" error.
 * It can also stop reading (a slow client).
 */
export class RawConn {
  readonly chunks: Buffer[] = [];
  fin = false;
  reset = false;
  closed = false;
  error: string | undefined;
  /** Complete body lines seen so far, counted as data arrives (parsing 10 MB per chunk would be quadratic). */
  lineCount = 0;
  private prevByte = 0;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly socket: Socket) {}

  static open(port: number, path: string, headers: Record<string, string> = {}): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      const c = new RawConn(s);
      s.on('data', (d: Buffer) => {
        c.chunks.push(d);
        // A body line ends in a bare \n; HTTP framing always uses \r\n.
        for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) if ((i > 0 ? d[i - 1] : c.prevByte) !== 13) c.lineCount++;
        c.prevByte = d[d.length - 1] as number;
        c.notify();
      });
      s.on('end', () => {
        c.fin = true;
        c.notify();
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        c.error = e.code ?? e.message;
        if (e.code === 'ECONNRESET') c.reset = true;
        c.notify();
      });
      s.on('close', () => {
        c.closed = true;
        c.notify();
      });
      s.once('connect', () => {
        const h = Object.entries({ Host: `127.0.0.1:${port}`, ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
        s.write(`GET ${path} HTTP/1.1\r\n${h}\r\n`);
        resolve(c);
      });
      s.once('error', reject);
    });
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }

  raw(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  /** Status, header block, de-chunked body, and whether the terminating chunk arrived. */
  parsed(): { status: number; head: string; body: string; terminated: boolean; lines: string[] } {
    const raw = Buffer.concat(this.chunks);
    const sep = raw.indexOf('\r\n\r\n');
    const head = sep < 0 ? raw.toString('latin1') : raw.subarray(0, sep).toString('latin1');
    const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0);
    let body = Buffer.alloc(0);
    let terminated = false;
    if (sep >= 0) {
      let rest = raw.subarray(sep + 4);
      if (/transfer-encoding: chunked/i.test(head)) {
        const parts: Buffer[] = [];
        for (;;) {
          const nl = rest.indexOf('\r\n');
          if (nl < 0) break;
          const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
          if (size === 0) {
            terminated = true;
            break;
          }
          const data = rest.subarray(nl + 2, nl + 2 + size);
          parts.push(data);
          if (data.length < size) break;
          rest = rest.subarray(nl + 2 + size + 2);
        }
        body = Buffer.concat(parts);
      } else body = rest;
    }
    const text = body.toString('utf8');
    // Complete lines only: a line still arriving (or cut by a fault) is in `body`, not here.
    return { status, head, body: text, terminated, lines: text.split('\n').slice(0, -1).filter((l) => l !== '') };
  }

  /** {@link waitUntil} `pred`, re-checking whenever bytes arrive or the socket closes; the failure shows the bytes so far. */
  until(pred: () => boolean, what = 'condition', timeoutMs = 5_000): Promise<void> {
    return waitUntil(pred, what, {
      timeoutMs,
      wake: (check) => (this.listeners.add(check), () => this.listeners.delete(check)),
      detail: () => `got ${JSON.stringify(this.raw().slice(0, 400))}`,
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
