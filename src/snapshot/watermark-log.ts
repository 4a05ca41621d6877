/**
 * The upstream watermarks each revision of the delta log stands for: what lets a replica continue
 * an agent that another replica served (PROTOCOL.md §7.1 "rebase", DESIGN.md "Rebase"), and what
 * the convergence barrier reads to turn an agent's ACKed revision into resourceVersions.
 *
 * A batch that changes no entry still advances the watermarks (PROTOCOL.md §8), so the record of
 * the current revision keeps moving until the next revision starts: the state at revision r is the
 * upstream's state, projected, at every watermark recorded for r. The record holds both ends: the
 * newest (what an agent that applied r has: the convergence barrier's `at()`) and the oldest (what
 * a rebase compares, `find()`: the lower the record, the more agents it serves, and it is as
 * correct, since nothing the feed holds changed between the two). Keeping only the newest lost a
 * warm-restarted replica its one useful record: its restored state is older than its agents', and
 * the first bookmark after the restart moved that record past them. Records of past revisions are
 * final.
 * Revisions are local to a replica, resourceVersions are not: given the watermarks W of the
 * agent's state, the newest revision r made at watermarks ≤ W is one from which `since(r)` holds
 * every key that can differ between the agent's state and ours.
 *
 * Pure and bounded: one record per changing revision (the watermarks object is the store's frozen
 * meta map, shared, not copied), at most `maxRecords`, and none older than the store's
 * `oldestRevision` (since() could not answer from them anyway).
 */
import { compareResourceVersions, isResourceVersion } from '../../proto/index.js';
import { MAX_WATERMARKS } from '../../proto/types.js';

export type Watermarks = Readonly<Record<string, string>>;

/** A rebase agent sends one watermark per resource of a feed: a few dozen; the codec's bound (PROTOCOL.md §8). */
export const MAX_REBASE_RESOURCES = MAX_WATERMARKS;

/** Enough for a 10-minute log at ~100 changing batches/s; a record is two pointers. */
export const DEFAULT_WATERMARK_RECORDS = 65_536;

export type RebaseResult =
  /** `since(revision)` brings a state at `watermarks` to the current state. */
  | { readonly kind: 'revision'; readonly revision: number }
  /** Our current watermarks are older than the agent's for some resource (or it names one we lack). */
  | { readonly kind: 'behind' }
  /** No recorded revision was made at or before the agent's watermarks (log too short, other resources). */
  | { readonly kind: 'none' };

/** True when every resource of `a` is in `b`, at or below `b`'s resourceVersion. */
function atOrBelow(a: Watermarks, b: Watermarks): boolean {
  for (const resource of Object.keys(a)) {
    // Own keys only: an agent may name a resource like an Object.prototype member.
    const other = Object.hasOwn(b, resource) ? b[resource] : undefined;
    if (other === undefined || compareResourceVersions(a[resource] as string, other) > 0) return false;
  }
  return true;
}

function sameResources(a: Watermarks, b: Watermarks): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k)) return false;
  return true;
}

/** Watermarks as an agent sent them are network input: decimal resourceVersions, a bounded few, or nothing. */
export function validRebaseWatermarks(w: unknown): w is Watermarks {
  if (typeof w !== 'object' || w === null) return false;
  const entries = Object.entries(w as Record<string, unknown>);
  if (entries.length === 0 || entries.length > MAX_REBASE_RESOURCES) return false;
  return entries.every(([, rv]) => typeof rv === 'string' && isResourceVersion(rv));
}

export class WatermarkLog {
  /** Ring buffer of (revision, watermarks), oldest at #start; revisions strictly increasing. */
  readonly #revisions: number[] = [];
  readonly #watermarks: Watermarks[] = [];
  /** Per record: the watermarks its revision was first recorded at (resources added later at theirs). */
  readonly #first: Watermarks[] = [];
  #start = 0;
  /**
   * The last batch that deleted keys this store did not hold, with the revision and watermarks it
   * left the store at. Such a deletion leaves no tombstone, yet an agent of another replica may
   * hold the key: created after some recorded revision r and deleted before this batch, inside
   * one of our batches (the dispatcher and the store keep the last change of a key per batch).
   * An agent whose watermarks are below the barrier's, continuing from r at or before it, could
   * keep such a key, so it gets no rebase. Watermarks only grow, so the last barrier is the
   * strictest: one is enough.
   */
  #barrier: { revision: number; watermarks: Watermarks } | undefined;

  constructor(readonly maxRecords: number = DEFAULT_WATERMARK_RECORDS) {}

  get size(): number {
    return this.#revisions.length - this.#start;
  }

  /**
   * The store is at `revision` with `watermarks` (the store's meta after a batch). The same
   * revision again (a batch that changed no entry) moves its record; an older one is ignored.
   */
  record(revision: number, watermarks: Watermarks): void {
    const n = this.#revisions.length;
    if (n > this.#start) {
      const last = this.#revisions[n - 1] as number;
      if (revision < last) return;
      if (revision === last) {
        this.#watermarks[n - 1] = watermarks;
        const first = this.#first[n - 1] as Watermarks;
        // A resource synced later at this revision (an empty list) joins at its first value.
        if (!sameResources(first, watermarks)) this.#first[n - 1] = Object.freeze({ ...watermarks, ...first });
        return;
      }
    }
    this.#revisions.push(revision);
    this.#watermarks.push(watermarks);
    this.#first.push(watermarks);
    if (this.size > this.maxRecords) this.#start++;
    this.#compact();
  }

  /** A batch deleted keys unknown to the store; the store is now at `revision` and `watermarks`. */
  barrier(revision: number, watermarks: Watermarks): void {
    this.#barrier = { revision, watermarks };
  }

  /** Forgets records of revisions below `oldestRevision`: since() no longer answers from them. */
  dropBelow(oldestRevision: number): void {
    while (this.#start < this.#revisions.length && (this.#revisions[this.#start] as number) < oldestRevision) this.#start++;
    this.#compact();
  }

  /**
   * The newest recorded revision made at watermarks at or below `agent` and naming the same
   * resources, provided `current` (our watermarks now) is at or above `agent` everywhere.
   *
   * Watermarks only grow with revisions (and a resource, once named, stays), so "at or below the
   * agent's" holds for a prefix of the log: a binary search finds its end. An upstream regression
   * (etcd restore) can break that order; the found record is checked again, so the answer is always
   * a revision that satisfies the condition, though perhaps not the newest one.
   */
  find(agent: Watermarks, current: Watermarks): RebaseResult {
    if (!atOrBelow(agent, current)) return { kind: 'behind' };
    let lo = this.#start;
    let hi = this.#revisions.length; // first index known not to satisfy
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (atOrBelow(this.#first[mid] as Watermarks, agent)) lo = mid + 1;
      else hi = mid;
    }
    const i = lo - 1;
    if (i < this.#start) return { kind: 'none' };
    const w = this.#first[i] as Watermarks;
    // A record missing a resource the agent names was made before that resource's list was in
    // the store: the store did not then hold that resource's upstream state at any watermark.
    if (!sameResources(w, agent) || !atOrBelow(w, agent)) return { kind: 'none' };
    const b = this.#barrier;
    if (b !== undefined && b.revision >= (this.#revisions[i] as number) && !atOrBelow(b.watermarks, agent)) return { kind: 'none' };
    return { kind: 'revision', revision: this.#revisions[i] as number };
  }

  /**
   * The watermarks a state at `revision` stands for: the newest record at or below it (a revision
   * without a record of its own gets the one below: watermarks only grow, so a lower bound), or
   * undefined when the revision is older than every record kept.
   */
  at(revision: number): Watermarks | undefined {
    let lo = this.#start;
    let hi = this.#revisions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.#revisions[mid] as number) <= revision) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1 < this.#start ? undefined : this.#watermarks[lo - 1];
  }

  /** Drops the dead prefix once it is half the arrays, so the ring costs O(1) amortized. */
  #compact(): void {
    if (this.#start > 1024 && this.#start * 2 > this.#revisions.length) {
      this.#revisions.splice(0, this.#start);
      this.#watermarks.splice(0, this.#start);
      this.#first.splice(0, this.#start);
      this.#start = 0;
    }
  }
}
