/**
 * The per-resource event history: a bounded ring, as the apiserver's watch cache keeps
 * (`watch_cache_history.go`), plus a floor below which nothing can be served.
 *
 * A watch from RV X needs every event of the resource with RV > X, so it is servable iff
 * X >= floorRv. The floor rises when the ring evicts an event (floor = the oldest kept RV − 1), on compaction
 * (floor = the compacted RV) and is set at start-up to the RV of the bulk-loaded cluster (the
 * cache starts with an empty history, like an apiserver started after the data existed).
 *
 * Capacity is dynamic like the cacher's: it starts at `minCapacity` and doubles, up to
 * `maxCapacity`, when the ring is full while its oldest event is younger than `windowMs`
 * (75 s upstream), so the ring covers at least that window unless the rate is extreme.
 */
import type { StoredObject } from './store.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface SimEvent {
  readonly type: EventType;
  readonly rv: number;
  /** The object after the change; for DELETED its last state stamped with the delete's RV. */
  readonly object: StoredObject;
  /** The object before the change (MODIFIED, DELETED). */
  readonly prev: StoredObject | undefined;
  /** Monotonic ms when it happened (drives the capacity rule). */
  readonly atMs: number;
}

export interface HistoryOptions {
  minCapacity: number;
  maxCapacity: number;
  windowMs: number;
}

export class History {
  private ring: (SimEvent | undefined)[];
  private head = 0; // index of the oldest event
  private size = 0;
  private floor: number;

  constructor(
    private readonly opts: HistoryOptions,
    floorRv: number,
  ) {
    this.ring = new Array<SimEvent | undefined>(opts.minCapacity);
    this.floor = floorRv;
  }

  get capacity(): number {
    return this.ring.length;
  }

  get length(): number {
    return this.size;
  }

  /** Lowest RV a watch may start from (and a snapshot may be rebuilt at). */
  get floorRv(): number {
    return this.floor;
  }

  /** RV of the oldest event kept, or undefined when empty. */
  get oldestRv(): number | undefined {
    return this.size === 0 ? undefined : this.at(0).rv;
  }

  private at(i: number): SimEvent {
    return this.ring[(this.head + i) % this.ring.length] as SimEvent;
  }

  push(ev: SimEvent): void {
    let evicted = false;
    if (this.size === this.ring.length) {
      const oldest = this.at(0);
      if (ev.atMs - oldest.atMs < this.opts.windowMs && this.ring.length < this.opts.maxCapacity) {
        this.grow(Math.min(this.opts.maxCapacity, this.ring.length * 2));
      } else {
        this.ring[this.head] = undefined;
        this.head = (this.head + 1) % this.ring.length;
        this.size--;
        evicted = true;
      }
    }
    this.ring[(this.head + this.size) % this.ring.length] = ev;
    this.size++;
    // The cacher's rule once an event was evicted (watch_cache.go getAllEventsSinceLocked): a
    // watch from X is served iff X >= oldest − 1, `oldest` the RV of the oldest event still held.
    // RVs are global, so that is above the evicted event's RV whenever other resources' writes
    // came between; taking the evicted RV served watches in that gap that a real API server
    // answers with 410.
    if (evicted) this.floor = Math.max(this.floor, this.at(0).rv - 1);
  }

  private grow(capacity: number): void {
    const next = new Array<SimEvent | undefined>(capacity);
    for (let i = 0; i < this.size; i++) next[i] = this.at(i);
    this.ring = next;
    this.head = 0;
  }

  /** Events with RV > rv, oldest first. The caller checks rv >= floorRv first. */
  since(rv: number): SimEvent[] {
    const out: SimEvent[] = [];
    for (let i = this.size - 1; i >= 0; i--) {
      const ev = this.at(i);
      if (ev.rv <= rv) break;
      out.push(ev);
    }
    return out.reverse();
  }

  /** Drops events with RV <= rv and raises the floor to rv. */
  compact(rv: number): void {
    while (this.size > 0 && this.at(0).rv <= rv) {
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.size--;
    }
    this.floor = Math.max(this.floor, rv);
  }

  /** Forget everything; only RVs >= rv are servable afterwards (restart with empty cache). */
  reset(rv: number): void {
    this.ring = new Array<SimEvent | undefined>(this.opts.minCapacity);
    this.head = 0;
    this.size = 0;
    this.floor = rv;
  }
}
