/** Runs the `cattail` command in-process (src/cli/main.ts) and collects its output. */
import { PassThrough, Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';

/** A stdout/stderr for an in-process command: `text()` is all written so far; emits 'line' on each write (for waits). */
export function textSink(): Writable & { text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      w.emit('line');
      cb();
    },
  });
  return Object.assign(w, { text: () => text });
}

export async function runCli(argv: string[], env: Record<string, string> = {}, signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(argv, { stdout, stderr, env, ...(signal ? { signal } : {}) });
  return { code, out, err };
}
