/**
 * Which upstream watermarks each recent revision of a feed stands for: the bridge from what an
 * agent ACKs (a replica-local revision, PROTOCOL.md §4.10) to what an operator asks about (a
 * Kubernetes resourceVersion), for the convergence barrier (convergence.ts).
 *
 * Recorded after every batch the store applies. A batch that changes no entry advances the
 * watermarks without a new revision (PROTOCOL.md §8), so the entry of a revision keeps moving
 * until the next revision starts: the state at revision r is the upstream's state, projected, at
 * every watermark recorded for r, and the newest of them is what an agent holding r has applied.
 * Entries of past revisions are final.
 *
 * Bounded by count ({@link REVISIONS_KEPT}, like the flush times kept for lag). An ACK for a
 * revision older than every entry cannot be mapped: the caller keeps the agent's last known
 * watermarks (a lower bound, since an agent never goes back) rather than guess.
 */
import type { StoreMeta } from '../pipeline/store-port.js';

export type Watermarks = StoreMeta['watermarks'];

/** Revisions remembered per feed: at one revision per flush window, minutes of history. */
export const REVISIONS_KEPT = 4_096;

export class RevisionWatermarks {
  /** Ascending by revision; one entry per revision seen, the newest watermarks of it. */
  private revisions: number[] = [];
  private marks: Watermarks[] = [];

  constructor(private readonly capacity = REVISIONS_KEPT) {}

  /**
   * The store is at `revision` with `watermarks` (the store's frozen meta object: kept by
   * reference, never copied). Revisions only grow; an older one is ignored.
   */
  record(revision: number, watermarks: Watermarks): void {
    const n = this.revisions.length;
    const last = n === 0 ? undefined : (this.revisions[n - 1] as number);
    if (last !== undefined && revision < last) return;
    if (last === revision) {
      this.marks[n - 1] = watermarks;
      return;
    }
    this.revisions.push(revision);
    this.marks.push(watermarks);
    // Trimmed in chunks so the shift costs O(1) amortised, not O(capacity) per revision.
    if (this.revisions.length > this.capacity + this.capacity / 4) {
      const drop = this.revisions.length - this.capacity;
      this.revisions = this.revisions.slice(drop);
      this.marks = this.marks.slice(drop);
    }
  }

  /**
   * The watermarks an agent holding `revision` has applied: those of the newest entry at or below
   * it (a revision without an entry of its own gets the one below, a lower bound since watermarks
   * only grow), or undefined when the revision is older than everything kept.
   */
  at(revision: number): Watermarks | undefined {
    let lo = 0;
    let hi = this.revisions.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.revisions[mid] as number) <= revision) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found < 0 ? undefined : this.marks[found];
  }

  /** Entries held (tests; bounded by about 1.25 × capacity). */
  get size(): number {
    return this.revisions.length;
  }
}
