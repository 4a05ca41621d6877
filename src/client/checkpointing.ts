/**
 * When the client writes and reads its checkpoint (the format is checkpoint.ts): read once before
 * the first connection; written at most once per `intervalMs` after a STATUS or snapshot that the
 * digest verified, and once more on `close()`; removed after a digest mismatch or revision gap
 * (the held state is then known wrong, and a restart must not bring it back), but not after an
 * incoming snapshot failed its check (the held state is untouched: FeedState.snapshotRefused).
 *
 * A feed whose state is not verified at the moment of a write keeps its previous checkpoint: each
 * feed's entry is always a state some server vouched for. Entries are copied only when a write is
 * due, never per STATUS: a 100 MB feed must not be copied every second. What is saved is taken in
 * the caller's turn (the STATUS handler), not when the queued write runs: a socket's frames are
 * delivered back to back, and by then the next DELTA had moved the state past the verified
 * revision. A due write with nothing new verified (a scoped feed's STATUSes without digest,
 * PROTOCOL.md §4.7) neither writes nor restarts the interval: it did, and the STATUS with digest
 * a moment later found the interval running, so the file trailed by minutes.
 */
import { type Clock, deadline, realClock } from '../clock.js';
import { CattailError } from '../errors.js';
import { type FeedCheckpoint, readCheckpoint, removeCheckpoint, writeCheckpoint } from './checkpoint.js';
import type { FeedState, RawChangeBatch } from './feed-state.js';

/** ConnectOptions.checkpointIoMaxMs's default, in ms. */
export const CHECKPOINT_IO_MAX_MS = 10_000;

export interface CheckpointKeeperOptions {
  readonly dir: string;
  readonly node: string;
  readonly intervalMs: number;
  /**
   * Bound of the start's read and of close()'s last write, in wall-clock ms (ConnectOptions
   * checkpointIoMaxMs). Not the injected clock's: a stalled volume is real I/O, and a fake clock
   * advanced during a healthy read would cut it off (the replica's rule too, warm-state.ts).
   * @default CHECKPOINT_IO_MAX_MS
   */
  readonly ioMaxMs?: number | undefined;
  readonly clock: Clock;
  readonly feeds: ReadonlyMap<string, { readonly state: FeedState }>;
  /** Per feed, the data models the agent applies (ConnectOptions.models); a feed absent takes any. */
  readonly models?: Readonly<Record<string, readonly string[]>>;
  /** The cluster the held state came from (§8 "Another cluster"), written with it. */
  readonly cluster?: () => string | undefined;
}

export class CheckpointKeeper {
  private readonly saved = new Map<string, FeedCheckpoint>();
  /** checkpointKey() of each saved entry taken from a live feed (a restored one has none: the first verified state replaces it). */
  private readonly savedKeys = new Map<string, string>();
  private lastWriteMs = Number.NEGATIVE_INFINITY;
  /**
   * Every write and removal runs after the one before (a chain): they share one temporary file
   * (atomic-file.ts), and a flush() or discard() that started beside a running write truncated
   * its temporary file or renamed an older state last.
   */
  private chain: Promise<void> = Promise.resolve();
  /** Operations queued on the chain and not finished. */
  private queued = 0;
  /** Feeds restored at start. */
  restored = 0;
  /** The cluster the restored state came from (the file's; undefined: none recorded). */
  restoredCluster: string | undefined;
  written = 0;
  /** Why the checkpoint found at start (or a later write) was not usable. */
  problem: CattailError | undefined;

  constructor(private readonly o: CheckpointKeeperOptions) {}

  /** Loads the checkpoint into the feeds; returns their states as change batches for the host. */
  async restore(): Promise<RawChangeBatch[]> {
    // Bounded: a state volume that stops answering (a failing disk, a network mount) held the
    // first connection for good, the agent idle with no status and whenInSync() never settling.
    // Past the bound the agent starts without it; the read is left to end on its own, unused.
    const cp = await this.bounded(readCheckpoint(this.o.dir, this.o.node, (err) => {
      this.problem = err;
    }), 'CATTAIL_CLIENT_CHECKPOINT_INVALID', 'reading the checkpoint');
    if (cp === undefined) return [];
    this.restoredCluster = cp.cluster;
    const out: RawChangeBatch[] = [];
    for (const f of cp.feeds) {
      const rt = this.o.feeds.get(f.name);
      if (rt === undefined) continue; // a feed this client no longer asks for
      // PROTOCOL.md §3.2: never handed to the host as a model it does not apply (the agent's
      // models may have changed since the file was written). No model: calico.v1, as in WELCOME.
      const models = this.o.models;
      const known = models !== undefined && Object.hasOwn(models, f.name) ? models[f.name] : undefined;
      const model = f.model ?? 'calico.v1';
      if (known !== undefined && !known.includes(model)) {
        this.problem = new CattailError('CATTAIL_CLIENT_CHECKPOINT_INVALID', `checkpoint of feed ${f.name} holds model ${model}; this agent applies only ${known.join(', ')}`, { details: { feed: f.name, model } });
        continue;
      }
      out.push(rt.state.restore(f));
      this.saved.set(f.name, f);
      this.restored++;
    }
    return out;
  }

  /** After a STATUS or snapshot: writes what is newly verified if the interval has passed and nothing is queued. */
  maybeWrite(): void {
    const now = this.o.clock.monotonic();
    if (this.queued > 0 || now - this.lastWriteMs < this.o.intervalMs) return;
    if (!this.capture()) return;
    this.lastWriteMs = now;
    void this.serially(() => this.write());
  }

  /**
   * Writes what is verified now, after what is queued (close()). Bounded (ioMaxMs): a write that
   * hangs (an fsync on a volume that stopped answering) held every later one, and close() with
   * them, so `cattail agent` did not exit on SIGTERM until the kubelet's SIGKILL.
   */
  async flush(): Promise<void> {
    this.capture();
    await this.bounded(this.serially(() => this.write()), 'CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED', 'writing the checkpoint');
  }

  /** `p`, or undefined once ioMaxMs passed (recorded as `problem` with `code`); never rejects past the bound. */
  private bounded<T>(p: Promise<T>, code: 'CATTAIL_CLIENT_CHECKPOINT_INVALID' | 'CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED', what: string): Promise<T | undefined> {
    const maxMs = this.o.ioMaxMs ?? CHECKPOINT_IO_MAX_MS;
    return deadline((fn, ms) => realClock.setTimeout(fn, ms), p, maxMs, () => new CattailError(code, `${what} in ${this.o.dir} took more than ${maxMs} ms`, { details: { dir: this.o.dir } })).catch((err: unknown) => {
      // Only the deadline rejects: the read reports through its callback, serially() never rejects.
      this.problem = err as CattailError;
      return undefined;
    });
  }

  /** Takes each feed's checkpoint that differs from the one saved; true when one did. */
  private capture(): boolean {
    let changed = false;
    for (const [name, rt] of this.o.feeds) {
      const key = rt.state.checkpointKey();
      if (key === undefined || this.savedKeys.get(name) === key) continue;
      const cp = rt.state.checkpoint();
      if (cp === undefined) continue;
      this.saved.set(name, cp);
      this.savedKeys.set(name, key);
      changed = true;
    }
    return changed;
  }

  /**
   * A server of another cluster answered (§8 "Another cluster"): what was saved is that cluster's
   * state, worth nothing here. Dropped, so that no later write labels it with the new cluster (its
   * watermarks would then be a floor no replica of this cluster reaches: 4015 on every one). The
   * file stays as it is, labelled with its own cluster, until this cluster's first verified state
   * replaces it.
   */
  forgetCluster(): void {
    this.saved.clear();
    this.savedKeys.clear();
  }

  /** The held state is known wrong: forget it here and on disk (after what is queued). */
  discard(feed: string): Promise<void> {
    this.saved.delete(feed);
    this.savedKeys.delete(feed);
    return this.serially(async () => {
      if (this.saved.size === 0) await removeCheckpoint(this.o.dir).catch(() => undefined);
      else await this.write();
    });
  }

  /** Runs `op` after every operation queued before it; never rejects (write() records its problem). */
  private serially(op: () => Promise<void>): Promise<void> {
    this.queued++;
    const run = this.chain.then(op).catch(() => undefined).finally(() => {
      this.queued--;
    });
    this.chain = run;
    return run;
  }

  /** Writes the saved entries (taken by capture()). */
  private async write(): Promise<void> {
    if (this.saved.size === 0) return;
    try {
      await writeCheckpoint(this.o.dir, { node: this.o.node, cluster: this.o.cluster?.(), feeds: [...this.saved.values()] });
      this.written++;
    } catch (err) {
      this.problem = new CattailError('CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED', `cannot write the checkpoint in ${this.o.dir}: ${(err as Error).message}`, { cause: err, details: { dir: this.o.dir } });
    }
  }
}
