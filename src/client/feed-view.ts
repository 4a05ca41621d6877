/**
 * The client's public data types and the read-only view of one feed's state. The state itself
 * (FeedState) is owned by the client and changes only through verified units; a view only reads
 * it (`getRaw` hands out the held bytes without a copy: callers must not modify them).
 */
import type { ClientState } from './status.js';
import type { FeedState, FeedSync } from './feed-state.js';

/** One real change set of a feed, applied atomically before the event fires. */
export interface ChangeBatch {
  feed: string;
  /** The feed's revision after the change (replica-local: compare only within one connection). */
  revision: number;
  /** `snapshot`: a (re)sync, reconciled against the previous state; `delta`: a DELTA unit. */
  cause: 'snapshot' | 'delta';
  /** Created or changed keys. `value` is the decoded plain object (raw mode: the msgpack bytes). */
  upserts: { key: string; value: unknown; raw: Buffer }[];
  /** Keys that were held and are gone. */
  deletes: string[];
  /**
   * Raw mode only (relays): keys a DELTA carried with the value already held, left out of
   * `upserts`. The key changed and came back at the server (A→B→A) between what this client saw;
   * a relay that serves agents of its own (a second tier) records them as changes, so that a
   * rebase between its replicas sends the key to an agent that holds B. A batch in raw mode may
   * hold these alone (`upserts` and `deletes` empty).
   */
  reasserted?: { key: string; raw: Buffer }[];
}

/** Sync status of one feed. */
export interface FeedStatus {
  feed: string;
  /** What the server last reported on the live connection; `unknown` while there is none. */
  sync: FeedSync;
  /** The server reports upstream trouble for this feed (PROTOCOL.md §8). */
  stale: boolean;
  /** Replica-local revision of the held state. */
  revision: number | undefined;
  size: number;
  /** Revision at which the digest last matched the server's. */
  verifiedRevision: number | undefined;
  /** Upstream watermarks applied so far (per resource, Kubernetes resourceVersion). */
  watermarks: Readonly<Record<string, string>>;
  /**
   * Resources applied once that the feed no longer carries (a server's feed definition dropped
   * them, PROTOCOL.md §8 "A feed's resources"), at the last resourceVersion applied: not in the
   * state, still held against replicas that carry them. Empty unless a definition changed.
   */
  retiredWatermarks: Readonly<Record<string, string>>;
  /**
   * ms since a live server last confirmed this feed up to date: 0 while connected and in sync;
   * growing while disconnected or resyncing; undefined before the first sync.
   */
  lagMs: number | undefined;
  /** While a snapshot loads: entries received and announced. */
  snapshot: { received: number; total: number; rawBytes: number } | undefined;
  /**
   * Times the held state skipped part of the feed's history: a snapshot replaced a loaded state
   * (a resync), or a DELTA deleted keys this client did not hold (created and deleted between two
   * units it received). On a scoped feed (PROTOCOL.md §7.3) the second also counts the shared
   * part's deletions of entries the node never held, which that part sends by design (a
   * CalicoNodeStatus that changed is deleted there for every node). Most hosts can ignore it. One that serves the feed on (a tier-2 replica)
   * must not let its own agents continue across such a skip from before it: keys may have come
   * and gone unseen (PROTOCOL.md §7.1).
   */
  historySkips: number;
}

export interface SnapshotProgress {
  feed: string;
  revision: number;
  received: number;
  total: number;
  rawBytes: number;
}

/** Counters and the current picture; a fresh object per read. */
export interface ClientStats {
  state: ClientState;
  endpoint: string | undefined;
  serverId: string | undefined;
  /** Connection attempts started. */
  attempts: number;
  /** Connections that reached WELCOME. */
  connects: number;
  /** Connections that reached WELCOME after the first one. */
  reconnects: number;
  framesReceived: number;
  bytesReceived: number;
  snapshotsApplied: number;
  deltasApplied: number;
  changeBatches: number;
  /** Feeds the server resumed from a token instead of sending a snapshot. */
  resumes: number;
  /** Feeds another replica continued from the held state's watermarks (mode `rebase`, PROTOCOL.md §7.1) instead of a snapshot. */
  rebases: number;
  acksSent: number;
  /** Digest mismatches that closed the connection (without a range repair, or after a failed one). */
  digestMismatches: number;
  /** Range repairs (PROTOCOL.md §7.2): asked for (REPAIR_REQUEST sent), applied, and failed verification. */
  repairsRequested: number;
  repairsApplied: number;
  repairsFailed: number;
  /** Upserts and deletions that applied repairs really changed. */
  repairedEntries: number;
  revisionGaps: number;
  protocolErrors: number;
  readTimeouts: number;
  refusals: number;
  goodbyes: number;
  behind: number;
  /** Values that were not valid msgpack (kept as bytes, `value` undefined). */
  decodeErrors: number;
  /** Listener exceptions caught (they are re-thrown asynchronously when nobody listens for them). */
  listenerErrors: number;
  /** Status events dropped because a `status()` iterator was not being read. */
  statusEventsDropped: number;
  /** With `stateDir`: feeds restored from the checkpoint at start, checkpoints written, and why a checkpoint was not used or written. */
  checkpoint: { restored: number; written: number; problem: string | undefined } | undefined;
  feeds: Record<string, FeedStatus>;
}

/** Read-only view of one feed's local state. */
export class FeedView {
  /** @internal */
  constructor(
    private readonly state: FeedState,
    private readonly statusOf: () => FeedStatus,
    private readonly decode: (b: Buffer) => unknown,
  ) {}

  get name(): string {
    return this.state.name;
  }

  get size(): number {
    return this.state.size;
  }

  get revision(): number | undefined {
    return this.state.revision;
  }

  /**
   * The data model of the feed's keys and values as the server announced it (PROTOCOL.md 3.2):
   * `libcalico.v3` for the built-in feeds, `calico.v1`, `strip.v1`, `raw.v1` or `mixed` for custom
   * ones; undefined before the first WELCOME or from a server that predates the announcement.
   */
  get model(): string | undefined {
    return this.state.model;
  }

  get status(): FeedStatus {
    return this.statusOf();
  }

  has(key: string): boolean {
    return this.state.entries.has(key);
  }

  /** The decoded value (raw mode: the bytes). Decoded on every call; cache it if you read it hot. */
  get(key: string): unknown {
    const v = this.state.entries.get(key);
    return v === undefined ? undefined : this.decode(v);
  }

  /** The value's msgpack bytes as received. Do not modify them. */
  getRaw(key: string): Buffer | undefined {
    return this.state.entries.get(key);
  }

  keys(): IterableIterator<string> {
    return this.state.entries.keys();
  }

  /**
   * The held entries as they are now, raw, in one synchronous copy (the Buffers are shared, not
   * copied: do not modify them), with `decode` turning one into what get() returns. For a reader
   * that awaits between entries (a file dump) and must still see one state: the live view moves
   * on with every unit applied meanwhile.
   */
  frozen(): { entries: [string, Buffer][]; decode: (b: Buffer) => unknown } {
    return { entries: [...this.state.entries], decode: this.decode };
  }

  *entries(): IterableIterator<[string, unknown]> {
    for (const [k, v] of this.state.entries) yield [k, this.decode(v)];
  }

  [Symbol.iterator](): IterableIterator<[string, unknown]> {
    return this.entries();
  }
}
