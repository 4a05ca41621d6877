/**
 * Load counters: what the simulator's clients cost it. The numbers a benchmark compares between
 * "N informers" and "one fan-out cache" (requests, watches, bytes, relists per client).
 *
 * Kept as plain maps (one source of truth for the JSON snapshot, the Prometheus text and reset);
 * hand-written exposition instead of prom-client because every value here must be resettable
 * between benchmark phases and readable synchronously as JSON. Per-client detail stays in JSON
 * only: client ids are unbounded (thousands of agents) and must not become metric labels.
 */
export type WatchCloseReason = 'timeout' | 'client' | 'error410' | 'error_other' | 'slow' | 'admin' | 'fault' | 'shutdown';
export type BytesKind = 'list' | 'watch' | 'error' | 'get' | 'write' | 'other';

class LabeledCounter {
  readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: 'counter' | 'gauge' = 'counter',
  ) {}
  inc(labels: readonly string[], by = 1): void {
    const k = labels.join('\u0000');
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  set(labels: readonly string[], v: number): void {
    this.values.set(labels.join('\u0000'), v);
  }
  get(labels: readonly string[]): number {
    return this.values.get(labels.join('\u0000')) ?? 0;
  }
  total(): number {
    let t = 0;
    for (const v of this.values.values()) t += v;
    return t;
  }
  toJson(): Record<string, number> | number {
    if (this.labelNames.length === 0) return this.values.get('') ?? 0;
    const out: Record<string, number> = {};
    for (const [k, v] of [...this.values].sort()) out[k.split('\u0000').join(',')] = v;
    return out;
  }
  expose(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${this.type}\n`;
    if (this.labelNames.length === 0) return s + `${this.name} ${this.values.get('') ?? 0}\n`;
    for (const [k, v] of [...this.values].sort()) {
      const parts = k.split('\u0000');
      const ls = this.labelNames.map((n, i) => `${n}="${(parts[i] ?? '').replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',');
      s += `${this.name}{${ls}} ${v}\n`;
    }
    return s;
  }
}

/** A Prometheus histogram (cumulative buckets, sum, count). */
class Histogram {
  private counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= (this.buckets[i] as number)) this.counts[i] = (this.counts[i] as number) + 1;
  }
  reset(): void {
    this.counts = this.buckets.map(() => 0);
    this.sum = 0;
    this.count = 0;
  }
  toJson(): { count: number; sum: number; buckets: Record<string, number> } {
    return { count: this.count, sum: this.sum, buckets: Object.fromEntries(this.buckets.map((b, i) => [String(b), this.counts[i] as number])) };
  }
  expose(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    this.buckets.forEach((b, i) => (s += `${this.name}_bucket{le="${b}"} ${this.counts[i]}\n`));
    return s + `${this.name}_bucket{le="+Inf"} ${this.count}\n${this.name}_sum ${this.sum}\n${this.name}_count ${this.count}\n`;
  }
}

interface ClientStats {
  watchesOpen: number;
  watchRequests: number;
  lists: number;
  lastWatchAtMs: Map<string, number>;
  minWatchIntervalMs: number | undefined;
  watchedResources: Set<string>;
}

/** Gauges read from the store at exposition time. */
export interface StoreGauges {
  currentRv: number;
  resources: { id: string; capacity: number; oldestRv: number | undefined; floorRv: number; objects: number }[];
}

/** A counter of a snapshot summed over its labels (a number when it has none). */
export function counterTotal(v: Record<string, number> | number | undefined): number {
  return typeof v === 'number' ? v : Object.values(v ?? {}).reduce((a, b) => a + b, 0);
}

/** LIST requests of the clients whose user agent names replica `replicaId` (`cattail/… (replica ID)`). */
export function replicaListRequests(c: Pick<CountersSnapshot, 'clients'>, replicaId: string): number {
  return Object.entries(c.clients).filter(([id]) => id.includes(`(replica ${replicaId})`)).reduce((n, [, v]) => n + v.lists, 0);
}

export interface CountersSnapshot {
  requests: Record<string, number> | number;
  listPages: Record<string, number> | number;
  listItems: Record<string, number> | number;
  watchesOpen: Record<string, number> | number;
  watchesOpened: Record<string, number> | number;
  watchesClosed: Record<string, number> | number;
  watchEvents: Record<string, number> | number;
  initialEvents: Record<string, number> | number;
  bookmarks: Record<string, number> | number;
  bytesSent: Record<string, number> | number;
  encodeOps: Record<string, number> | number;
  status410: Record<string, number> | number;
  status429: Record<string, number> | number;
  status504: Record<string, number> | number;
  continueExpired: Record<string, number> | number;
  terminatedWatchers: Record<string, number> | number;
  /** Injected faults by kind (`"reset"`, `"blackhole"`...). */
  faults: Record<string, number> | number;
  relists: Record<string, number> | number;
  reconnects: Record<string, number> | number;
  /** Shortest interval between two watch requests of one client on one resource, in ms (null: none yet). */
  minWatchIntervalMs: number | null;
  watchDurationSeconds: ReturnType<Histogram['toJson']>;
  listResponseBytes: ReturnType<Histogram['toJson']>;
  clients: Record<string, { watchesOpen: number; watchRequests: number; lists: number; minWatchIntervalMs: number | null }>;
  currentRv: number;
}

export class Counters {
  readonly requests = new LabeledCounter('sim_requests_total', 'Requests by verb, resource and HTTP code.', ['verb', 'resource', 'code']);
  readonly listPages = new LabeledCounter('sim_list_pages_total', 'LIST responses (pages) served.', ['resource']);
  readonly listItems = new LabeledCounter('sim_list_items_returned_total', 'Items returned by LIST responses.', ['resource']);
  readonly watchesOpen = new LabeledCounter('sim_watches_open', 'Watches currently open.', ['resource'], 'gauge');
  readonly watchesOpened = new LabeledCounter('sim_watches_opened_total', 'Watches started (HTTP 200 sent).', ['resource']);
  readonly watchesClosed = new LabeledCounter('sim_watches_closed_total', 'Watches ended, by reason.', ['resource', 'reason']);
  readonly watchEvents = new LabeledCounter('sim_watch_events_sent_total', 'Watch events written, by type (initial events included).', ['type']);
  readonly initialEvents = new LabeledCounter('sim_initial_events_sent_total', 'Synthetic initial ADDED events written.', ['resource']);
  readonly bookmarks = new LabeledCounter('sim_bookmarks_sent_total', 'BOOKMARK events written.', ['resource']);
  readonly bytesSent = new LabeledCounter('sim_bytes_sent_total', 'Response body bytes written, by kind.', ['kind']);
  readonly encodeOps = new LabeledCounter('sim_encode_ops_total', 'Watch event lines encoded (an event shared by N watchers costs one).', []);
  readonly status410 = new LabeledCounter('sim_status_410_total', '410 Expired answers, as HTTP status or in-stream ERROR event.', ['form']);
  readonly status429 = new LabeledCounter('sim_status_429_total', '429 answers.', []);
  readonly status504 = new LabeledCounter('sim_status_504_total', '504 answers (resourceVersion too large).', []);
  readonly continueExpired = new LabeledCounter('sim_continue_expired_total', 'LIST continue tokens refused as expired.', []);
  readonly terminatedWatchers = new LabeledCounter('sim_terminated_watchers_total', 'Watchers closed by the server for being slow.', ['resource']);
  readonly faults = new LabeledCounter('sim_faults_total', 'Injected faults (src/sim/faults), by kind.', ['kind']);
  readonly relists = new LabeledCounter('sim_relists_total', 'LISTs from a client that already watched that resource.', ['resource']);
  readonly reconnects = new LabeledCounter('sim_reconnects_total', 'WATCHes from a client that already watched that resource.', ['resource']);
  readonly watchDuration = new Histogram('sim_watch_duration_seconds', 'How long watches stayed open.', [0.1, 1, 10, 60, 300, 600, 1800, 3600]);
  readonly listResponseBytes = new Histogram('sim_list_response_bytes', 'Size of LIST response bodies.', [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]);
  private clients = new Map<string, ClientStats>();
  private minInterval: number | undefined;

  private all(): LabeledCounter[] {
    return [
      this.requests, this.listPages, this.listItems, this.watchesOpen, this.watchesOpened, this.watchesClosed, this.watchEvents,
      this.initialEvents, this.bookmarks, this.bytesSent, this.encodeOps, this.status410, this.status429, this.status504,
      this.continueExpired, this.terminatedWatchers, this.faults, this.relists, this.reconnects,
    ];
  }

  private client(id: string): ClientStats {
    let c = this.clients.get(id);
    if (!c) {
      c = { watchesOpen: 0, watchRequests: 0, lists: 0, lastWatchAtMs: new Map(), minWatchIntervalMs: undefined, watchedResources: new Set() };
      this.clients.set(id, c);
    }
    return c;
  }

  /** A LIST arrived (counted once per request, before paging). */
  onList(clientId: string, resource: string): void {
    const c = this.client(clientId);
    c.lists++;
    if (c.watchedResources.has(resource)) this.relists.inc([resource]);
  }

  /** A WATCH request arrived (before validation: hot loops of failing requests count too). */
  onWatchRequest(clientId: string, resource: string, nowMs: number): void {
    const c = this.client(clientId);
    c.watchRequests++;
    const last = c.lastWatchAtMs.get(resource);
    if (last !== undefined) {
      const d = nowMs - last;
      c.minWatchIntervalMs = c.minWatchIntervalMs === undefined ? d : Math.min(c.minWatchIntervalMs, d);
      this.minInterval = this.minInterval === undefined ? d : Math.min(this.minInterval, d);
    }
    c.lastWatchAtMs.set(resource, nowMs);
    if (c.watchedResources.has(resource)) this.reconnects.inc([resource]);
    c.watchedResources.add(resource);
  }

  onWatchOpen(clientId: string, resource: string): void {
    this.watchesOpen.inc([resource]);
    this.watchesOpened.inc([resource]);
    this.client(clientId).watchesOpen++;
  }

  onWatchClose(clientId: string, resource: string, reason: WatchCloseReason, durationMs = 0): void {
    this.watchDuration.observe(durationMs / 1000);
    this.watchesOpen.inc([resource], -1);
    this.watchesClosed.inc([resource, reason]);
    this.client(clientId).watchesOpen--;
  }

  /** Zeroes every counter; open-watch gauges and per-client open counts survive (they are state, not history). */
  reset(): void {
    const open = new Map(this.watchesOpen.values);
    for (const c of this.all()) c.values.clear();
    this.watchDuration.reset();
    this.listResponseBytes.reset();
    for (const [k, v] of open) this.watchesOpen.values.set(k, v);
    for (const [id, c] of this.clients) {
      if (c.watchesOpen === 0) this.clients.delete(id);
      else {
        c.watchRequests = 0;
        c.lists = 0;
        c.minWatchIntervalMs = undefined;
      }
    }
    this.minInterval = undefined;
  }

  snapshot(gauges: StoreGauges): CountersSnapshot {
    const clients: CountersSnapshot['clients'] = {};
    for (const [id, c] of [...this.clients].sort(([a], [b]) => (a < b ? -1 : 1))) {
      clients[id] = { watchesOpen: c.watchesOpen, watchRequests: c.watchRequests, lists: c.lists, minWatchIntervalMs: c.minWatchIntervalMs ?? null };
    }
    return {
      requests: this.requests.toJson(),
      listPages: this.listPages.toJson(),
      listItems: this.listItems.toJson(),
      watchesOpen: this.watchesOpen.toJson(),
      watchesOpened: this.watchesOpened.toJson(),
      watchesClosed: this.watchesClosed.toJson(),
      watchEvents: this.watchEvents.toJson(),
      initialEvents: this.initialEvents.toJson(),
      bookmarks: this.bookmarks.toJson(),
      bytesSent: this.bytesSent.toJson(),
      encodeOps: this.encodeOps.toJson(),
      status410: this.status410.toJson(),
      status429: this.status429.toJson(),
      status504: this.status504.toJson(),
      continueExpired: this.continueExpired.toJson(),
      terminatedWatchers: this.terminatedWatchers.toJson(),
      faults: this.faults.toJson(),
      relists: this.relists.toJson(),
      reconnects: this.reconnects.toJson(),
      minWatchIntervalMs: this.minInterval ?? null,
      watchDurationSeconds: this.watchDuration.toJson(),
      listResponseBytes: this.listResponseBytes.toJson(),
      clients,
      currentRv: gauges.currentRv,
    };
  }

  /** Prometheus text exposition format 0.0.4. */
  expose(gauges: StoreGauges): string {
    let s = this.all().map((c) => c.expose()).join('') + this.watchDuration.expose() + this.listResponseBytes.expose();
    s += `# HELP sim_watch_min_interval_ms Shortest interval between two watch requests of one client on one resource.\n# TYPE sim_watch_min_interval_ms gauge\n`;
    s += `sim_watch_min_interval_ms ${this.minInterval ?? 'NaN'}\n`;
    s += `# HELP sim_current_rv The global resourceVersion.\n# TYPE sim_current_rv gauge\nsim_current_rv ${gauges.currentRv}\n`;
    const g = (name: string, help: string, pick: (r: StoreGauges['resources'][number]) => number | undefined): string =>
      `# HELP ${name} ${help}\n# TYPE ${name} gauge\n` + gauges.resources.map((r) => `${name}{resource="${r.id}"} ${pick(r) ?? 'NaN'}\n`).join('');
    s += g('sim_history_capacity', 'Event history ring capacity.', (r) => r.capacity);
    s += g('sim_history_oldest_rv', 'RV of the oldest event in the history.', (r) => r.oldestRv);
    s += g('sim_history_floor_rv', 'Lowest RV a watch can resume from.', (r) => r.floorRv);
    s += g('sim_objects', 'Objects stored.', (r) => r.objects);
    return s;
  }
}
