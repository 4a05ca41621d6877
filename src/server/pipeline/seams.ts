/**
 * The seams between the server's stages (Typha's SyncerCallbacks, typed):
 *
 *   Upstream (src/server/upstream) ──FeedSink.onBatch──► pipeline ──store.apply──► FeedStore (src/snapshot)
 *                                                            └──► fan-out (flush scheduling)
 *
 * The upstream never sees a store or a socket; the fan-out never sees Kubernetes. Either side can be
 * replaced by a recording fake in tests (a scripted source stands in for the upstream).
 */

export type SyncStatus = 'waiting' | 'resyncing' | 'in-sync';

/** One change to a feed: a projected value (plain msgpack, exact-size Buffer) or a deletion (null). */
export interface FeedUpdate {
  readonly key: string;
  readonly value: Buffer | null;
  /** The key changed and came back within the merged events (the store's Update.force). */
  readonly force?: boolean;
}

/**
 * A batch for one feed. Structurally the store's `Batch`. Status and watermarks travel with the
 * updates they belong to: "in-sync" is attached to the batch holding the last update of the
 * initial lists, never before it (or agents think they are synced too soon).
 */
export interface FeedBatch {
  readonly updates: readonly FeedUpdate[];
  /** Per resource id, the last Kubernetes resourceVersion applied (decimal string). */
  readonly watermarks?: Readonly<Record<string, string>>;
  readonly status?: SyncStatus;
  readonly stale?: boolean;
  /**
   * The batch ends a relist after a watch gap (410, an older list): its diff cannot show objects
   * created and deleted inside the gap, which another replica's agent may hold, so no agent whose
   * watermarks are below this batch's is rebased from a revision before it (PROTOCOL.md §7.1).
   */
  readonly barrier?: boolean;
}

/** Where the upstream delivers batches. Called synchronously; must not throw for bad data. */
export interface FeedSink {
  onBatch(feed: string, batch: FeedBatch): void;
}

/** A served feed: its name, the resources it is built from, and its projection version. */
export interface FeedDefinition {
  readonly name: string;
  /** Resource ids from src/registry.ts. */
  readonly resources: readonly string[];
  /** Bumped when a projection's output changes shape; part of resume tokens. */
  readonly projectionVersion: number;
  /** The data model its keys and values follow, announced in WELCOME (PROTOCOL.md 3.2). */
  readonly model?: string;
}

export interface ResourceHealth {
  readonly id: string;
  /** The initial list completed (or the resource is missing and counted as in sync). */
  readonly synced: boolean;
  /** No confirmed-healthy watch for upstreamStaleAfterMs. */
  readonly stale: boolean;
  /** Monotonic ms of the last confirmation (event, bookmark, or a watch that opened with 200). */
  readonly lastHealthyMs: number | undefined;
  /** Set while the API server refuses us (401/403): loud, never treated like a missing CRD. */
  readonly authError?: string;
  /** The CRD is not installed (404); counted as in sync and retried periodically. */
  readonly missing?: boolean;
}

/** The upstream as the server sees it. */
export interface Upstream {
  readonly feeds: readonly FeedDefinition[];
  /** Starts the reflectors; batches flow to the sink from then on. */
  start(sink: FeedSink): void;
  /** Stops every list/watch; resolves when all requests are closed. */
  stop(): Promise<void>;
  health(): readonly ResourceHealth[];
  /**
   * An agent was refused because its watermark for one of `resources` is newer than ours: look
   * again now at those that are missing (not served: their watermark is the resourceVersion of
   * the last look, which another replica may have taken later). Optional: a scripted upstream
   * has nothing to look at.
   */
  recheckMissing?(resources: readonly string[]): void;
  /**
   * Names the upstream cluster for agents (WELCOME `cluster`, PROTOCOL.md §8 "Another cluster"):
   * the same on every replica of one cluster, another for another cluster; undefined when this
   * upstream cannot tell (then agents are told nothing and their state is judged as before).
   * Read at every HELLO. Optional: a scripted upstream has none unless a test gives it one.
   */
  cluster?(): string | undefined;
}
