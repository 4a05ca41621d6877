/**
 * Many discard-mode agents in one process (`cattail agent --agents N --discard`): each its own
 * connection, node name, resume token and counters; started at a bounded rate so the fleet's own
 * start is not a reconnect storm unless asked for (`connectRatePerSec` 0 = all at once).
 */
import type { Timer } from '../../clock.js';
import { DiscardAgent, type DiscardAgentOptions, type DiscardMode, type DiscardStats } from './discard-agent.js';

/** Which agents of a fleet read slowly or stall (the benchmark's slow-agents scenario). */
export interface FleetImpairments {
  /** Percentage of the agents that stall (stop reading for `stallMs`), taken first by index. @default 0 */
  readonly stalledAgentsPercent?: number;
  /** How long a stalled agent stops reading, in ms, from its first in-sync. */
  readonly stallMs?: number;
  /** Percentage of the agents that read slowly, taken after the stalled ones. @default 0 */
  readonly slowAgentsPercent?: number;
  /** A slow agent's read rate, in bytes/s, from its first in-sync. */
  readonly slowReadBytesPerSec?: number;
}

export type AgentGroup = 'normal' | 'slow' | 'stalled';

/** Per group of agents: counts, and the close codes its connections ended with. */
export interface GroupSnapshot {
  readonly agents: number;
  readonly inSync: number;
  readonly snapshots: number;
  readonly resumes: number;
  readonly reconnects: number;
  readonly impaired: number;
  /** Close code → connections that ended with it (1006: no close frame, e.g. the server destroyed the socket). */
  readonly closeCodes: Record<string, number>;
}

/** What every agent of the fleet shares with a single discard agent, plus the fleet's own settings. */
export interface FleetOptions extends Pick<DiscardAgentOptions, 'feeds' | 'endpoints' | 'caps' | 'clock' | 'random' | 'handshakeTimeoutMs' | 'readTimeoutFactor'> {
  readonly agents: number;
  /** Node names are `${nodePrefix}${i}`, i from 0. */
  readonly nodePrefix: string;
  /** Agents started per second; 0 starts them all at once. @default 0 */
  readonly connectRatePerSec?: number;
  /** Record when each agent first saw each resourceVersion of this resource (latency probe). */
  readonly trackResource?: string;
  /** Monotonic time in µs, comparable across processes on one machine (CLOCK_MONOTONIC). */
  readonly nowUs?: () => number;
  readonly impairments?: FleetImpairments;
}

/** Per resourceVersion of the tracked resource: agents that saw it, first and last receipt (µs). */
export type Arrivals = Map<string, { count: number; firstUs: number; lastUs: number }>;

export interface FleetSnapshot extends DiscardStats {
  readonly agents: number;
  readonly inSync: number;
  /**
   * With trackResource: the oldest resourceVersion of it any normal agent holds (all agents have at
   * least this; slow and stalled agents are left out, as from the latency probe).
   */
  readonly minTrackedRv?: number;
  readonly modes: Readonly<Record<DiscardMode, number>>;
  /** With impairments: the figures per group. */
  readonly groups?: Readonly<Record<AgentGroup, GroupSnapshot>>;
}

/** Larger watermark jumps (a resume over a long gap) are not latency samples; bounds the work. */
const MAX_RVS_PER_STEP = 100_000;

export class Fleet {
  readonly agents: DiscardAgent[];
  /** The group of each agent, by index. */
  readonly groups: AgentGroup[];
  readonly arrivals: Arrivals = new Map();
  private timer: Timer | undefined;

  constructor(private readonly o: FleetOptions) {
    const track = o.trackResource;
    const nowUs = o.nowUs ?? (() => Number(process.hrtime.bigint() / 1000n));
    // Every resourceVersion in (previous, rv] reached this agent now: the write with that RV is
    // applied here. Per RV: how many agents have it, and the first and last receipt time. The
    // first watermark an agent sees (its snapshot) is not a latency event and is skipped.
    const onWatermark = track === undefined ? undefined : (resource: string, rv: string, previous: string | undefined): void => {
      if (resource !== track || previous === undefined) return;
      const from = Number(previous);
      const to = Number(rv);
      if (!(to > from) || to - from > MAX_RVS_PER_STEP) return;
      const t = nowUs();
      for (let r = from + 1; r <= to; r++) {
        const key = String(r);
        const a = this.arrivals.get(key);
        if (a === undefined) this.arrivals.set(key, { count: 1, firstUs: t, lastUs: t });
        else {
          a.count++;
          a.lastUs = t;
        }
      }
    };
    // Impaired agents are taken by index (stalled first, then slow), rounded to whole agents.
    const imp = o.impairments ?? {};
    const stalled = Math.round((o.agents * (imp.stalledAgentsPercent ?? 0)) / 100);
    const slow = Math.round((o.agents * (imp.slowAgentsPercent ?? 0)) / 100);
    this.groups = Array.from({ length: o.agents }, (_, i): AgentGroup => (i < stalled ? 'stalled' : i < stalled + slow ? 'slow' : 'normal'));
    this.agents = Array.from({ length: o.agents }, (_, i) => {
      const group = this.groups[i];
      const impairment = group === 'stalled' ? { kind: 'stall' as const, stallMs: imp.stallMs ?? 0 } : group === 'slow' ? { kind: 'slow' as const, readBytesPerSec: imp.slowReadBytesPerSec ?? 0 } : undefined;
      return new DiscardAgent({
        node: `${o.nodePrefix}${i}`, feeds: o.feeds, endpoints: o.endpoints, caps: o.caps, clock: o.clock, random: o.random,
        // The latency probe measures the normal agents (the ones an impaired neighbour must not slow down).
        ...(onWatermark !== undefined && group === 'normal' ? { onWatermark } : {}),
        ...(impairment !== undefined ? { impairment } : {}),
        ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}),
        ...(o.readTimeoutFactor !== undefined ? { readTimeoutFactor: o.readTimeoutFactor } : {}),
      });
    });
  }

  /** Every agent drops its connection at once (a network blip); each resumes on its own. */
  blip(): void {
    for (const a of this.agents) a.blip();
  }

  start(): void {
    const rate = this.o.connectRatePerSec ?? 0;
    if (rate <= 0) {
      for (const a of this.agents) a.start();
      return;
    }
    let next = 0;
    const perTickMs = 100;
    const perTick = Math.max(1, Math.round((rate * perTickMs) / 1000));
    const tick = (): void => {
      for (let k = 0; k < perTick && next < this.agents.length; k++) this.agents[next++]?.start();
      if (next < this.agents.length) this.timer = this.o.clock.setTimeout(tick, perTickMs);
    };
    tick();
  }

  stop(): void {
    this.timer?.cancel();
    for (const a of this.agents) a.stop();
  }

  snapshot(): FleetSnapshot {
    const sum: DiscardStats = { frames: 0, bytes: 0, snapshots: 0, resumes: 0, deltas: 0, reconnects: 0, refusals: 0, violations: 0, impaired: 0 };
    const modes: Record<DiscardMode, number> = { connecting: 0, snapshot: 0, streaming: 0, waiting: 0, stopped: 0 };
    let inSync = 0;
    for (const a of this.agents) {
      for (const k of Object.keys(sum) as (keyof DiscardStats)[]) sum[k] += a.stats[k];
      modes[a.mode]++;
      if (a.inSync) inSync++;
    }
    const track = this.o.trackResource;
    const minTrackedRv = track === undefined ? undefined : this.agents.reduce((m, a, i) => (this.groups[i] === 'normal' ? Math.min(m, a.watermark(track)) : m), Number.MAX_SAFE_INTEGER);
    const groups = this.o.impairments === undefined ? undefined : this.groupSnapshots();
    return { ...sum, agents: this.agents.length, inSync, modes, ...(minTrackedRv !== undefined ? { minTrackedRv } : {}), ...(groups !== undefined ? { groups } : {}) };
  }

  private groupSnapshots(): Record<AgentGroup, GroupSnapshot> {
    const empty = (): { agents: number; inSync: number; snapshots: number; resumes: number; reconnects: number; impaired: number; closeCodes: Record<string, number> } =>
      ({ agents: 0, inSync: 0, snapshots: 0, resumes: 0, reconnects: 0, impaired: 0, closeCodes: {} });
    const out = { normal: empty(), slow: empty(), stalled: empty() };
    this.agents.forEach((a, i) => {
      const g = out[this.groups[i] ?? 'normal'];
      g.agents++;
      if (a.inSync) g.inSync++;
      g.snapshots += a.stats.snapshots;
      g.resumes += a.stats.resumes;
      g.reconnects += a.stats.reconnects;
      g.impaired += a.stats.impaired;
      for (const [code, n] of a.closeCodes) g.closeCodes[code] = (g.closeCodes[code] ?? 0) + n;
    });
    return out;
  }
}
