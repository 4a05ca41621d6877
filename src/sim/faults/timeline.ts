/**
 * A fault script: timed actions on the injected clock (DESIGN.md "Simulated API server"). Either written by
 * hand or drawn from a seed by {@link randomTimeline}; the same seed gives the same entries, and
 * run on a FakeClock against the same requests they give the same faults and events.
 */
import type { Clock, Timer } from '../../clock.js';
import { CattailError } from '../../errors.js';
import { Rng } from '../rng.js';
import { FAULT_KINDS, validateRule, type FaultKind, type FaultRule } from './rules.js';

export type TimelineAction =
  | { type: 'fault'; rule: FaultRule }
  | { type: 'clearFaults' }
  | { type: 'churn'; steps: number }
  | { type: 'compact' }
  | { type: 'terminate'; resource: string; retryAfterMs?: number };

export interface TimelineEntry {
  /** Clock ms after the timeline starts. */
  atMs: number;
  action: TimelineAction;
}

export interface RandomTimelineOptions {
  /** Span of the timeline. @default 60_000 */
  durationMs?: number;
  /** Number of entries. @default 20 */
  count?: number;
  /** Resources targeted by fault rules and terminations. @default ['pods'] */
  resources?: readonly string[];
  /** Fault kinds to draw from. @default every kind */
  kinds?: readonly FaultKind[];
}

export function randomTimeline(seed: number, o: RandomTimelineOptions = {}): TimelineEntry[] {
  const durationMs = o.durationMs ?? 60_000;
  const count = o.count ?? 20;
  if (!Number.isSafeInteger(durationMs) || durationMs < 1 || !Number.isSafeInteger(count) || count < 0 || count > 100_000) {
    throw new CattailError('CATTAIL_SIM_FAULT_INVALID', `randomTimeline: durationMs must be >= 1 and count in [0, 100000]`);
  }
  const rng = new Rng(seed);
  const resources = o.resources ?? ['pods'];
  const kinds = o.kinds ?? (Object.keys(FAULT_KINDS) as FaultKind[]);
  const out: TimelineEntry[] = [];
  for (let i = 0; i < count; i++) {
    const atMs = rng.int(0, durationMs - 1);
    const roll = rng.next();
    let action: TimelineAction;
    if (roll < 0.45) action = { type: 'churn', steps: rng.int(1, 20) };
    else if (roll < 0.8) {
      const kind = rng.pick(kinds);
      const resource = rng.pick(resources);
      const times = rng.int(1, 3);
      const afterEvents = rng.int(0, 3);
      // Connection-level kinds are selected by probability/times only.
      action = { type: 'fault', rule: FAULT_KINDS[kind].verbs.length === 0 ? { kind, times } : { kind, resource, times, afterEvents } };
    }
    else if (roll < 0.88) action = { type: 'clearFaults' };
    else if (roll < 0.94) action = { type: 'compact' };
    else action = { type: 'terminate', resource: rng.pick(resources), retryAfterMs: rng.int(0, 3) * 1000 };
    out.push({ atMs, action });
  }
  // Stable sort: entries at the same ms keep their drawn order.
  return out.map((e, i) => ({ e, i })).sort((a, b) => a.e.atMs - b.e.atMs || a.i - b.i).map(({ e }) => e);
}

export function validateTimeline(x: unknown): TimelineEntry[] {
  if (!Array.isArray(x)) throw new CattailError('CATTAIL_SIM_FAULT_INVALID', 'timeline: entries must be an array');
  return x.map((e: Partial<TimelineEntry> | null) => {
    const a = e?.action as Partial<TimelineAction> | undefined;
    if (!e || !Number.isSafeInteger(e.atMs) || (e.atMs as number) < 0 || !a) throw new CattailError('CATTAIL_SIM_FAULT_INVALID', `timeline: bad entry ${JSON.stringify(e)}`);
    switch (a.type) {
      case 'fault':
        return { atMs: e.atMs as number, action: { type: 'fault', rule: validateRule((a as { rule?: unknown }).rule) } };
      case 'churn': {
        const steps = (a as { steps?: unknown }).steps;
        if (!Number.isSafeInteger(steps) || (steps as number) < 0) throw new CattailError('CATTAIL_SIM_FAULT_INVALID', 'timeline: churn needs steps >= 0');
        return { atMs: e.atMs as number, action: { type: 'churn', steps: steps as number } };
      }
      case 'terminate': {
        const t = a as { resource?: unknown; retryAfterMs?: unknown };
        if (typeof t.resource !== 'string') throw new CattailError('CATTAIL_SIM_FAULT_INVALID', 'timeline: terminate needs a resource');
        return { atMs: e.atMs as number, action: { type: 'terminate', resource: t.resource, retryAfterMs: Number(t.retryAfterMs ?? 0) } };
      }
      case 'compact':
      case 'clearFaults':
        return { atMs: e.atMs as number, action: { type: a.type } };
      default:
        throw new CattailError('CATTAIL_SIM_FAULT_INVALID', `timeline: unknown action ${JSON.stringify(a.type)}`);
    }
  });
}

/** Arms one clock timer per entry; `cancel` disarms the rest. */
export function scheduleTimeline(clock: Clock, entries: readonly TimelineEntry[], apply: (a: TimelineAction) => void): { cancel(): void } {
  const timers: Timer[] = entries.map((e) => clock.setTimeout(() => apply(e.action), e.atMs).unref());
  return { cancel: () => timers.forEach((t) => t.cancel()) };
}
