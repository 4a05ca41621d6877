import { request, type IncomingHttpHeaders } from 'node:http';
import { waitUntil } from '../support/wait.js';

export interface WatchEvent {
  type: string;
  object: { kind?: string; apiVersion?: string; metadata: { name?: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string>; labels?: Record<string, string> }; [k: string]: unknown };
}

/** A raw streaming watch over node:http: every line parsed, headers as soon as they arrive. */
export class RawWatch {
  readonly events: WatchEvent[] = [];
  readonly rawChunks: Buffer[] = [];
  status = 0;
  headers: IncomingHttpHeaders = {};
  ended = false;
  private buf = '';
  private readonly listeners = new Set<() => void>();
  private destroy: () => void = () => undefined;

  static open(url: string, headers: Record<string, string> = {}): Promise<RawWatch> {
    const w = new RawWatch();
    return new Promise((resolve, reject) => {
      const req = request(url, { headers }, (res) => {
        w.status = res.statusCode ?? 0;
        w.headers = res.headers;
        res.on('data', (c: Buffer) => {
          w.rawChunks.push(c);
          w.buf += c.toString('utf8');
          let nl: number;
          while ((nl = w.buf.indexOf('\n')) >= 0) {
            const line = w.buf.slice(0, nl);
            w.buf = w.buf.slice(nl + 1);
            if (line !== '') w.events.push(JSON.parse(line) as WatchEvent);
          }
          w.notify();
        });
        const end = (): void => {
          w.ended = true;
          w.notify();
        };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
        resolve(w);
      });
      w.destroy = () => req.destroy();
      req.on('error', reject);
      req.end();
    });
  }

  /** Body text received so far (for non-200 answers). */
  text(): string {
    return Buffer.concat(this.rawChunks).toString('utf8');
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }

  /** {@link waitUntil} `pred`, re-checking whenever data arrives or the stream ends; the failure shows the events so far. */
  until(pred: () => boolean, what = 'condition', timeoutMs = 5_000): Promise<void> {
    return waitUntil(pred, what, {
      timeoutMs,
      wake: (check) => (this.listeners.add(check), () => this.listeners.delete(check)),
      detail: () => `got ${this.events.length} events: ${JSON.stringify(this.events.map((e) => e.type))}`,
    });
  }

  untilEnded(): Promise<void> {
    return this.until(() => this.ended, 'end of stream');
  }

  close(): void {
    this.destroy();
  }
}

// Test code inspects arbitrary JSON answers; a loose type keeps assertions readable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: Loose; headers: Headers }> {
  const r = await fetch(url, init);
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, body, headers: r.headers };
}

export const rvNum = (e: WatchEvent): number => Number(e.object.metadata.resourceVersion);
