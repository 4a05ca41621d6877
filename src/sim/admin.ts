/**
 * `admin`: every control of the simulator, programmatic (tests, benchmarks) and over HTTP under
 * /_sim/ (admin-http.ts). Writes go through the same {@link Writer} as the HTTP verbs, so they
 * produce the same events, RVs and counters as a client's writes would.
 */
import { CattailError } from '../errors.js';
import { findResource, type ResourceDef } from '../registry.js';
import type { Churn, ChurnOptions, ChurnStats } from './churn.js';
import type { SimContext } from './context.js';
import type { CountersSnapshot, StoreGauges } from './counters.js';
import type { JsonObject } from './encode.js';
import { StatusError } from './status.js';
import type { StoredObject } from './store.js';
import type { WatchHub } from './watch.js';
import type { SimFaults } from './faults/controller.js';
import { parseStored, type Writer } from './writes.js';

export interface SimAdmin {
  /** The global resourceVersion (decimal string). */
  currentRv(): string;
  get(resource: string, namespace: string | undefined, name: string): JsonObject | undefined;
  /** Current objects of a resource (optionally one namespace), in key order. */
  list(resource: string, namespace?: string): JsonObject[];
  count(resource: string): number;
  create(resource: string, object: JsonObject): JsonObject;
  /** Full replacement; a stale metadata.resourceVersion is a conflict. Keeps status where a status subresource exists. */
  update(resource: string, object: JsonObject): JsonObject;
  /** Status-only write (the `status` subresource): spec and metadata stay. */
  updateStatus(resource: string, object: JsonObject): JsonObject;
  /** JSON merge patch (`status: true` patches through the status subresource). */
  patch(resource: string, namespace: string | undefined, name: string, patch: JsonObject, opts?: { status?: boolean }): JsonObject;
  /** Deletes; returns the last state stamped with the delete's resourceVersion. */
  delete(resource: string, namespace: string | undefined, name: string): JsonObject;
  startChurn(options: ChurnOptions): void;
  stopChurn(): void;
  /** Applies `n` churn changes at once (deterministic, no timers). */
  churnSteps(n: number, seed?: number): void;
  churnStats(): ChurnStats;
  /** Compacts history up to `rv` (default: current): resuming a watch or list from before it gets 410. Returns the compacted RV. */
  compact(rv?: string | number): string;
  /** Ends open watches (all, or one resource's) cleanly, as a cache re-initialisation does. Returns how many. */
  closeWatches(resource?: string): number;
  /**
   * Installs (`true`) or deletes (`false`) an optional resource's CRD at run time. Deleting it
   * deletes every object first (one DELETED event each, as the API server's finalizer does), then
   * ends its watches; from then on its paths answer 404 and the CRD list no longer holds it.
   * Installing serves it again, empty. Only resources this simulator was started with
   * (`resources`), including omitted ones; built-in resources are refused. Returns the objects deleted.
   */
  setCrdInstalled(resource: string, installed: boolean): { deleted: number };
  counters(): CountersSnapshot;
  metricsText(): string;
  resetCounters(): void;
  /** Faults, disasters, fault timelines and token rotation (src/sim/faults). */
  readonly faults: SimFaults;
}

export function storeGauges(ctx: SimContext): StoreGauges {
  return {
    currentRv: ctx.store.currentRv,
    resources: [...ctx.store.all()].map((rs) => ({ id: rs.def.id, capacity: rs.history.capacity, oldestRv: rs.history.oldestRv, floorRv: rs.history.floorRv, objects: rs.tree.size })),
  };
}

export function createAdmin(ctx: SimContext, writer: Writer, churn: Churn, hubs: readonly WatchHub[], known: readonly ResourceDef[]): Omit<SimAdmin, 'faults'> {
  const def = (id: string): ResourceDef => {
    const d = findResource(id);
    if (!d || !ctx.store.resource(id)) throw new CattailError('CATTAIL_SIM_UNKNOWN_RESOURCE', `the simulator serves no resource ${JSON.stringify(id)}`, { details: { resource: id } });
    return d;
  };
  const write = (fn: () => StoredObject): JsonObject => {
    try {
      return parseStored(fn());
    } catch (err) {
      if (err instanceof StatusError) {
        throw new CattailError('CATTAIL_SIM_WRITE_REJECTED', err.message, { cause: err, details: { code: err.code, reason: err.body.reason } });
      }
      throw err;
    }
  };
  return {
    currentRv: () => String(ctx.store.currentRv),
    get(resource, namespace, name) {
      const o = ctx.store.get(def(resource), namespace ?? '', name);
      return o && parseStored(o);
    },
    list(resource, namespace) {
      const rs = ctx.store.resource(def(resource).id);
      const out: JsonObject[] = [];
      for (const o of rs?.tree.values() ?? []) if (namespace === undefined || o.namespace === namespace) out.push(parseStored(o));
      return out;
    },
    count: (resource) => ctx.store.resource(def(resource).id)?.tree.size ?? 0,
    create: (resource, object) => write(() => writer.create(def(resource), structuredClone(object))),
    update: (resource, object) => write(() => writer.update(def(resource), structuredClone(object))),
    updateStatus: (resource, object) => write(() => writer.update(def(resource), structuredClone(object), undefined, true)),
    patch: (resource, namespace, name, patch, opts) => write(() => writer.patch(def(resource), namespace ?? '', name, structuredClone(patch), opts?.status === true)),
    delete: (resource, namespace, name) => write(() => writer.delete(def(resource), namespace ?? '', name)),
    startChurn: (o) => churn.start(o),
    stopChurn: () => churn.stop(),
    churnSteps(n, seed) {
      if (seed !== undefined || !churn.stats().running) churn.start({ ratePerSec: 0, seed: seed ?? churn.stats().seed });
      for (let i = 0; i < n; i++) churn.step();
    },
    churnStats: () => churn.stats(),
    compact(rv) {
      const n = rv === undefined ? undefined : Number(rv);
      if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `compact: invalid resourceVersion ${JSON.stringify(rv)}`);
      return String(ctx.store.compact(n));
    },
    // The leader's watches only (hubs[0]): the HA follower's stay, as before.
    closeWatches: (resource) => (hubs[0] as WatchHub).closeAll('admin', resource === undefined ? undefined : def(resource).id),
    setCrdInstalled(resource, installed) {
      const d = known.find((k) => k.id === resource || k.id === findResource(resource)?.id);
      if (d === undefined || !d.optional) {
        throw new CattailError('CATTAIL_SIM_UNKNOWN_RESOURCE', `${JSON.stringify(resource)} is not an optional (CRD) resource of this simulator`, { details: { resource } });
      }
      if (installed) {
        ctx.store.addResource(d);
        return { deleted: 0 };
      }
      const deleted = ctx.store.removeResource(d);
      for (const h of hubs) h.closeAll('admin', d.id);
      return { deleted };
    },
    counters: () => ctx.counters.snapshot(storeGauges(ctx)),
    metricsText: () => ctx.counters.expose(storeGauges(ctx)),
    resetCounters: () => ctx.counters.reset(),
  };
}
