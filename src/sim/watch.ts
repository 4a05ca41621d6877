/**
 * WATCH: newline-delimited JSON events over a chunked 200 response
 * (the watch contract of k8s.io/apiserver: bookmarks, WatchList, timeouts, 410 Expired).
 *
 * Every byte of a watch goes out through {@link Watcher.send}; that one method is where the fault layer's
 * faults (resets, black holes, split/coalesced chunks) and the slow-watcher budget hook in. An
 * event's line is encoded once and shared by all watchers (cached per event and type), as the
 * apiserver's cachingObject does; `sim_encode_ops_total` counts encodes, not writes.
 */
import type { Timer } from '../clock.js';
import type { ResourceDef } from '../registry.js';
import type { ApiRequest, SimContext, WatchTap } from './context.js';
import type { WatchCloseReason } from './counters.js';
import { apiVersionOf, goJson, withResourceVersion } from './encode.js';
import type { EventType, SimEvent } from './history.js';
import { matches, parseFilter, parseRv, type Filter } from './list.js';
import { drained } from './respond.js';
import { invalid, invalidListOptions, status, tooLargeRv, type FieldError, type StatusError } from './status.js';
import type { StoredObject } from './store.js';
import type { ResourceView, StoreView } from './store-view.js';

type LineKind = EventType | 'LEAVE';
const lineCache = new WeakMap<SimEvent, Partial<Record<LineKind, Buffer>>>();

function eventLine(type: EventType | 'BOOKMARK' | 'ERROR', object: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from(`{"type":"${type}","object":`), typeof object === 'string' ? Buffer.from(object) : object, Buffer.from('}\n')]);
}

/** The line for `ev` as seen by a watcher (LEAVE: a selector exit, DELETED carrying the prior object at the new RV). */
function sharedLine(ctx: SimContext<StoreView>, ev: SimEvent, kind: LineKind): Buffer {
  let entry = lineCache.get(ev);
  if (!entry) lineCache.set(ev, (entry = {}));
  let line = entry[kind];
  if (!line) {
    ctx.counters.encodeOps.inc([]);
    if (kind === 'LEAVE') line = eventLine('DELETED', withResourceVersion((ev.prev as StoredObject).bytes, String(ev.rv)));
    else line = eventLine(kind, ev.object.bytes);
    entry[kind] = line;
  }
  return line;
}

// Zero-valued required fields Go's encoder emits for an otherwise empty object of the kind.
const BOOKMARK_EXTRA: Record<string, string> = {
  Pod: ',"spec":{"containers":null},"status":{}',
  Node: ',"spec":{},"status":{"daemonEndpoints":{"kubeletEndpoint":{"Port":0}},"nodeInfo":{"machineID":"","systemUUID":"","bootID":"","kernelVersion":"","osImage":"","containerRuntimeVersion":"","kubeletVersion":"","kubeProxyVersion":"","operatingSystem":"","architecture":""}}',
  Namespace: ',"spec":{},"status":{}',
  Service: ',"spec":{},"status":{"loadBalancer":{}}',
  EndpointSlice: ',"addressType":"","endpoints":null',
  NetworkPolicy: ',"spec":{"podSelector":{}}',
};

/**
 * A BOOKMARK object: the watched kind with only metadata.resourceVersion (and the initial-events-end
 * annotation). The 1.34+ form: no `"creationTimestamp":null` (fixtures README fact 4).
 */
function bookmarkObject(def: ResourceDef, rv: number, initialEventsEnd: boolean): string {
  const ann = initialEventsEnd ? '"annotations":{"k8s.io/initial-events-end":"true"},' : '';
  const av = JSON.stringify(apiVersionOf(def));
  if (def.encoding === 'unstructured') return `{"apiVersion":${av},"kind":"${def.kind}","metadata":{${ann}"resourceVersion":"${rv}"}}`;
  const meta = initialEventsEnd ? `{"resourceVersion":"${rv}","annotations":{"k8s.io/initial-events-end":"true"}}` : `{"resourceVersion":"${rv}"}`;
  return `{"kind":"${def.kind}","apiVersion":${av},"metadata":${meta}${BOOKMARK_EXTRA[def.kind] ?? ''}}`;
}

/** Every open watch, so admin calls and shutdown can end them. */
export class WatchHub {
  readonly watchers = new Set<Watcher>();

  closeAll(reason: WatchCloseReason, resourceId?: string): number {
    let n = 0;
    for (const w of [...this.watchers]) {
      if (resourceId === undefined || w.def.id === resourceId) {
        w.close(reason);
        n++;
      }
    }
    return n;
  }
}

interface WatchParams {
  rv: number | undefined;
  initial: boolean;
  endBookmark: boolean;
  bookmarks: boolean;
  timeoutMs: number | undefined;
  filter: Filter;
}

/**
 * validateWatchOptions of an apiserver (1.27+) with the WatchList feature gate off (an aggregated
 * API server has gates of its own): any sendInitialEvents, false included, is refused before the
 * watch cache is asked, in one 422 that carries every other fault of the same options too, in
 * Go's order. The answer never changes, so a client must list instead of asking again.
 */
function watchListForbidden(q: URLSearchParams, rvm: string): StatusError {
  const errs: FieldError[] = [];
  const forbidden = (field: string, detail: string): void => {
    errs.push({ reason: 'FieldValueForbidden', field, body: `Forbidden: ${detail}` });
  };
  if (rvm !== 'NotOlderThan') forbidden('resourceVersionMatch', 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan');
  forbidden('sendInitialEvents', 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled');
  if (rvm !== '' && rvm !== 'NotOlderThan') {
    errs.push({ reason: 'FieldValueNotSupported', field: 'resourceVersionMatch', body: `Unsupported value: ${JSON.stringify(rvm)}: supported values: "NotOlderThan"` });
  }
  if (rvm !== '' && (q.get('continue') ?? '') !== '') forbidden('resourceVersionMatch', 'resourceVersionMatch is forbidden when continue is provided');
  return invalidListOptions(errs);
}

function parseWatch(ctx: SimContext<StoreView>, r: ApiRequest): WatchParams {
  const q = r.query;
  const rvm = q.get('resourceVersionMatch') ?? '';
  const sie = q.get('sendInitialEvents');
  if (sie !== null && sie !== 'true' && sie !== 'false') throw invalid(`invalid sendInitialEvents ${JSON.stringify(sie)}`, 'sendInitialEvents');
  if (sie !== null && !ctx.behaviour.watchList) throw watchListForbidden(q, rvm);
  if (sie !== null && rvm !== 'NotOlderThan') {
    throw invalid('sendInitialEvents requires setting resourceVersionMatch to NotOlderThan', 'resourceVersionMatch');
  }
  if (sie === null && rvm !== '') throw invalid('resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided', 'resourceVersionMatch');
  const rv = parseRv(q.get('resourceVersion'));
  const filter = parseFilter(r.def, r.namespace, q);
  const bm = q.get('allowWatchBookmarks');
  const bookmarks = bm === 'true' || bm === '1';
  const ts = q.get('timeoutSeconds');
  let timeoutMs: number | undefined;
  if (ts !== null && ts !== '') {
    if (!/^[0-9]+$/.test(ts)) throw invalid(`invalid timeoutSeconds ${JSON.stringify(ts)}`, 'timeoutSeconds');
    timeoutMs = Number(ts) > 0 ? Number(ts) * 1000 : undefined;
  }
  const fromStart = rv === undefined || rv === 0;
  // SetListOptionsDefaults defaults only when the WatchList gate is on.
  const defaulted = sie === null && fromStart && ctx.behaviour.watchList && ctx.behaviour.watchListDefaulting;
  const watchList = sie === 'true' || defaulted;
  return { rv, initial: watchList || (sie === null && fromStart), endBookmark: watchList && bookmarks, bookmarks, timeoutMs, filter };
}

export class Watcher {
  readonly def: ResourceDef;
  private lastSentRv = 0;
  private closed = false;
  /** The end-of-initial-events bookmark is still to come (watchListEndDelayMs). */
  private endPending = false;
  /** Live events that arrive while initial events are still being written. */
  private pending: SimEvent[] | undefined = [];
  private timers: Timer[] = [];
  private readonly listener = (ev: SimEvent): void => this.onEvent(ev);
  private readonly startedMs: number;
  private readonly tap: WatchTap | undefined;

  constructor(
    private readonly ctx: SimContext<StoreView>,
    private readonly r: ApiRequest,
    private readonly rs: ResourceView,
    private readonly p: WatchParams,
    private readonly hub: WatchHub,
  ) {
    this.def = r.def;
    this.startedMs = ctx.clock.monotonic();
    this.tap = ctx.hooks?.watch(r, (reason) => this.close(reason));
  }

  /** The single exit for watch bytes (fault hooks and slow-watcher checks go here). */
  private send(line: Buffer): boolean {
    if (this.closed || this.r.res.destroyed) return false;
    if (this.tap && !this.tap.beforeSend(line)) return false;
    if (this.closed || this.r.res.destroyed) return false;
    this.ctx.counters.bytesSent.inc(['watch'], line.length);
    const ok = this.r.res.write(line);
    this.tap?.afterSend(ok);
    return ok;
  }

  private sendEvent(type: EventType | 'BOOKMARK', line: Buffer, rv: number): boolean {
    this.ctx.counters.watchEvents.inc([type]);
    if (rv > this.lastSentRv) this.lastSentRv = rv;
    return this.send(line);
  }

  async start(): Promise<void> {
    const { ctx, r, rs, p } = this;
    const { res, req } = r;
    this.hub.watchers.add(this);
    ctx.counters.onWatchOpen(r.clientId, this.def.id);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    res.on('close', () => this.close('client'));
    req.on('error', () => this.close('client'));
    rs.listeners.add(this.listener);
    this.armTimers();
    if (p.initial) {
      const snap = ctx.store.snapshot(this.def, ctx.store.currentRv);
      await this.writeInitial(snap.items);
      if (this.closed) return;
      this.lastSentRv = Math.max(this.lastSentRv, snap.rv);
      if (p.endBookmark && ctx.behaviour.watchListEndDelayMs > 0) {
        // 1.27-1.31: the end comes at a later bookmark tick, at the RV reached by then, after the
        // live events in between (which go out as they come, below); no other bookmark before it.
        this.endPending = true;
        this.timers.push(
          ctx.clock
            .setTimeout(() => {
              if (this.closed) return;
              this.endPending = false;
              this.sendEndBookmark(Math.max(this.lastSentRv, this.bookmarkRv()));
            }, ctx.behaviour.watchListEndDelayMs)
            .unref(),
        );
      } else if (p.endBookmark) this.sendEndBookmark(snap.rv);
    } else {
      // sendInitialEvents=false with RV ""/"0": start from now, without initial events.
      const from = p.rv === undefined || p.rv === 0 ? ctx.store.currentRv : p.rv;
      this.lastSentRv = from;
      for (const ev of rs.history.since(from)) this.onLive(ev);
    }
    const queued = this.pending ?? [];
    this.pending = undefined;
    for (const ev of queued) this.onLive(ev);
  }

  /** The k8s.io/initial-events-end bookmark at `rv`. */
  private sendEndBookmark(rv: number): void {
    this.ctx.counters.bookmarks.inc([this.def.id]);
    this.sendEvent('BOOKMARK', eventLine('BOOKMARK', bookmarkObject(this.def, rv, true)), rv);
  }

  /** Synthetic ADDED events in key order, which is not RV order: clients must not take RVs from them. */
  private async writeInitial(items: readonly StoredObject[]): Promise<void> {
    const head = Buffer.from('{"type":"ADDED","object":');
    const tail = Buffer.from('}\n');
    let batch: Buffer[] = [];
    let bytes = 0;
    let count = 0;
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const ok = this.send(Buffer.concat(batch, bytes));
      this.ctx.counters.watchEvents.inc(['ADDED'], count);
      this.ctx.counters.initialEvents.inc([this.def.id], count);
      batch = [];
      bytes = 0;
      count = 0;
      if (!ok && !this.closed) await drained(this.r.res);
    };
    for (const o of items) {
      if (this.closed) return;
      if (!matches(this.p.filter, o)) continue;
      batch.push(head, o.bytes, tail);
      bytes += head.length + o.bytes.length + tail.length;
      count++;
      if (bytes >= 64 * 1024) await flush();
    }
    await flush();
  }

  private onEvent(ev: SimEvent): void {
    if (this.pending !== undefined) this.pending.push(ev);
    else this.onLive(ev);
  }

  /** Selector-aware translation: entering the selection is ADDED, leaving it is DELETED. */
  private onLive(ev: SimEvent): void {
    if (ev.rv <= this.lastSentRv && !this.p.initial) return;
    const f = this.p.filter;
    const now = ev.type !== 'DELETED' && matches(f, ev.object);
    const before = ev.prev !== undefined && matches(f, ev.prev);
    let kind: LineKind | undefined;
    if (ev.type === 'ADDED') kind = now ? 'ADDED' : undefined;
    else if (ev.type === 'DELETED') kind = before ? 'DELETED' : undefined;
    else if (now) kind = before ? 'MODIFIED' : 'ADDED';
    else if (before) kind = 'LEAVE';
    if (kind === undefined) return;
    this.sendEvent(kind === 'LEAVE' ? 'DELETED' : kind, sharedLine(this.ctx, ev, kind), ev.rv);
  }

  private bookmarkRv(): number {
    return this.ctx.behaviour.bookmarkRv === 'global' ? this.ctx.store.currentRv : this.rs.lastRv;
  }

  /** Sends a bookmark only when the RV moved past what this watcher already has. */
  private maybeBookmark(): void {
    if (this.pending !== undefined || this.endPending) return;
    const rv = this.bookmarkRv();
    if (rv <= this.lastSentRv) return;
    this.ctx.counters.bookmarks.inc([this.def.id]);
    this.sendEvent('BOOKMARK', eventLine('BOOKMARK', bookmarkObject(this.def, rv, false)), rv);
  }

  private armTimers(): void {
    const { clock, rng, behaviour } = this.ctx;
    const deadlineMs = this.p.timeoutMs ?? Math.floor(behaviour.watchMinTimeoutMs * (1 + rng.next()));
    this.timers.push(clock.setTimeout(() => this.close('timeout'), deadlineMs).unref());
    if (!this.p.bookmarks) return;
    if (deadlineMs > 2_000) this.timers.push(clock.setTimeout(() => this.maybeBookmark(), deadlineMs - 2_000).unref());
    const schedule = (): void => {
      const jittered = Math.floor(behaviour.bookmarkIntervalMs * (1 + 0.25 * rng.next()));
      this.timers.push(
        clock
          .setTimeout(() => {
            this.maybeBookmark();
            if (!this.closed) schedule();
          }, jittered)
          .unref(),
      );
    };
    schedule();
  }

  close(reason: WatchCloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.tap?.closed();
    for (const t of this.timers) t.cancel();
    this.timers = [];
    this.rs.listeners.delete(this.listener);
    this.hub.watchers.delete(this);
    this.ctx.counters.onWatchClose(this.r.clientId, this.def.id, reason, this.ctx.clock.monotonic() - this.startedMs);
    // A clean end of the chunked body: the terminating zero-length chunk, no ERROR event.
    if (!this.r.res.destroyed && this.tap?.cut !== true) this.r.res.end();
  }
}

/**
 * How the cacher refuses a watch it has admitted: HTTP 200, one ERROR event carrying `st`, then a
 * clean close (counted as a watch opened and closed for `reason`).
 */
function answerWithError(ctx: SimContext<StoreView>, r: ApiRequest, st: Parameters<typeof goJson>[0], reason: WatchCloseReason): void {
  ctx.counters.onWatchOpen(r.clientId, r.def.id);
  ctx.counters.watchEvents.inc(['ERROR']);
  const line = eventLine('ERROR', goJson(st));
  r.res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  r.res.end(line);
  ctx.counters.bytesSent.inc(['error'], line.length);
  ctx.counters.onWatchClose(r.clientId, r.def.id, reason);
}

/** Entry point for a WATCH request. Validation errors are thrown (plain HTTP Status answers). */
export async function handleWatch(ctx: SimContext<StoreView>, r: ApiRequest, hub: WatchHub): Promise<void> {
  ctx.counters.onWatchRequest(r.clientId, r.def.id, ctx.clock.monotonic());
  const p = parseWatch(ctx, r);
  const rs = ctx.store.resource(r.def.id);
  if (!rs) throw new Error(`resource ${r.def.id} not in store`);
  if (!p.initial && p.rv !== undefined && p.rv < rs.history.floorRv) {
    // The cacher's answer to a too-old RV: HTTP 200, one ERROR event with a 410 Status, clean close.
    ctx.counters.status410.inc(['event']);
    answerWithError(ctx, r, status(410, 'Expired', `too old resource version: ${p.rv} (${rs.history.floorRv})`), 'error410');
    return;
  }
  if (p.initial && p.rv !== undefined && p.rv > ctx.store.currentRv && !(await ctx.store.waitForRv(p.rv, ctx.behaviour.rvWaitMs))) {
    // A WatchList (sendInitialEvents, NotOlderThan RV) from an RV the cache has not seen: the
    // cacher waits for it (waitUntilFreshAndBlock, 3 s), then answers as it answers every error
    // after the watch was admitted: HTTP 200 and one ERROR event, a 504 Status with cause
    // ResourceVersionTooLarge. Serving its initial events from an older state (as this once did)
    // would send a client that moved to a lagging HA follower back in time.
    ctx.counters.status504.inc([]);
    answerWithError(ctx, r, tooLargeRv().body, 'error_other');
    return;
  }
  // A plain watch from an RV ahead of the server is not refused: the cacher takes it, and drops
  // every event and bookmark at or below the RV asked for (the Watcher's lastSentRv), so it stays
  // silent until the server's revision passes it (etcd's own watch waits the same way). After an
  // etcd restore without a revision bump that is silence until the cluster catches up, which a
  // client must detect by itself (Cattail: src/server/upstream/revision-probe.ts).
  await new Watcher(ctx, r, rs, p, hub).start();
}
