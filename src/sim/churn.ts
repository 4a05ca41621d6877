/**
 * The churn driver: a seeded stream of realistic changes at a given rate — pod creates and
 * (optionally graceful) deletes, status-only pod updates, selector-relevant label flips and node
 * heartbeats. Ticks come from the injected clock, so with a FakeClock a test decides exactly how
 * many changes happen; with the same seed the same changes happen in the same order.
 */
import type { Clock, Timer } from '../clock.js';
import { resource } from '../registry.js';
import { makePod, nodeIp, podIp, type ClusterModel } from './generator.js';
import { Rng } from './rng.js';
import type { Store } from './store.js';
import { parseStored, type Writer } from './writes.js';

export interface ChurnOptions {
  /** Changes per second. */
  ratePerSec: number;
  seed: number;
  /** Tick period. @default 100 */
  tickMs?: number;
  /** Pod deletes first set deletionTimestamp (MODIFIED), then delete after this long; 0 deletes at once. @default 1_000 */
  gracefulDeleteMs?: number;
}

export interface ChurnStats {
  running: boolean;
  ratePerSec: number;
  seed: number;
  changes: number;
  byKind: Record<string, number>;
}

/** Relative weights of the change kinds. */
const MIX: [string, number][] = [
  ['podCreate', 15],
  ['podDelete', 15],
  ['podStatus', 35],
  ['labelFlip', 15],
  ['nodeHeartbeat', 20],
];
const MAX_CHANGES_PER_TICK = 10_000;

const PODS = resource('pods');
const NODES = resource('nodes');

export class Churn {
  private timer: Timer | undefined;
  private graceTimers = new Set<Timer>();
  private rng = new Rng(0);
  private budget = 0;
  private opts: Required<ChurnOptions> = { ratePerSec: 0, seed: 0, tickMs: 100, gracefulDeleteMs: 1_000 };
  private pods: { ns: string; name: string }[] = [];
  private changes = 0;
  private byKind: Record<string, number> = {};
  private created = 0;

  constructor(
    private readonly store: Store,
    private readonly writer: Writer,
    private readonly clock: Clock,
    private readonly model: ClusterModel,
  ) {}

  start(o: ChurnOptions): void {
    this.stop();
    this.opts = { tickMs: 100, gracefulDeleteMs: 1_000, ...o };
    this.rng = new Rng(o.seed);
    this.budget = 0;
    this.pods = [];
    const rs = this.store.resource('pods');
    // Finished and host-network pods stay put: churn acts on app pods only.
    for (const p of rs?.tree.values() ?? []) if (p.namespace !== 'kube-system') this.pods.push({ ns: p.namespace, name: p.name });
    if (o.ratePerSec <= 0) return;
    this.timer = this.clock.setInterval(() => this.tick(), this.opts.tickMs).unref();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Cancels pending graceful deletes too (shutdown). */
  dispose(): void {
    this.stop();
    for (const t of this.graceTimers) t.cancel();
    this.graceTimers.clear();
  }

  stats(): ChurnStats {
    return { running: this.timer !== undefined, ratePerSec: this.opts.ratePerSec, seed: this.opts.seed, changes: this.changes, byKind: { ...this.byKind } };
  }

  private tick(): void {
    this.budget += (this.opts.ratePerSec * this.opts.tickMs) / 1000;
    let n = 0;
    while (this.budget >= 1 && n < MAX_CHANGES_PER_TICK) {
      this.budget -= 1;
      n++;
      this.step();
    }
  }

  /** One change; public so tests can drive exact counts without timers. */
  step(): void {
    const total = MIX.reduce((s, [, w]) => s + w, 0);
    let x = this.rng.next() * total;
    let kind = 'podStatus';
    for (const [k, w] of MIX) {
      if ((x -= w) < 0) {
        kind = k;
        break;
      }
    }
    const done = this.apply(kind);
    if (done) {
      this.changes++;
      this.byKind[done] = (this.byKind[done] ?? 0) + 1;
    }
  }

  private pickPod(): { ns: string; name: string; i: number } | undefined {
    for (let tries = 0; tries < 3 && this.pods.length > 0; tries++) {
      const i = Math.floor(this.rng.next() * this.pods.length);
      const p = this.pods[i] as { ns: string; name: string };
      if (this.store.get(PODS, p.ns, p.name)) return { ...p, i };
      this.removeAt(i);
    }
    return undefined;
  }

  private removeAt(i: number): void {
    const last = this.pods.pop();
    if (last !== undefined && i < this.pods.length) this.pods[i] = last;
  }

  private now(): string {
    return new Date(this.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  private apply(kind: string): string | undefined {
    const { model, rng } = this;
    switch (kind) {
      case 'podCreate': {
        if (model.apps.length === 0 || model.nodes.length === 0) return undefined;
        const app = rng.pick(model.apps);
        const ni = rng.int(0, model.nodes.length - 1);
        const name = `${app.name}-${app.hash}-${rng.suffix(5)}`;
        const slot = 2 + (this.created++ % (model.slotsPerNode - 2));
        const pod = makePod({ app, name, uid: rng.uuid(), nodeName: model.nodes[ni] as string, hostIp: nodeIp(ni), podIp: podIp(model, ni, slot), createdMs: this.clock.now(), phase: 'Running', rng });
        try {
          this.writer.create(PODS, pod);
        } catch {
          return undefined; // name collision: skip
        }
        this.pods.push({ ns: app.namespace, name });
        return kind;
      }
      case 'podDelete': {
        const p = this.pickPod();
        if (!p) return undefined;
        this.removeAt(p.i);
        if (this.opts.gracefulDeleteMs <= 0) {
          this.writer.delete(PODS, p.ns, p.name);
          return kind;
        }
        // kubectl-style graceful delete: MODIFIED with deletionTimestamp, CNI DEL clears the IP annotation, then DELETED.
        this.writer.patch(PODS, p.ns, p.name, { metadata: { deletionTimestamp: this.now(), deletionGracePeriodSeconds: 30 } });
        const t = this.clock.setTimeout(() => {
          this.graceTimers.delete(t);
          if (this.store.get(PODS, p.ns, p.name)) this.writer.delete(PODS, p.ns, p.name);
        }, this.opts.gracefulDeleteMs);
        this.graceTimers.add(t.unref());
        return kind;
      }
      case 'podStatus': {
        const p = this.pickPod();
        if (!p) return undefined;
        const cur = this.store.get(PODS, p.ns, p.name);
        if (!cur) return undefined;
        const status = parseStored(cur)['status'] as { containerStatuses?: { restartCount?: number }[]; conditions?: { type?: string; lastTransitionTime?: string }[] };
        for (const c of status.containerStatuses ?? []) c.restartCount = (c.restartCount ?? 0) + (rng.chance(0.5) ? 1 : 0);
        for (const c of status.conditions ?? []) if (c.type === 'Ready') c.lastTransitionTime = this.now();
        this.writer.patch(PODS, p.ns, p.name, { status }, true);
        return kind;
      }
      case 'labelFlip': {
        const p = this.pickPod();
        if (!p) return undefined;
        this.writer.patch(PODS, p.ns, p.name, { metadata: { labels: { 'churn.cattail.dev/flip': rng.chance(0.5) ? 'a' : 'b' } } });
        return kind;
      }
      case 'nodeHeartbeat': {
        if (model.nodes.length === 0) return undefined;
        const name = rng.pick(model.nodes);
        const cur = this.store.get(NODES, '', name);
        if (!cur) return undefined;
        const status = parseStored(cur)['status'] as { conditions?: { type?: string; lastHeartbeatTime?: string }[] };
        const now = this.now();
        for (const c of status.conditions ?? []) if (c.type !== 'NetworkUnavailable') c.lastHeartbeatTime = now;
        this.writer.patch(NODES, '', name, { status: { conditions: status.conditions } }, true);
        return kind;
      }
    }
    return undefined;
  }
}
