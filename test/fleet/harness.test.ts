/**
 * The process harness's one retry (src/bench/procs.ts ReplicaProc.start): a replica's first start
 * that finds its fixed address in use is tried again, a second apart, while a restart never is
 * (there a retry would hide a replica that did not release its port).
 */
import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { ReplicaProc, SimProc, loopbackBlock } from '../../src/bench/procs.js';
import { waitUntil } from '../support/wait.js';

const hostOf = loopbackBlock(6363);
const procs: { stop(): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const p of procs.reverse()) await p.stop().catch(() => undefined);
}, 60_000);

/** Holds `host:port` the way another process would. */
function hold(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, host, () => resolve(s));
  });
}

describe('fleet harness - a replica whose address is in use', () => {
  it('retries a first start until the address is free, and never a restart', async () => {
    const sim = await SimProc.start({ host: hostOf(1), nodes: 3, podsPerNode: 1, seed: 5 });
    procs.push(sim);
    const r = new ReplicaProc('harness-a', hostOf(10), sim.kubeconfig, ['felix']);
    procs.push({ stop: async () => (r.running ? r.kill('SIGKILL') : undefined) });
    const port = Number(new URL(r.url).port);
    const held = await hold(hostOf(10), port);
    // Freed only once the first attempt has failed on it and the second begins (bounded wait).
    const starting = r.start();
    await waitUntil(() => r.firstStartAttempts >= 2, 'a second attempt', { timeoutMs: 30_000, pollMs: 20 });
    await new Promise<void>((res) => held.close(() => res()));
    await starting;
    expect(r.starts).toBe(1);
    await r.ready();

    // A restart meeting the same: one attempt, the error says why.
    expect(await r.kill('SIGTERM')).not.toBeNull();
    const again = await hold(hostOf(10), port);
    try {
      await expect(r.start()).rejects.toThrow(/EADDRINUSE/);
      expect(r.starts).toBe(1);
    } finally {
      await new Promise<void>((res) => again.close(() => res()));
    }
  }, 60_000);
});
