/**
 * /livez and /readyz.
 *
 * Liveness is "my loops are turning": the fan-out's sweep ran recently and no flush has been
 * pending for long. It never depends on the upstream (typha PR #51: a liveness probe that fails
 * when the API server is down restarts every replica at once, which is the relist storm itself).
 *
 * Readiness is "new agents should come here": every served feed is in sync and not stale
 * (calico#11169: a Typha serving stale data while ready is the failure users hit), and the server
 * is not draining. The body explains a 503, one line per feed, and says whether and why new
 * agents are refused (admission, governor.ts), which is not the same question: a replica at its
 * target share stays ready, a stale one still admits.
 */
import type { Clock } from '../../clock.js';
import type { FanOut } from '../fanout/fanout.js';
import type { FeedRuntime } from '../fanout/feeds.js';
import type { Governor } from '../transport/governor.js';
import type { Upstream } from '../pipeline/seams.js';

export interface HealthReport {
  readonly ok: boolean;
  readonly lines: readonly string[];
}

/** A loop counts as stuck after this many of its intervals without a turn (at least 5 s). */
const STUCK_INTERVALS = 10;
const STUCK_MIN_MS = 5_000;

export class Health {
  constructor(
    private readonly clock: Clock,
    private readonly fanout: FanOut,
    private readonly feeds: readonly FeedRuntime[],
    private readonly governor: Governor,
    private readonly upstream?: Pick<Upstream, 'health'>,
    /** Where the data comes from, first line of every report (says loudly when it is simulated). */
    private readonly source?: string,
  ) {}

  live(): HealthReport {
    const now = this.clock.monotonic();
    const limit = Math.max(STUCK_MIN_MS, this.fanout.sweepIntervalMs * STUCK_INTERVALS);
    const sweepAge = now - this.fanout.lastSweepMs;
    const lines = [...(this.source ? [`upstream: ${this.source}`] : []), `fan-out sweep: last ${Math.round(sweepAge)} ms ago (limit ${limit} ms)`];
    return { ok: sweepAge <= limit, lines };
  }

  ready(): HealthReport {
    const lines: string[] = this.source ? [`upstream: ${this.source}`] : [];
    let ok = true;
    if (this.governor.isDraining) ok = false;
    // Why new agents are turned away, in the words the 503 uses: an operator reading /readyz
    // should not have to guess whether "not ready" also means "refusing".
    const open = this.fanout.connections.size;
    const refusing = this.governor.refusing(open);
    const target = this.governor.targetConnections;
    lines.push(refusing !== undefined ? `refusing agents: ${refusing.detail}` : `admitting agents (${open} open${target !== undefined ? `, target ${target}` : ''})`);
    for (const f of this.feeds) {
      const m = f.store.meta();
      const good = m.status === 'in-sync' && !m.stale;
      ok &&= good;
      lines.push(`feed ${f.name}: ${m.status}${m.stale ? ', stale' : ''} at revision ${f.store.revision}${good ? '' : ' (not ready)'}`);
    }
    // 401/403 never look like a missing CRD: the resource may still be "synced" with stale data,
    // so a refused replica must stop attracting agents even before it turns stale.
    for (const h of this.upstream?.health() ?? []) {
      if (h.authError === undefined) continue;
      ok = false;
      lines.push(`resource ${h.id}: API server refused us: ${h.authError} (not ready)`);
    }
    return { ok, lines };
  }
}
