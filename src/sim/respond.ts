/**
 * Writing responses: small JSON bodies at once, large ones streamed in batches with backpressure
 * (a 150,000-pod list is ~700 MB; building it as one string would double the server's memory).
 */
import type { ServerResponse } from 'node:http';

const BATCH_BYTES = 64 * 1024;

/** Resolves on 'drain' or 'close', removing both listeners (a long stream waits thousands of times). */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Streams the chunks as a chunked 200/other response; resolves to the body bytes written. */
export async function writeBody(res: ServerResponse, code: number, chunks: Iterable<Buffer>, headers: Record<string, string> = {}): Promise<number> {
  res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let total = 0;
  for (const c of chunks) {
    batch.push(c);
    batchBytes += c.length;
    if (batchBytes >= BATCH_BYTES) {
      total += batchBytes;
      const ok = res.write(Buffer.concat(batch, batchBytes));
      batch = [];
      batchBytes = 0;
      if (res.destroyed) return total;
      if (!ok) {
        await drained(res);
        if (res.destroyed) return total;
      }
    }
  }
  total += batchBytes;
  res.end(batchBytes > 0 ? Buffer.concat(batch, batchBytes) : undefined);
  return total;
}

/** Sends a complete JSON body with Content-Length; returns its size. */
export function sendJson(res: ServerResponse, code: number, body: Buffer | string, headers: Record<string, string> = {}): number {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': String(buf.length), ...headers });
  res.end(buf);
  return buf.length;
}
