/**
 * Agent restarts (issue #18 "Agent restart"): what a node agent that restarts (every calico-node
 * upgrade is a DaemonSet rollout over every node) receives, with its checkpoint (`stateDir`)
 * against a full snapshot. Real processes on loopback: the simulator with a generated cluster
 * under steady pod churn and two replicas; the agents are the client library in this process,
 * each with a state directory of its own and its own node name.
 *
 * A rolling restart of AGENTS agents, BATCH at a time (a DaemonSet rollout's maxUnavailable): each
 * agent syncs once from scratch on replica A (its first start: a snapshot, which writes its
 * checkpoint), stops (close() writes the checkpoint again), stays down DOWN_MS while pods change,
 * and starts again from its checkpoint with replica B first in its list, so most restarts exercise
 * the portable path (rebase: B never issued the token); the client's randomised endpoint choice
 * sends some back to A (resume). Measured per restart: bytes received until in
 * sync, snapshots taken, how the feed was continued (rebase, resume, snapshot).
 *
 * Run: `npm run bench:agent-restart` (builds first). Parameters by environment variable:
 * AGENTS (1000), BATCH (25), NODES (1000), PODS_PER_NODE (30), CHURN_PER_SEC (20), DOWN_MS (2000).
 * Writes bench/results/agent-restart.json and .md. Bounded: every wait has a deadline and the
 * whole run stops after 20 minutes.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Client } from '../src/client/index.js';
import { loopbackBlock, ReplicaProc, SimProc } from '../src/bench/procs.js';

const env = (k: string, d: number): number => (process.env[k] === undefined ? d : Number(process.env[k]));
const AGENTS = env('AGENTS', 1_000);
const BATCH = env('BATCH', 25);
const NODES = env('NODES', 1_000);
const PODS_PER_NODE = env('PODS_PER_NODE', 30);
const CHURN_PER_SEC = env('CHURN_PER_SEC', 20);
const DOWN_MS = env('DOWN_MS', 2_000);
const DEADLINE = Date.now() + 20 * 60_000;
const root = join(import.meta.dirname, '..', '..');

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const host = loopbackBlock(9_000 + (process.pid % 10_000));
  const stateRoot = mkdtempSync(join(tmpdir(), 'cattail-agent-restart-'));
  const sim = await SimProc.start({ host: host(1), nodes: NODES, podsPerNode: PODS_PER_NODE, seed: 5 });
  const a = new ReplicaProc('restart-a', host(10), sim.kubeconfig, ['felix']);
  const b = new ReplicaProc('restart-b', host(11), sim.kubeconfig, ['felix']);
  let churn: NodeJS.Timeout | undefined;
  try {
    await Promise.all([a.start(), b.start()]);
    await Promise.all([a.ready(), b.ready()]);
    // Steady churn: pod label flips (non-host-network pods: those give workload endpoints).
    const pods = (await sim.list('pods', 5_000)).filter((p) => (p as { spec?: { hostNetwork?: boolean } }).spec?.hostNetwork !== true);
    let flips = 0;
    let writing = false;
    churn = setInterval(() => {
      if (writing) return;
      writing = true;
      const p = pods[flips++ % pods.length]!;
      void sim.admin('PATCH', `/objects/pods?namespace=${encodeURIComponent(p.metadata?.namespace ?? '')}&name=${encodeURIComponent(p.metadata?.name ?? '')}`, { metadata: { labels: { 'restart.cattail/flip': String(flips) } } })
        .catch(() => undefined).finally(() => { writing = false; });
    }, Math.max(1, Math.floor(1000 / CHURN_PER_SEC)));

    const snapshotBytes: number[] = [];
    const restartBytes: number[] = [];
    const restartMs: number[] = [];
    let restartSnapshots = 0;
    let rebases = 0;
    let resumes = 0;
    let restored = 0;
    const started = Date.now();
    for (let first = 0; first < AGENTS; first += BATCH) {
      if (Date.now() > DEADLINE) throw new Error(`agent-restart: the 20-minute bound passed after ${first} agents`);
      const ids = Array.from({ length: Math.min(BATCH, AGENTS - first) }, (_, i) => first + i);
      const open = (i: number, endpoints: string[]): Client => connect({ endpoints, feeds: ['felix'], node: `restart-node-${i}`, stateDir: join(stateRoot, String(i)), reconnectMaxDelayMs: 1_000, behindRetryDelayMs: 250 });
      // First start: a snapshot from A, then the checkpoint.
      const cold = ids.map((i) => open(i, [a.url]));
      await Promise.all(cold.map((c) => c.whenInSync(AbortSignal.timeout(120_000))));
      for (const c of cold) snapshotBytes.push(c.stats.bytesReceived);
      await Promise.all(cold.map((c) => c.close()));
      await new Promise((r) => setTimeout(r, DOWN_MS));
      // The restart: from the checkpoint, B first (a rollout moves agents between replicas).
      const t0 = Date.now();
      const warm = ids.map((i) => open(i, [b.url, a.url]));
      await Promise.all(warm.map((c) => c.whenInSync(AbortSignal.timeout(120_000))));
      const ms = Date.now() - t0;
      for (const c of warm) {
        const s = c.stats;
        restartBytes.push(s.bytesReceived);
        restartMs.push(ms);
        restartSnapshots += s.snapshotsApplied;
        rebases += s.rebases;
        resumes += s.resumes;
        restored += s.checkpoint?.restored ?? 0;
      }
      await Promise.all(warm.map((c) => c.close()));
      for (const i of ids) rmSync(join(stateRoot, String(i)), { recursive: true, force: true });
      process.stdout.write(`\r${Math.min(first + BATCH, AGENTS)}/${AGENTS} agents restarted`);
    }
    process.stdout.write('\n');
    const snapMedian = pct(snapshotBytes, 50);
    const record = {
      at: new Date().toISOString(), machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage: loadavg().map((x) => +x.toFixed(2)) },
      parameters: { agents: AGENTS, batch: BATCH, nodes: NODES, podsPerNode: PODS_PER_NODE, churnPerSec: CHURN_PER_SEC, downMs: DOWN_MS },
      wallS: Math.round((Date.now() - started) / 1000),
      snapshotBytesPerAgent: { p50: snapMedian, p99: pct(snapshotBytes, 99) },
      restartBytesPerAgent: { p50: pct(restartBytes, 50), p99: pct(restartBytes, 99), max: Math.max(...restartBytes) },
      fractionOfSnapshotP50: +(pct(restartBytes, 50) / snapMedian).toFixed(4),
      restartTimeToInSyncMsPerBatch: { p50: pct(restartMs, 50), p99: pct(restartMs, 99) },
      restarts: restartBytes.length, restored, rebases, resumes, snapshotsOnRestart: restartSnapshots,
      rollingRestartBytes: { withCheckpoints: restartBytes.reduce((x, y) => x + y, 0), withoutCheckpoints: snapshotBytes.reduce((x, y) => x + y, 0) },
    };
    const out = join(root, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'agent-restart.json'), `${JSON.stringify(record, null, 2)}\n`);
    const kib = (n: number): string => (n / 1024).toFixed(1);
    const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
    writeFileSync(join(out, 'agent-restart.md'), [
      '# Agent restarts (`npm run bench:agent-restart`)',
      '',
      `${record.at}, Node ${record.machine.node}, ${record.machine.cpus} × ${record.machine.cpuModel}, load average ${record.machine.loadAverage.join('/')} after (the machine is shared).`,
      `A rolling restart of ${AGENTS} agents, ${BATCH} at a time, each down ${DOWN_MS} ms while ${CHURN_PER_SEC} pod changes/s go on; cluster ${NODES} nodes × ${PODS_PER_NODE} pods, feed felix, two replicas; each agent restarts from its checkpoint (\`stateDir\`) with the replica that did not serve it first in its list (its endpoint choice is randomised, so some go back to the first: a rebase on one, a resume on the other).`,
      '',
      '| | per agent |',
      '|---|---|',
      `| full snapshot (first start), p50 | ${kib(snapMedian)} KiB |`,
      `| restart from the checkpoint, p50 / p99 / max | ${kib(record.restartBytesPerAgent.p50)} / ${kib(record.restartBytesPerAgent.p99)} / ${kib(record.restartBytesPerAgent.max)} KiB (${(100 * record.fractionOfSnapshotP50).toFixed(2)} % of a snapshot at p50) |`,
      `| restarts continued by rebase / resume / snapshot | ${rebases} / ${resumes} / ${restartSnapshots} (checkpoints restored: ${restored}) |`,
      `| batch back in sync after the restart, p50 / p99 | ${record.restartTimeToInSyncMsPerBatch.p50} / ${record.restartTimeToInSyncMsPerBatch.p99} ms |`,
      '',
      `The whole rolling restart moved ${mib(record.rollingRestartBytes.withCheckpoints)} MiB to the agents; without checkpoints every agent would have taken a snapshot again, ${mib(record.rollingRestartBytes.withoutCheckpoints)} MiB.`,
      'Bytes are wire bytes (compressed where negotiated) until the agent is in sync; what a restart costs grows with the changes while the agent was down (the downtime plus the checkpoint\'s age), not with the cluster.',
      '',
    ].join('\n'));
    process.stdout.write(`agent restart: snapshot ${kib(snapMedian)} KiB, restart p50 ${kib(record.restartBytesPerAgent.p50)} KiB; ${rebases} rebases, ${resumes} resumes, ${restartSnapshots} snapshots on restart\n`);
  } finally {
    if (churn !== undefined) clearInterval(churn);
    await Promise.all([a.kill('SIGKILL'), b.kill('SIGKILL')]);
    await sim.stop();
    rmSync(stateRoot, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`agent-restart failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
