/**
 * The convergence barrier's metrics: how far the connected agents have applied each served
 * resource, computed at scrape time from the cursors (fanout/applied-watermarks.ts), never kept
 * beside them. One walk of the connections per scrape, shared by both gauges (spreadByResource:
 * one history lookup per cursor), then one sort per resource.
 *
 * resourceVersions become gauge values as numbers: exact up to 2^53 (every etcd revision in
 * practice); above that the gauge is approximate, and /v1/convergence (strings) stays exact.
 */
import { Counter, Gauge } from 'prom-client';
import { compareResourceVersions } from '../../../proto/index.js';
import { type ResourceSpread, spreadByResource } from '../fanout/applied-watermarks.js';
import type { Connection } from '../transport/connection.js';
import type { ServerMetrics } from './metrics.js';

/** The quantiles reported: the minimum (the barrier's floor), the median and the tail. */
export const APPLIED_QUANTILES = [0, 0.5, 0.99] as const;

export interface ConvergenceSources {
  /** Resource ids of the served feeds. */
  readonly resources: () => readonly string[];
  readonly connections: () => Iterable<Connection>;
  /** Convergence requests waiting now. */
  readonly waiting: () => number;
  /** Agent judgements the barrier has made so far (its CPU, in work done). */
  readonly checks: () => number;
}

/** Nearest-rank quantile of an ascending list (q = 0 is the minimum). */
export function quantile<T>(sorted: readonly T[], q: number): T | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function registerConvergenceGauges(metrics: ServerMetrics, src: ConvergenceSources): void {
  const r = [metrics.registry];
  // Both gauges are collected in the same turn of one scrape: the walk is done once for them.
  let cached: Map<string, ResourceSpread> | undefined;
  const spread = (): Map<string, ResourceSpread> => {
    if (cached === undefined) {
      cached = spreadByResource(src.connections());
      setImmediate(() => (cached = undefined));
    }
    return cached;
  };
  new Gauge({
    name: 'cattail_agents_applied_resource_version',
    help: 'Per served resource, quantiles (0 = minimum, 0.5, 0.99) of the upstream resourceVersion the connected agents have applied, derived from their ACKed revisions; agents without a known applied version (no ACK yet) are left out here and counted in cattail_agents_behind. Exact up to 2^53.',
    labelNames: ['resource', 'quantile'],
    registers: r,
    collect() {
      this.reset();
      const all = spread();
      for (const resource of src.resources()) {
        const rvs = [...(all.get(resource)?.applied ?? [])].sort(compareResourceVersions);
        for (const q of APPLIED_QUANTILES) {
          const rv = quantile(rvs, q);
          if (rv !== undefined) this.set({ resource, quantile: String(q) }, Number(rv));
        }
      }
    },
  });
  new Gauge({
    name: 'cattail_agents_behind',
    help: "Per served resource, connected agents whose applied resourceVersion is below this replica's own watermark (or not known yet: no ACK since they connected).",
    labelNames: ['resource'],
    registers: r,
    collect() {
      this.reset();
      const all = spread();
      for (const resource of src.resources()) this.set({ resource }, all.get(resource)?.behind ?? 0);
    },
  });
  new Gauge({
    name: 'cattail_convergence_waiters',
    help: 'GET /v1/convergence requests waiting for the agents (at most 1,000; more are refused with 503).',
    registers: r,
    collect() {
      this.set(src.waiting());
    },
  });
  let counted = 0;
  new Counter({
    name: 'cattail_convergence_agent_checks_total',
    help: "Agent judgements made for waiting GET /v1/convergence requests (one per agent and request an event concerns): the barrier's share of the fan-out loop, in work done.",
    registers: r,
    collect() {
      const now = src.checks();
      this.inc(now - counted);
      counted = now;
    },
  });
}
