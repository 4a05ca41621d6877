/**
 * Warm restarts of a replica (`cattail serve --state-dir`, DESIGN.md "Warm restart"): checkpoints
 * every resource's projected state with its resourceVersion, and on start restores it and seeds
 * the reflectors so they watch from the saved resourceVersions instead of listing.
 *
 * When a checkpoint is written:
 * - every `intervalMs`, when some resource's resourceVersion moved since the last one, and only
 *   when every served resource is synced (one still in its first list has no state to save, so
 *   none is written and the previous checkpoint stands; a relisting resource stays synced and is
 *   saved at its previous resourceVersion);
 * - once more when the replica starts draining (`final()`), after which no other is written.
 *   Why then and not at exit: agents drained early leave with the state of that moment, and a
 *   checkpoint newer than an agent's watermarks cannot rebase it (PROTOCOL.md §7.1: the replica
 *   needs a revision at or below the agent's watermarks). A checkpoint at or behind every agent
 *   it served lets each of them rebase once the restarted replica's watches have caught up.
 *
 * Cost: one synchronous copy of the views' entry lists (values are shared, not copied), one
 * msgpack encode and SHA-256 of the file, then an asynchronous atomic write. At 150,000 pods the
 * file is about the felix feed's size (~100 MB) and the encode a few hundred milliseconds of one
 * core, hence a default interval of minutes, not seconds.
 *
 * Failure modes: a write that fails (disk full, above `maxBytes`) is logged with its code, counted,
 * and retried at the next interval; the previous file stays (atomic-file.ts). A checkpoint that
 * fails any check on load is reported (CATTAIL_SERVER_STATE_INVALID) and the replica starts cold.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Clock, type Timer, deadline, realClock } from '../../clock.js';
import { CattailError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ResourceCheckpoint } from '../state/replica-checkpoint.js';
import { readReplicaState, writeReplicaState } from '../state/replica-state-file.js';
import type { Reflector } from './reflector.js';
import type { ResourceView } from './resource-view.js';

export interface WarmStateOptions {
  readonly dir: string;
  /** What the state is valid for (cluster, feeds, projection version); see upstream.ts. */
  readonly identity: string;
  /** Bound of the checkpoint file, in bytes: larger ones are neither written nor read. */
  readonly maxBytes: number;
  /** Time between two checkpoints, in ms. */
  readonly intervalMs: number;
  readonly clock: Clock;
  /** Lines name `code`, `dir`, `resource`, `restored`, `resources`, `bytes`, `cluster`: the logger must not bind those. */
  readonly logger: Logger;
  readonly registry: Registry;
  readonly sources: readonly { readonly reflector: Reflector; readonly view: ResourceView }[];
  /**
   * Run right before the synchronous copy: hands the store whatever the views hold that it has
   * not been given yet (the dispatcher's held watermark-only changes), so that the checkpoint is
   * at or behind the state agents are served, never ahead of it.
   */
  readonly beforeCopy?: () => void;
  /** Bound of the start's read, in wall-clock ms (see UpstreamOptions.stateLoadMaxMs). @default STATE_LOAD_MAX_MS */
  readonly loadMaxMs?: number | undefined;
  /**
   * The cluster's name (cluster-name.ts), read by the caller from the start: saved with each
   * checkpoint, and compared at load with the one a checkpoint was saved under.
   */
  readonly cluster?: { readonly name: () => string | undefined; readonly firstAttempt: Promise<void> } | undefined;
  /** How long a load waits for the cluster's name, in wall-clock ms. @default CLUSTER_CHECK_MAX_MS */
  readonly clusterCheckMaxMs?: number | undefined;
}

/** The longest a start waits to read the replica checkpoint before it starts cold, in ms. */
export const STATE_LOAD_MAX_MS = 60_000;
/**
 * The longest a start with a checkpoint waits for the cluster's name (one GET of kube-system), in
 * ms. Past it, or when the read fails, the checkpoint is trusted on its identity alone: a warm
 * start matters most while the API server is unreachable, and the name is read again later.
 */
export const CLUSTER_CHECK_MAX_MS = 10_000;

/** What a start found in the state directory. */
export type WarmStartResult = 'warm' | 'partial' | 'cold' | 'invalid';

/** The warm-restart metrics (registered where the upstream's are; also listed by docs/reference.md). */
export function warmStateMetrics(registry: Registry): { writes: Counter<'result'>; bytes: Gauge; lastSuccess: Gauge; restored: Gauge; starts: Counter<'result'> } {
  const registers = [registry];
  return {
    writes: new Counter({ name: 'cattail_state_checkpoint_writes_total', help: 'Replica checkpoints (--state-dir) by result: ok, error (logged with its code; retried next interval), unsynced (skipped: a resource was not synced).', labelNames: ['result'], registers }),
    bytes: new Gauge({ name: 'cattail_state_checkpoint_bytes', help: 'Size of the last replica checkpoint written, in bytes.', registers }),
    lastSuccess: new Gauge({ name: 'cattail_state_checkpoint_last_success_timestamp_seconds', help: 'Wall-clock time of the last replica checkpoint written (0: none yet).', registers }),
    restored: new Gauge({ name: 'cattail_state_restored_resources', help: 'Resources this replica restored from its checkpoint at start and watched from the saved resourceVersion instead of listing.', registers }),
    starts: new Counter({ name: 'cattail_state_starts_total', help: 'Replica starts with --state-dir by what the checkpoint gave: warm (every resource), partial, cold (no checkpoint), invalid (reported and ignored).', labelNames: ['result'], registers }),
  };
}

export class WarmState {
  private timer: Timer | undefined;
  private writing: Promise<void> | undefined;
  private frozen = false;
  private finalBegun = false;
  /** The cluster the restored checkpoint named (see writeOnce). */
  private restoredCluster: string | undefined;
  /** The resourceVersions of the last checkpoint written or restored, to skip unchanged ones. */
  private lastRvs = '';
  private readonly writes: Counter<'result'>;
  private readonly bytes: Gauge;
  private readonly lastSuccess: Gauge;
  private readonly restored: Gauge;
  private readonly starts: Counter<'result'>;

  constructor(private readonly o: WarmStateOptions) {
    ({ writes: this.writes, bytes: this.bytes, lastSuccess: this.lastSuccess, restored: this.restored, starts: this.starts } = warmStateMetrics(o.registry));
  }

  /**
   * Restores the checkpoint into the views and seeds their reflectors. Call before the
   * reflectors start. Never throws: whatever is wrong with the file means a cold start.
   */
  async load(): Promise<WarmStartResult> {
    let invalid: CattailError | undefined;
    // Bounded: a state volume that stops answering (a network volume, a failing disk) held the
    // start for good, unready with every feed resyncing and /livez still 200, and the shutdown
    // behind it. Past the bound the replica starts cold; the read is left to end on its own.
    const maxMs = this.o.loadMaxMs ?? STATE_LOAD_MAX_MS;
    const cp = await deadline(
      (fn, ms) => realClock.setTimeout(fn, ms),
      readReplicaState(this.o.dir, this.o.identity, this.o.maxBytes, (err) => {
        invalid = err;
      }),
      maxMs,
      () => new CattailError('CATTAIL_SERVER_STATE_INVALID', `reading the replica checkpoint in ${this.o.dir} took more than ${maxMs} ms`, { details: { dir: this.o.dir } }),
    ).catch((err: unknown) => {
      // Only the deadline rejects: readReplicaState reports everything else through onInvalid.
      invalid = err as CattailError;
      return undefined;
    });
    const foreign = cp?.cluster === undefined ? undefined : await this.otherCluster(cp.cluster);
    if (foreign !== undefined) invalid = foreign;
    if (cp === undefined || foreign !== undefined) {
      const result = invalid === undefined ? 'cold' : 'invalid';
      if (invalid !== undefined) this.o.logger.warn({ code: invalid.code, err: invalid, dir: this.o.dir }, 'replica checkpoint ignored; starting cold (listing every resource)');
      else this.o.logger.info({ dir: this.o.dir }, 'no replica checkpoint; starting cold');
      this.starts.inc({ result });
      return result;
    }
    this.restoredCluster = cp.cluster;
    const saved = new Map<string, ResourceCheckpoint>(cp.resources.map((r) => [r.name, r]));
    let restored = 0;
    for (const { reflector, view } of this.o.sources) {
      const r = saved.get(reflector.id);
      if (r === undefined) continue;
      if (r.notServed === true) {
        // Looked at again by its first attempt (a 404 brings fresh evidence, a list its objects).
        reflector.restoreNotServed(r.resourceVersion);
        restored++;
        continue;
      }
      if (!view.restore(r.views)) {
        this.o.logger.warn({ code: 'CATTAIL_SERVER_STATE_INVALID', resource: reflector.id }, 'checkpointed views of this resource do not match its feeds; listing it');
        continue;
      }
      reflector.seed(r.resourceVersion);
      restored++;
    }
    this.lastRvs = this.rvsKey();
    this.restored.set(restored);
    const result = restored === this.o.sources.length ? 'warm' : 'partial';
    this.starts.inc({ result });
    this.o.logger.info({ dir: this.o.dir, restored, resources: this.o.sources.length }, 'replica checkpoint restored; watching from its resourceVersions');
    return result;
  }

  start(): void {
    if (this.timer !== undefined || this.frozen || this.finalBegun) return;
    this.timer = this.o.clock.setInterval(() => void this.write(false), this.o.intervalMs).unref();
  }

  /**
   * The last checkpoint (see the header: at the start of a drain). No other follows. When
   * `abandon` fires while a periodic write is still in flight (a stalled volume), the final one is
   * not started when that write ends: it would copy the state of that later moment, newer than
   * what the agents drained meanwhile hold. A final write already started copied the state at its
   * start and finishes (or not) in the background.
   */
  async final(abandon?: AbortSignal): Promise<void> {
    this.beginFinal();
    const off = (): void => {
      this.frozen = true;
    };
    abandon?.addEventListener('abort', off, { once: true });
    try {
      await this.writing;
      await this.write(true);
      this.frozen = true;
    } finally {
      abandon?.removeEventListener('abort', off);
    }
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** The drain began: no periodic checkpoint from now on (start() included); only final()'s. */
  beginFinal(): void {
    this.finalBegun = true;
    this.stop();
  }

  /** No checkpoint at all from now on (a final one given up on before it started). */
  freeze(): void {
    this.beginFinal();
    this.frozen = true;
  }

  /** For tests and final(): writes one checkpoint now when anything moved. */
  write(force: boolean): Promise<void> {
    if (this.frozen) return Promise.resolve();
    if (this.writing !== undefined) return this.writing;
    const p = this.writeOnce(force).finally(() => {
      this.writing = undefined;
    });
    this.writing = p;
    return p;
  }

  /**
   * The error when the cluster's name, read now, is not `saved` (the name the checkpoint was
   * written under); undefined when it is, or cannot be read within clusterCheckMaxMs.
   *
   * Why: a cluster built again on the same hosts (kubeadm reset and init) may keep its API
   * server address and CA, so the checkpoint's identity matched, and the replica resumed its
   * watches from the old cluster's resourceVersions with the old state, which it served under
   * the new cluster's name until the watches failed. Agents then held the old state labelled with
   * the new cluster, and every replica refused them with 4015 (PROTOCOL.md §8 "Another cluster").
   */
  private async otherCluster(saved: string): Promise<CattailError | undefined> {
    const c = this.o.cluster;
    if (c === undefined) return undefined;
    const maxMs = this.o.clusterCheckMaxMs ?? CLUSTER_CHECK_MAX_MS;
    // Wall-clock, as the file read's bound: the GET is real I/O (see UpstreamOptions.stateLoadMaxMs).
    await deadline((fn, ms) => realClock.setTimeout(fn, ms), c.firstAttempt, maxMs, () => new Error('timeout')).catch(() => undefined);
    const now = c.name();
    if (now === undefined) {
      this.o.logger.warn({ dir: this.o.dir, cluster: saved }, 'the cluster\'s kube-system namespace could not be read: the replica checkpoint is trusted on its API server address and CA alone');
      return undefined;
    }
    if (now === saved) return undefined;
    return new CattailError('CATTAIL_SERVER_STATE_INVALID', `replica checkpoint was written in cluster ${saved}, and this is ${now} (a cluster built again at the same address)`, { details: { saved, cluster: now } });
  }

  private rvsKey(): string {
    return JSON.stringify(this.o.sources.map(({ reflector }) => reflector.checkpointRv() ?? reflector.notServedRv ?? null));
  }

  private async writeOnce(force: boolean): Promise<void> {
    const resources: ResourceCheckpoint[] = [];
    this.o.beforeCopy?.();
    // One synchronous pass: every resource's views are copied at their own consistent RV.
    for (const { reflector, view } of this.o.sources) {
      const h = reflector.health();
      if (h.missing) {
        // Its evidence, so the restored revision names it at the value agents hold (not-served.ts).
        if (reflector.notServedRv !== undefined) resources.push({ name: reflector.id, resourceVersion: reflector.notServedRv, views: [], notServed: true });
        continue;
      }
      const rv = reflector.checkpointRv();
      if (rv === undefined) {
        this.writes.inc({ result: 'unsynced' });
        return;
      }
      resources.push({ name: reflector.id, resourceVersion: rv, views: view.exportViews() });
    }
    const key = this.rvsKey();
    if (!force && key === this.lastRvs) return;
    try {
      // Unknown yet (the read failed so far): the restored file's, since the state is still the one it named.
      const cluster = this.o.cluster?.name() ?? this.restoredCluster;
      const n = await writeReplicaState(this.o.dir, { identity: this.o.identity, cluster, resources }, this.o.maxBytes);
      this.lastRvs = key;
      this.writes.inc({ result: 'ok' });
      this.bytes.set(n);
      this.lastSuccess.set(this.o.clock.now() / 1000);
      this.o.logger.debug({ bytes: n, resources: resources.length }, 'replica checkpoint written');
    } catch (err) {
      this.writes.inc({ result: 'error' });
      // A write error (ENOSPC, EIO, a directory gone) is not an invalid checkpoint, which means
      // "not used, cold start" (that code once covered both).
      const code = err instanceof CattailError ? err.code : 'CATTAIL_SERVER_STATE_WRITE_FAILED';
      this.o.logger.warn({ code, err, dir: this.o.dir }, 'replica checkpoint not written; the previous one stays');
    }
  }
}
