/**
 * `cattail sim`: prints exactly one `listening` line, writes a usable kubeconfig, stops cleanly
 * when its signal fires.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('cattail sim', () => {
  it('prints one listening line after writing the kubeconfig, serves, and stops on abort', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cattail-sim-cmd-'));
    const kubeconfig = join(dir, 'kc.yaml');
    let out = '';
    let onLine!: (line: string) => void;
    const firstLine = new Promise<string>((r) => (onLine = r));
    const stdout = new Writable({
      write(chunk: Buffer, _e, cb) {
        out += chunk.toString();
        if (out.includes('\n')) onLine(out.split('\n')[0] as string);
        cb();
      },
    });
    const stderr = new Writable({ write: (_c, _e, cb) => cb() });
    const ac = new AbortController();
    const exit = main(['sim', '--port', '0', '--nodes', '2', '--pods-per-node', '3', '--seed', '4', '--kubeconfig', kubeconfig, '--log-level', 'silent'], { stdout, stderr, env: {}, signal: ac.signal });
    const line = await Promise.race([firstLine, exit.then((c) => `exited ${c}`)]);
    const m = /^listening (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    expect(m, line).not.toBeNull();
    const url = (m as RegExpExecArray)[1] as string;
    const kc = parse(await readFile(kubeconfig, 'utf8'));
    expect(kc.clusters[0].cluster).toEqual({ server: url, 'insecure-skip-tls-verify': true });
    expect(kc['current-context']).toBe(kc.contexts[0].name);
    const pods = (await (await fetch(`${url}/api/v1/pods`)).json()) as { items: unknown[] };
    expect(pods.items.length).toBe(6);
    ac.abort();
    expect(await exit).toBe(0);
    expect(out).toBe(`${line}\n`);
    await expect(fetch(`${url}/api/v1/pods`)).rejects.toThrow();
  });
});
