import { KubeConfig } from '@kubernetes/client-node';
import { expect } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import type { FeedBatch } from '../../src/server/pipeline/seams.js';
import type { UpstreamHandle, UpstreamOptions } from '../../src/server/upstream/index.js';
import { compareResourceVersions } from '../../proto/index.js';
import { KubeTransport, type Transport } from '../../src/server/upstream/transport.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { Sim, SimOptions } from '../../src/sim/index.js';
import { VERSION } from '../../src/version.js';
import { upstreamOnSim } from '../support/upstream.js';
import { idle, waitUntil } from '../support/wait.js';
import { customFeed, expectedState, RecordingSink, sameState } from './helpers.js';

/**
 * The upstream against the real simulator (src/sim) with its fault features, for the adversarial
 * tests of issue 7. One FakeClock drives both sides, so backoff, Retry-After, watchdogs and the
 * simulator's cut delays elapse in virtual time while the sockets are real (loopback).
 */

/** Two feeds sharing the Nodes reflector with different projections (two views of one watch). */
export const WL_FEED = { name: 'wl', resources: [{ resource: 'pods' }, { resource: 'nodes' }, { resource: 'namespaces' }] };
export const NODES_FEED = { name: 'nodes-strip', resources: [{ resource: 'nodes', projection: 'strip' }] };
export const SIM_RESOURCES = ['pods', 'nodes', 'namespaces'];

/** The upstream's client id at the simulator (its User-Agent): fault rules target it alone. */
export const replicaUa = (replicaId: string): string => `cattail/${VERSION} (replica ${replicaId})`;
export const REPLICA = 'adv';
export const UA = replicaUa(REPLICA);

/** A RecordingSink that also checks every resource watermark of every feed only ever moves forward. */
export class CheckingSink extends RecordingSink {
  readonly regressions: string[] = [];
  private readonly marks = new Map<string, string>();

  override onBatch(feed: string, batch: FeedBatch): void {
    for (const [r, rv] of Object.entries(batch.watermarks ?? {})) {
      const k = `${feed}/${r}`;
      const prev = this.marks.get(k);
      if (prev !== undefined && compareResourceVersions(rv, prev) < 0) this.regressions.push(`${k}: ${prev} → ${rv}`);
      this.marks.set(k, rv);
    }
    super.onBatch(feed, batch);
  }

  watermark(feed: string, resource: string): string | undefined {
    return this.marks.get(`${feed}/${resource}`);
  }

  revisions(): number {
    let n = 0;
    for (const f of this.stores.keys()) n += this.revision(f);
    return n;
  }
}

/** A transport whose target can be switched (leader → HA follower) without restarting the upstream. */
export class SwitchableTransport implements Transport {
  constructor(public target: Transport) {}
  get(pathAndQuery: string, signal: AbortSignal): ReturnType<Transport['get']> {
    return this.target.get(pathAndQuery, signal);
  }
  unauthorized(): void {
    this.target.unauthorized();
  }
}

export function kubeTransport(url: string, ua = UA): KubeTransport {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'sim', server: url, skipTLSVerify: true }, { name: 'u' });
  return new KubeTransport(kc, ua);
}

export interface Harness {
  clock: FakeClock;
  sim: Sim;
  sink: CheckingSink;
  up: UpstreamHandle;
  feeds: { name: string; resources: { resource: string; projection?: string }[] }[];
}

/** Short virtual timeouts: they bound how far the FakeClock must be advanced, not real time. */
export const FAST: Partial<UpstreamOptions> = {
  watchInactivityTimeoutMs: 10_000,
  minAttemptIntervalMs: 200,
  backoff: { initialMs: 200, maxMs: 2_000, resetAfterMs: 10_000 },
  missingResourceRetryMs: 3_000,
};

/** The upstream and the simulator (test/support/upstream.ts: both stopped after the test) with the feeds under test. */
export async function startHarness(o: { up?: Partial<UpstreamOptions>; sim?: SimOptions; feeds?: Harness['feeds']; transport?: (sim: Sim) => Transport } = {}): Promise<Harness> {
  const feeds = o.feeds ?? [WL_FEED, NODES_FEED];
  const { sim, clock, up } = await upstreamOnSim({
    sim: { nodes: 3, podsPerNode: 5, seed: 11, resources: SIM_RESOURCES, ...o.sim },
    up: (s) => {
      const transport = o.transport?.(s);
      return { replicaId: REPLICA, feeds: [], customFeeds: feeds, ...FAST, ...o.up, ...(transport ? { transport } : {}) };
    },
  });
  return { clock, sim, sink: new CheckingSink(), up, feeds };
}

/** Starts the upstream and waits until every feed is in sync and every watch is open at the simulator. */
export async function synced(h: Harness): Promise<void> {
  h.up.start(h.sink);
  await waitUntil(() => h.feeds.every((f) => h.sink.status.get(f.name) === 'in-sync') && h.up.ready(), { clock: h.clock });
  await waitUntil(() => watchesOpen(h) >= reflectors(h), { clock: h.clock });
}

/** Distinct served resources the harness's feeds use (one reflector and one watch each). */
export function reflectors(h: Harness): number {
  return h.up.health().filter((x) => !x.missing).length;
}

export function watchesOpen(h: Harness, resource?: string): number {
  const w = h.sim.admin.counters().watchesOpen;
  if (typeof w === 'number') return w;
  return Object.entries(w).filter(([k]) => resource === undefined || k === resource).reduce((n, [, v]) => n + v, 0);
}

/** Requests the simulator saw, by verb (LIST/WATCH) and resource, any code. */
export function simRequests(sim: Sim, verb: string, resource: string): number {
  const r = sim.admin.counters().requests;
  if (typeof r === 'number') return r;
  return Object.entries(r)
    .filter(([k]) => k.startsWith(`${verb},${resource},`))
    .reduce((n, [, v]) => n + v, 0);
}

/** Expected content of one feed: the simulator's current objects through the upstream's projectors. */
export function expected(h: Harness, feed: Harness['feeds'][number]): Map<string, Buffer> {
  return expectedState(customFeed(feed), (id) => safeList(h.sim, id));
}

function safeList(sim: Sim, id: string): KubeObject[] {
  try {
    return sim.admin.list(id) as KubeObject[];
  } catch {
    return []; // omitted resource (a CRD that is not installed): empty
  }
}

export function isConverged(h: Harness): boolean {
  return h.feeds.every((f) => sameState(h.sink.state.get(f.name), expected(h, f)));
}

/** Waits (bounded) until every feed equals the simulator's state projected. */
export async function converged(h: Harness): Promise<void> {
  await waitUntil(() => isConverged(h), { clock: h.clock });
}

/** Keys whose projected value differs between two expected states, per feed, summed. */
export function differingKeys(before: Map<string, Buffer>[], after: Map<string, Buffer>[]): number {
  let n = 0;
  before.forEach((b, i) => {
    const a = after[i] as Map<string, Buffer>;
    for (const [k, v] of a) if (!b.get(k)?.equals(v)) n++;
    for (const k of b.keys()) if (!a.has(k)) n++;
  });
  return n;
}

export function expectedAll(h: Harness): Map<string, Buffer>[] {
  return h.feeds.map((f) => expected(h, f));
}

/**
 * Three real changes, each to a distinct key and visible in the projections: a new pod, a deleted
 * pod, a relabelled node (which changes both node feeds). Distinct keys, so a live watch and a
 * relist deliver exactly the same number of updates.
 */
export function mutate(h: Harness, tag: string): void {
  type Pod = KubeObject & { spec?: { nodeName?: string; hostNetwork?: boolean }; status?: { podIP?: string } };
  const pods = (h.sim.admin.list('pods') as Pod[]).filter((p) => p.spec?.nodeName && !p.spec.hostNetwork && p.status?.podIP && !p.metadata?.name?.startsWith('adv-'));
  const template = pods[0] as Pod;
  const victim = pods[pods.length - 1] as Pod;
  const copy = structuredClone(template);
  copy.metadata = { name: `adv-${tag}`, namespace: template.metadata?.namespace, labels: { ...(template.metadata?.labels ?? {}), adv: tag } };
  // Created without a status (no IP: no endpoint, no update), then the IP arrives with a status
  // write — one update whether the upstream sees both events live or only the end state.
  delete copy.status;
  const ip = `10.250.${tag.length}.${(tag.charCodeAt(0) % 200) + 1}`;
  h.sim.admin.create('pods', copy as never);
  h.sim.admin.patch('pods', template.metadata?.namespace, `adv-${tag}`, { status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } }, { status: true });
  h.sim.admin.delete('pods', victim.metadata?.namespace, victim.metadata?.name ?? '');
  const node = (h.sim.admin.list('nodes') as KubeObject[])[0] as KubeObject;
  h.sim.admin.patch('nodes', undefined, node.metadata?.name ?? '', { metadata: { labels: { 'adv-tag': tag } } });
}

/** A status-only pod write: moves the RV, changes no projected value (must cost zero updates). */
export function invisibleWrite(h: Harness): void {
  const p = (h.sim.admin.list('pods') as KubeObject[]).find((o) => (o['status'] as { phase?: string } | undefined)?.phase === 'Running') as KubeObject;
  h.sim.admin.patch('pods', p.metadata?.namespace, p.metadata?.name ?? '', { status: { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: '2026-02-02T00:00:00Z' }] } }, { status: true });
}

/** Sum of an upstream counter over the series matching `labels`. */
export async function metric(up: UpstreamHandle, name: 'watchRestarts' | 'authErrors' | 'skipped' | 'relists' | 'requests', labels: Record<string, string> = {}): Promise<number> {
  const m = (up.metrics as unknown as Record<string, { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> }>)[name];
  if (!m) throw new Error(`no metric ${name}`);
  return (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}


/**
 * Runs a fault scenario twice. Round 0: `inject(0, noop)` — no change on the server — then
 * `recover(0)`; the recovery must deliver zero updates and zero store revisions. Round 1:
 * `inject(1, changes)`, where the scenario calls `changes()` at the point where the fault is in
 * force (three real changes, see {@link mutate}), then `recover(1)`; the feeds must get exactly
 * the real differences. After each round every feed equals the simulator's state projected,
 * nothing more arrives in another second of virtual time, and no watermark or status went back.
 */
export async function bothRounds(h: Harness, inject: (round: number, changes: () => void) => void | Promise<void>, recover: (round: number) => Promise<void>): Promise<void> {
  const { sink, clock } = h;
  for (const round of [0, 1]) {
    const updates = sink.updates();
    const revisions = sink.revisions();
    const before = expectedAll(h);
    let changed = false;
    await inject(round, () => {
      if (round === 1) mutate(h, `r${round}`);
      changed = true;
    });
    expect(changed).toBe(true);
    await recover(round);
    await converged(h);
    await idle(clock, 1_000);
    expect(isConverged(h)).toBe(true);
    const real = differingKeys(before, expectedAll(h));
    if (round === 0) {
      expect(real).toBe(0);
      expect(sink.updates() - updates).toBe(0);
      expect(sink.revisions() - revisions).toBe(0);
    } else {
      expect(real).toBe(4); // pod added (with its IP), pod deleted, node relabelled (in both node feeds)
      expect(sink.updates() - updates).toBe(real);
    }
  }
  expectNeverBack(h);
  expect(h.up.ready()).toBe(true);
}

/** No watermark regressed, and no feed's status went back from in-sync. */
export function expectNeverBack(h: Harness): void {
  const { sink } = h;
  expect(sink.regressions).toEqual([]);
  expect(sink.storeTotals.watermarkRegressions).toBe(0);
  for (const f of h.feeds) {
    const batches = sink.batches.filter((b) => b.feed === f.name);
    const first = batches.findIndex((b) => b.batch.status === 'in-sync');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(batches.slice(first).filter((b) => b.batch.status === 'resyncing')).toEqual([]);
  }
}

export { sameState };
