/**
 * Many discard-mode agents in one process (`cattail agent --agents N --discard`): each its own
 * connection, node name, resume token and counters; started at a bounded rate so the fleet's own
 * start is not a reconnect storm unless asked for (`connectRatePerSec` 0 = all at once).
 */
import type { Clock, Timer } from '../../clock.js';
import { DiscardAgent, type DiscardMode, type DiscardStats } from './discard-agent.js';

export interface FleetOptions {
  readonly agents: number;
  /** Node names are `${nodePrefix}${i}`, i from 0. */
  readonly nodePrefix: string;
  readonly feeds: readonly string[];
  readonly endpoints: readonly string[];
  readonly caps: readonly string[];
  readonly clock: Clock;
  readonly random: () => number;
  /** Agents started per second; 0 starts them all at once. @default 0 */
  readonly connectRatePerSec?: number;
}

export interface FleetSnapshot extends DiscardStats {
  readonly agents: number;
  readonly inSync: number;
  readonly modes: Readonly<Record<DiscardMode, number>>;
}

export class Fleet {
  readonly agents: DiscardAgent[];
  private timer: Timer | undefined;

  constructor(private readonly o: FleetOptions) {
    this.agents = Array.from({ length: o.agents }, (_, i) => new DiscardAgent({
      node: `${o.nodePrefix}${i}`, feeds: o.feeds, endpoints: o.endpoints, caps: o.caps, clock: o.clock, random: o.random,
    }));
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
    const sum: DiscardStats = { frames: 0, bytes: 0, snapshots: 0, resumes: 0, deltas: 0, reconnects: 0, refusals: 0, violations: 0 };
    const modes: Record<DiscardMode, number> = { connecting: 0, snapshot: 0, streaming: 0, waiting: 0, stopped: 0 };
    let inSync = 0;
    for (const a of this.agents) {
      for (const k of Object.keys(sum) as (keyof DiscardStats)[]) sum[k] += a.stats[k];
      modes[a.mode]++;
      if (a.inSync) inSync++;
    }
    return { ...sum, agents: this.agents.length, inSync, modes };
  }
}
