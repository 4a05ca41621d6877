/**
 * The node-agent client: keeps an exact local copy of the feeds it asked for and tells its host
 * what changed, through reconnects, server restarts and replica failover, without a restart of the
 * host and without a full resync when a resume will do.
 *
 *   connect() ─► Client ─► EndpointRotation ─► Connection (one per attempt) ─► frames
 *                   ▲                                          │
 *                   └────────── FeedState (per feed) ◄─────────┘ (apply, verify, reconcile)
 *
 * The client never logs and never exits: everything it has to say goes out as status events
 * (edge-triggered, see status.ts and README.md), change events, and `stats`.
 *
 * Why the state lives here and not in the connection: a connection is disposable (one per
 * attempt), the state is not. A connection that dies mid-unit leaves the state as it was; the next
 * one resumes from the last token or reconciles a snapshot against what is held, so the host sees
 * only real changes (Typha's "resync without restart", plus resume, which Typha lacks).
 */
import { Unpackr } from 'msgpackr';
import { CAP_FEED_RESOURCES, CAP_REPAIR_BUCKETS, CAP_RESUME_WATERMARKS, CAP_SCOPE_NODE, CAP_SCOPE_WATERMARKS, reactionTo, type Message, type WelcomeMessage } from '../../proto/index.js';
import type { Timer } from '../clock.js';
import { CattailError, InvalidArgumentError } from '../errors.js';
import { VERSION } from '../version.js';
import { Backoff } from '../backoff.js';
import { resolveOptions, type ConnectOptions, type ResolvedOptions } from './connect-options.js';
import { LocalCloseError, unexpected } from './close-errors.js';
import { Connection, type ConnectionEnd } from './connection.js';
import { EndpointRotation } from './endpoints.js';
import { ServiceDiscovery, discoveryConfigSource, noDiscoveryConfig } from './discovery.js';
import { CheckpointKeeper } from './checkpointing.js';
import { FeedState, type RawChangeBatch } from './feed-state.js';
import { AsyncQueue, type ClientState, type StatusEvent } from './status.js';
import { FeedView, type ChangeBatch, type ClientStats, type FeedStatus, type SnapshotProgress } from './feed-view.js';
import type { BehindResource } from './watermarks.js';

interface EventMap {
  status: StatusEvent;
  change: ChangeBatch;
  progress: SnapshotProgress;
  /** A feed's status as the server last stated it (SNAPSHOT_END or STATUS): sync, stale, watermarks. */
  feedStatus: FeedStatus;
  listenerError: unknown;
}

interface FeedRuntime {
  state: FeedState;
  id: number | undefined;
  lastAckAt: number;
  ackedRevision: number | undefined;
  ackTimer: Timer | undefined;
  lastLiveAt: number | undefined;
}

/** Status events kept per unread `status()` iterator before the oldest are dropped. */
const STATUS_QUEUE_LIMIT = 1_000;

/** A node-agent client; create it with {@link connect}. */
export class Client {
  private readonly opts: ResolvedOptions;
  private readonly feeds = new Map<string, FeedRuntime>();
  private readonly byId = new Map<number, FeedRuntime>();
  private readonly views = new Map<string, FeedView>();
  private readonly listeners: { [K in keyof EventMap]: Set<(e: EventMap[K]) => void> } = {
    status: new Set(), change: new Set(), progress: new Set(), feedStatus: new Set(), listenerError: new Set(),
  };
  private readonly statusQueues = new Set<AsyncQueue<StatusEvent>>();
  private readonly rotation: EndpointRotation;
  /** The replicas speak TLS: TLS options given, or every static endpoint wss://. */
  private readonly secure: boolean;
  private readonly discovery: ServiceDiscovery | undefined;
  private discovering = false;
  private readonly keeper: CheckpointKeeper | undefined;
  /**
   * The cluster the held state came from (§8 "Another cluster"): the last WELCOME's `cluster`, or
   * the checkpoint's. Sent in HELLO; a WELCOME naming another one makes the held state's
   * watermarks and tokens worthless (FeedState.forgetCluster).
   */
  private heldCluster: string | undefined;
  private readonly backoff: Backoff;
  private readonly unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  private conn: Connection | undefined;
  private retryTimer: Timer | undefined;
  private current: ClientState = 'idle';
  private closing = false;
  private closeResolve: (() => void) | undefined;
  private closePromise: Promise<void> | undefined;
  private closeReason: CattailError | undefined;
  private everWelcomed = false;
  private readonly counters = {
    attempts: 0, connects: 0, reconnects: 0, framesReceived: 0, bytesReceived: 0, snapshotsApplied: 0,
    deltasApplied: 0, changeBatches: 0, resumes: 0, rebases: 0, acksSent: 0, digestMismatches: 0, revisionGaps: 0,
    repairsRequested: 0, repairsApplied: 0, repairsFailed: 0, repairedEntries: 0,
    protocolErrors: 0, readTimeouts: 0, refusals: 0, goodbyes: 0, behind: 0, decodeErrors: 0, listenerErrors: 0,
  };

  /** Use {@link connect}. */
  constructor(options: ConnectOptions) {
    this.opts = resolveOptions(options);
    for (const name of this.opts.feeds) {
      this.feeds.set(name, { state: new FeedState(name), id: undefined, lastAckAt: -Infinity, ackedRevision: undefined, ackTimer: undefined, lastLiveAt: undefined });
    }
    this.rotation = new EndpointRotation(this.opts.endpoints, this.opts.random);
    this.secure = Object.keys(this.opts.tls).length > 0 || (this.opts.endpoints.length > 0 && this.opts.endpoints.every((u) => u.startsWith('wss://')));
    if (this.opts.service !== undefined) {
      // Nothing to read EndpointSlices with and no static endpoint to use meanwhile: every attempt
      // would fail the same way, forever (a missing config does not appear by itself), so say it
      // now, as for any other option that cannot work. With static endpoints the client uses them
      // and reports the discovery error in its status (a config may be mounted later).
      if (this.opts.endpointSliceSource === undefined && this.opts.endpoints.length === 0 && discoveryConfigSource(this.opts.kubeconfig, process.env) === undefined) {
        throw noDiscoveryConfig(process.env);
      }
      this.discovery = new ServiceDiscovery({
        service: this.opts.service, portName: this.opts.servicePortName, node: this.opts.node, random: this.opts.random,
        // TLS configured, or static endpoints all wss://, means the replicas speak wss (PROTOCOL.md
        // §1); discovery cannot tell otherwise. Without the second, `--server wss://… --service`
        // and the system CAs had its first look replace the working wss:// list with ws://.
        scheme: this.secure ? 'wss' : 'ws',
        source: this.opts.endpointSliceSource, kubeconfigPath: this.opts.kubeconfig,
        minIntervalMs: this.opts.discoveryMinIntervalMs, now: () => this.opts.clock.monotonic(),
        timeoutMs: this.opts.discoveryTimeoutMs, setTimeout: (fn, ms) => this.opts.clock.setTimeout(fn, ms),
      });
    }
    if (this.opts.stateDir !== undefined) {
      this.keeper = new CheckpointKeeper({
        dir: this.opts.stateDir, node: this.opts.node, intervalMs: this.opts.checkpointIntervalMs, ioMaxMs: this.opts.checkpointIoMaxMs, clock: this.opts.clock, feeds: this.feeds, models: this.opts.models, cluster: () => this.heldCluster,
      });
    }
    this.backoff = new Backoff({ initialMs: this.opts.reconnectInitialDelayMs, maxMs: this.opts.reconnectMaxDelayMs, jitter: this.opts.reconnectJitter, random: this.opts.random });
  }

  /** @internal Starts the first attempt (connect() calls it). */
  start(): void {
    const keeper = this.keeper;
    if (keeper === undefined) {
      if (this.current === 'idle' && !this.closing) this.attempt();
      return;
    }
    // The checkpoint first: the first HELLO then presents its tokens and watermarks.
    void keeper.restore().then((batches) => {
      if (batches.length > 0) this.heldCluster = keeper.restoredCluster;
      for (const b of batches) this.emitChange(b);
      if (this.current === 'idle' && !this.closing) this.attempt();
    });
  }

  /**
   * The cluster the held state came from, as the servers name it (WELCOME `cluster`, PROTOCOL.md
   * §8 "Another cluster"); undefined before a server named one, and after a WELCOME without one.
   */
  get cluster(): string | undefined {
    return this.heldCluster;
  }

  /** The current state of the status machine. */
  get state(): ClientState {
    return this.current;
  }

  /** Feeds this client keeps, in the order given. */
  get feedNames(): readonly string[] {
    return this.opts.feeds;
  }

  /** The local state of `name`; throws InvalidArgumentError for a feed that was not requested. */
  feed(name: string): FeedView {
    const rt = this.feeds.get(name);
    if (rt === undefined) throw new InvalidArgumentError(`feed ${JSON.stringify(name)} was not requested (feeds: ${this.opts.feeds.join(', ')})`);
    let v = this.views.get(name);
    if (v === undefined) {
      v = new FeedView(rt.state, () => this.feedStatus(rt), (b) => this.decodeValue(b));
      this.views.set(name, v);
    }
    return v;
  }

  /** True when every feed is in sync on a live connection. */
  get inSync(): boolean {
    return this.current === 'in-sync' || this.current === 'upstream-stale';
  }

  /**
   * The status stream as an async iterator: every edge from now on, ending after `closed`.
   * An iterator that is not read keeps at most 1,000 events (the oldest are dropped and counted).
   */
  status(): AsyncIterableIterator<StatusEvent> {
    const q: AsyncQueue<StatusEvent> = new AsyncQueue(STATUS_QUEUE_LIMIT, () => this.statusQueues.delete(q));
    if (this.current === 'closed') q.end();
    else this.statusQueues.add(q);
    return q;
  }

  /** Subscribes to an event; returns the unsubscribe function. Listeners run synchronously, after the state changed. */
  on<K extends keyof EventMap>(event: K, fn: (e: EventMap[K]) => void): () => void {
    const set = this.listeners[event] as Set<(e: EventMap[K]) => void>;
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Resolves when every feed is in sync; rejects with CATTAIL_CLIENT_CLOSED if the client closes first, or with the signal's reason. */
  whenInSync(signal?: AbortSignal): Promise<void> {
    if (this.inSync) return Promise.resolve();
    if (this.current === 'closed') return Promise.reject(new CattailError('CATTAIL_CLIENT_CLOSED', 'the client is closed', { cause: this.closeReason }));
    return new Promise((resolve, reject) => {
      const off = this.on('status', (e) => {
        if (e.state === 'in-sync' || e.state === 'upstream-stale') done(() => resolve());
        else if (e.state === 'closed') done(() => reject(new CattailError('CATTAIL_CLIENT_CLOSED', 'the client closed before every feed was in sync', { cause: e.reason })));
      });
      const onAbort = (): void => done(() => reject(signal?.reason));
      const done = (f: () => void): void => {
        off();
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  get stats(): ClientStats {
    const feeds: Record<string, FeedStatus> = {};
    for (const rt of this.feeds.values()) feeds[rt.state.name] = this.feedStatus(rt);
    let dropped = 0;
    for (const q of this.statusQueues) dropped += q.dropped;
    return {
      state: this.current,
      endpoint: this.conn?.url,
      serverId: this.conn?.serverId,
      ...this.counters,
      statusEventsDropped: dropped,
      checkpoint: this.keeper === undefined ? undefined : { restored: this.keeper.restored, written: this.keeper.written, problem: this.keeper.problem === undefined ? undefined : `${this.keeper.problem.code}: ${this.keeper.problem.message}` },
      feeds,
    };
  }

  /** @internal */
  feedStatus(rt: FeedRuntime): FeedStatus {
    const s = rt.state;
    const live = this.conn !== undefined && s.inSync;
    return {
      feed: s.name,
      sync: s.sync,
      stale: s.stale,
      revision: s.revision,
      size: s.size,
      verifiedRevision: s.verifiedRevision,
      watermarks: { ...s.appliedWatermarks },
      retiredWatermarks: { ...s.retiredWatermarks },
      lagMs: live ? 0 : rt.lastLiveAt === undefined ? undefined : Math.max(0, this.opts.clock.monotonic() - rt.lastLiveAt),
      snapshot: s.snapshotProgress,
      historySkips: s.historySkips,
    };
  }

  /**
   * Graceful close: GOODBYE and close 1000 on the live connection (bounded by closeTimeoutMs),
   * no more reconnects. The local state stays readable. Idempotent.
   */
  close(): Promise<void> {
    if (this.closePromise !== undefined) return this.closePromise;
    this.closePromise = new Promise<void>((resolve) => {
      this.closeResolve = resolve;
    });
    this.shutdown(undefined, (conn) => conn.closeGracefully(new CattailError('CATTAIL_CLIENT_CLOSED', 'client closed')));
    // A graceful close leaves the newest verified state behind for the next start.
    const keeper = this.keeper;
    if (keeper !== undefined) this.closePromise = this.closePromise.then(() => keeper.flush());
    return this.closePromise;
  }

  /**
   * Leaves the replica this client is connected to for another, keeping the state: GOODBYE
   * (`moving`) and close 1000, then the next endpoint of the rotation at once (a rebase or
   * snapshot there, as after any move). For a host that learned its replica is behind what others
   * serve (a tier-2 replica whose own agents hold newer state); with a single endpoint (a Service
   * address) the new connection may land on another replica behind it. Returns false, doing
   * nothing, unless a connection is open and not closing already (its own end, a server's GOODBYE
   * with its delay, stands), and unless another endpoint may be tried now (with every other one
   * pinned by a GOODBYE or a 503, the move would come straight back).
   */
  moveOn(why: string): boolean {
    const conn = this.conn;
    if (conn === undefined || this.closing || !conn.isOpen || conn.leaving) return false;
    if (this.rotation.endpoints.length > 1 && !this.rotation.otherFree(conn.url, this.opts.clock.monotonic())) return false;
    conn.closeGracefully(new CattailError('CATTAIL_CLIENT_MOVED', `moving to another replica: ${why}`, { details: { endpoint: conn.url } }));
    return true;
  }

  /** Forced close: the socket is destroyed at once, no GOODBYE. `reason` goes into the `closed` event. */
  destroy(reason?: unknown): void {
    const err = reason === undefined ? undefined : CattailError.is(reason) ? reason : new CattailError('CATTAIL_CLIENT_CLOSED', 'client destroyed', { cause: reason });
    if (this.closePromise === undefined) {
      this.closePromise = new Promise<void>((resolve) => {
        this.closeResolve = resolve;
      });
    }
    this.shutdown(err, (conn) => conn.terminate(err ?? new CattailError('CATTAIL_CLIENT_CLOSED', 'client destroyed')));
  }

  private shutdown(reason: CattailError | undefined, end: (c: Connection) => void): void {
    if (this.closing) {
      // destroy() after close(): force what close() started.
      if (this.conn !== undefined) this.conn.terminate(reason ?? new CattailError('CATTAIL_CLIENT_CLOSED', 'client destroyed'));
      return;
    }
    this.closing = true;
    this.closeReason = reason;
    this.retryTimer?.cancel();
    this.retryTimer = undefined;
    for (const rt of this.feeds.values()) this.cancelAck(rt);
    if (this.conn !== undefined) end(this.conn);
    else this.finishClose();
  }

  private finishClose(): void {
    this.setState('closed', { reason: this.closeReason });
    for (const q of this.statusQueues) q.end();
    this.statusQueues.clear();
    this.closeResolve?.();
  }

  // ---------------------------------------------------------------- attempts

  /**
   * Before each attempt, with a service: look at its EndpointSlices again (reused when younger
   * than discoveryMinIntervalMs), so an agent follows replicas that came, went or drained.
   */
  private attempt(): void {
    this.retryTimer = undefined;
    if (this.closing) return;
    const d = this.discovery;
    if (d !== undefined && d.due) {
      if (this.discovering) return;
      this.discovering = true;
      void d.refresh().then((r) => {
        this.discovering = false;
        if (this.closing) return;
        this.rotation.replace(r.urls, this.opts.clock.monotonic());
        this.attemptNow();
      });
      return;
    }
    this.attemptNow();
  }

  private attemptNow(): void {
    if (this.closing) return;
    const pick = this.rotation.next(this.opts.clock.monotonic());
    if (pick === undefined) {
      // Nothing to connect to: the service has no replica yet (or discovery failed before it
      // ever found one) and no static endpoint is configured. Back off and look again.
      const reason = this.discovery?.current.error ?? new CattailError('CATTAIL_CLIENT_DISCOVERY_FAILED', `service ${this.opts.service ?? '?'} has no endpoint with port ${this.opts.servicePortName}`, { details: { service: this.opts.service } });
      const delay = this.backoff.next();
      // Armed before the events, as in onEnd: a listener may close() the client from them.
      this.retryTimer = this.opts.clock.setTimeout(() => this.attempt(), delay);
      this.setState('connecting', {});
      this.setState('reconnecting', { reason, delayMs: delay });
      return;
    }
    if (pick.waitMs > 0) {
      // Every endpoint is pinned (Retry-After, GOODBYE delay, behind wait): wait for the first
      // to come free, staying in the current waiting state (no edge: nothing changed).
      this.retryTimer = this.opts.clock.setTimeout(() => this.attempt(), pick.waitMs);
      return;
    }
    this.counters.attempts++;
    const hello = {
      type: 'hello' as const,
      protocol: 1,
      node: this.opts.node,
      clientId: this.opts.clientId,
      software: `cattail-client/${VERSION}`,
      feeds: this.opts.feeds.map((name) => {
        const state = this.feeds.get(name)!.state;
        // Everything applied so far (§8 notBefore): a replica behind it refuses at once (4015)
        // instead of sending a snapshot this client would refuse at its end, and looks again at
        // a resource it does not serve. With or without a token (after a digest mismatch the
        // token is gone, the watermarks applied are not).
        const notBefore = state.notBeforeWatermarks();
        const nb = notBefore === undefined ? {} : { notBefore };
        if (state.token === undefined) return { name, ...nb };
        // Watermarks let another replica continue this state (rebase) instead of a snapshot. They
        // are all this client applied to the held state, so the server takes them as notBefore
        // too (not sent twice); retired resources (§8) go beside them as notBefore.
        const watermarks = state.rebaseWatermarks();
        if (watermarks === undefined) return { name, token: Buffer.from(state.token), ...nb };
        const retired = state.retiredNotBefore();
        return { name, token: Buffer.from(state.token), watermarks, ...(retired === undefined ? {} : { notBefore: retired }) };
      }),
      caps: [...this.opts.compression.map((c) => `compress.${c}`), CAP_RESUME_WATERMARKS, CAP_REPAIR_BUCKETS, CAP_FEED_RESOURCES, ...(this.opts.acceptScopedFeeds ? [CAP_SCOPE_NODE, CAP_SCOPE_WATERMARKS] : [])],
      maxFrameBytes: this.opts.maxFrameBytes,
      ...(this.heldCluster !== undefined ? { cluster: this.heldCluster } : {}),
    };
    const conn = new Connection(pick.url, this.opts, hello, {
      onWelcome: (w) => this.onWelcome(conn, w),
      onFeedMessage: (m) => this.onFeedMessage(conn, m),
      onFrame: (bytes) => this.onFrame(bytes),
      onEnd: (end) => this.onEnd(conn, end),
    });
    this.conn = conn;
    this.setState('connecting', { endpoint: pick.url });
    // A 'connecting' listener may have closed the client: conn has ended then, and start() does nothing.
    conn.start();
  }

  private onWelcome(conn: Connection, w: WelcomeMessage): void {
    this.counters.connects++;
    if (this.everWelcomed) this.counters.reconnects++;
    this.everWelcomed = true;
    this.byId.clear();
    // §8 "Another cluster": the held state's watermarks are another cluster's resourceVersions,
    // and its own check would refuse this cluster's snapshot as older than them (the server
    // ignored them too: mode snapshot, reason other-cluster; Connection checked every feed is one).
    // The entries stay until it ends. A server that names no cluster is kept to the watermarks as
    // before, and the name is dropped: the state it sends is not known to be any cluster's.
    if (w.cluster !== undefined && this.heldCluster !== undefined && this.heldCluster !== w.cluster) {
      for (const rt of this.feeds.values()) rt.state.forgetCluster();
      this.keeper?.forgetCluster();
    }
    this.heldCluster = w.cluster;
    for (const f of w.feeds) {
      const rt = this.feeds.get(f.name)!;
      rt.id = f.id;
      this.byId.set(f.id, rt);
      rt.state.startConnection(f.mode, f.revision, f.resources);
      rt.state.welcomeModel(f.model, f.mode);
      // §9: a REPAIR_REQUEST only to a server that advertised it (we always do).
      rt.state.canRepair = w.caps.includes(CAP_REPAIR_BUCKETS);
      rt.ackedRevision = undefined;
      rt.lastAckAt = -Infinity;
      if (f.mode === 'resume') this.counters.resumes++;
      if (f.mode === 'rebase') this.counters.rebases++;
    }
    this.setState('syncing', { endpoint: conn.url });
  }

  private onFrame(bytes: number): void {
    this.counters.framesReceived++;
    this.counters.bytesReceived += bytes;
    const now = this.opts.clock.monotonic();
    for (const rt of this.feeds.values()) if (rt.state.inSync) rt.lastLiveAt = now;
  }

  private onFeedMessage(conn: Connection, m: Message): void {
    if (!('feedId' in m)) return;
    const rt = this.byId.get(m.feedId);
    if (rt === undefined) throw unexpected(`${m.type} for unknown feed id ${m.feedId}`);
    const fs = rt.state;
    switch (m.type) {
      case 'snapshotBegin':
        fs.snapshotBegin(m.revision, m.entries, m.rawBytes);
        this.emit('progress', { feed: fs.name, revision: m.revision, received: 0, total: m.entries, rawBytes: m.rawBytes });
        return;
      case 'snapshotChunk': {
        fs.snapshotChunk(m.revision, m.entries);
        const p = fs.snapshotProgress!;
        this.emit('progress', { feed: fs.name, revision: m.revision, received: p.received, total: p.total, rawBytes: p.rawBytes });
        return;
      }
      case 'snapshotEnd': {
        const r = fs.snapshotEnd(m);
        if (r.kind === 'behind') throw this.behindError(conn, fs.name, r.behind);
        this.counters.snapshotsApplied++;
        if (r.batch !== undefined) this.emitChange(r.batch);
        this.ack(rt, true);
        this.refreshState(conn);
        this.emitFeedStatus(fs.name);
        return;
      }
      case 'delta': {
        const batch = fs.deltaFrame(m.fromRevision, m.toRevision, m.more, m.upserts, m.deletes);
        if (batch === null) return;
        this.counters.deltasApplied++;
        const repaired = fs.lastRepair;
        if (repaired !== undefined) {
          fs.lastRepair = undefined;
          this.counters.repairsApplied++;
          this.counters.repairedEntries += repaired.entries;
        }
        if (batch !== undefined) this.emitChange(batch);
        this.ack(rt, false);
        return;
      }
      case 'status': {
        const wasInSync = fs.inSync;
        const r = fs.status(m);
        if (r.kind === 'behind') throw this.behindError(conn, fs.name, r.behind);
        if (r.kind === 'repair') {
          // §7.2: the mismatching buckets come back as REPAIR + DELTA (or an in-band snapshot).
          this.counters.repairsRequested++;
          conn.send({ type: 'repairRequest', feedId: m.feedId, revision: r.revision, sums: r.sums });
        }
        if (fs.inSync && !wasInSync) this.ack(rt, true);
        if (r.statusChanged) this.refreshState(conn);
        this.emitFeedStatus(fs.name);
        return;
      }
      case 'repair':
        fs.repairFrame(m.fromRevision, m.toRevision, m.buckets);
        return;
      default:
        return;
    }
  }

  private behindError(conn: Connection, feed: string, behind: BehindResource[]): LocalCloseError {
    const list = behind.map((b) => `${b.resource} ${b.offered ?? 'none'} < ${b.applied}`).join(', ');
    return new LocalCloseError('CATTAIL_CLIENT_REPLICA_BEHIND', `${conn.url} (${conn.serverId ?? '?'}) is behind on feed ${feed}: ${list}`, {
      details: { endpoint: conn.url, serverId: conn.serverId, feed, behind },
    });
  }

  /** Recomputes syncing / in-sync / upstream-stale from the feeds. */
  private refreshState(conn: Connection): void {
    if (this.conn !== conn || this.closing) return;
    const all = [...this.feeds.values()];
    if (!all.every((rt) => rt.state.inSync)) {
      this.setState('syncing', { endpoint: conn.url });
      return;
    }
    const now = this.opts.clock.monotonic();
    for (const rt of all) rt.lastLiveAt = now;
    this.backoff.reset();
    // Hints are for one reconnect (endpoints.ts): the peers a server named now may be gone by the next.
    this.rotation.clearHints();
    const stale = all.filter((rt) => rt.state.stale).map((rt) => rt.state.name);
    if (stale.length > 0) this.setState('upstream-stale', { endpoint: conn.url, staleFeeds: stale });
    else this.setState('in-sync', { endpoint: conn.url });
  }

  private onEnd(conn: Connection, end: ConnectionEnd): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    const now = this.opts.clock.monotonic();
    for (const rt of this.feeds.values()) {
      if (rt.state.inSync) rt.lastLiveAt = now;
      rt.state.endConnection();
      this.cancelAck(rt);
    }
    if (this.closing) {
      this.finishClose();
      return;
    }
    const e = end.error;
    const url = conn.url;
    let state: 'reconnecting' | 'behind' = 'reconnecting';
    let delay: number;
    let advance = true;
    switch (e.code) {
      case 'CATTAIL_CLIENT_REPLICA_BEHIND':
        this.counters.behind++;
        state = 'behind';
        delay = this.opts.behindRetryDelayMs;
        this.rotation.pin(url, now + delay);
        break;
      case 'CATTAIL_CLIENT_REFUSED':
        this.counters.refusals++;
        delay = this.backoff.next();
        this.rotation.pin(url, now + (end.retryAfterMs ?? delay));
        break;
      case 'CATTAIL_CLIENT_REJECTED':
        delay = this.backoff.longest();
        break;
      case 'CATTAIL_CLIENT_MOVED':
        // The host's choice, not a failure: the next endpoint now (advance), no backoff.
        delay = 0;
        break;
      case 'CATTAIL_CLIENT_DIGEST_MISMATCH':
      case 'CATTAIL_CLIENT_REPAIR_FAILED':
      case 'CATTAIL_CLIENT_REVISION_GAP': {
        if (e.code === 'CATTAIL_CLIENT_DIGEST_MISMATCH') this.counters.digestMismatches++;
        else if (e.code === 'CATTAIL_CLIENT_REPAIR_FAILED') this.counters.repairsFailed++;
        else this.counters.revisionGaps++;
        // The state no longer provably matches any revision a server knows: drop the token so
        // the next connection snapshots, and reconcile the snapshot against what is held. Unless
        // only an incoming snapshot failed its check (feed-state.ts, snapshotRefused): the held
        // state is untouched, and its token and checkpoint still describe it.
        const feed = e.details?.['feed'];
        if (e.details?.['snapshotOnly'] !== true) for (const rt of this.feeds.values()) {
          if (feed !== undefined && rt.state.name !== feed) continue;
          rt.state.dropToken();
          void this.keeper?.discard(rt.state.name);
        }
        delay = this.backoff.next();
        advance = this.backoff.failures > 1;
        break;
      }
      default:
        if (e.code === 'CATTAIL_CLIENT_PROTOCOL_ERROR') this.counters.protocolErrors++;
        if (e.code === 'CATTAIL_CLIENT_READ_TIMEOUT') this.counters.readTimeouts++;
        // A close this side sent is judged by the same table as the server's (proto/closes.ts):
        // its own 4001 (a WELCOME of another protocol version) is PROTOCOL.md §1.3's "do not retry
        // this server with this version", as when the server sends it. On the normal backoff it
        // was retried after 250 ms, then doubling, by every agent a newer server met.
        if (end.local && end.closeCode !== undefined && reactionTo(end.closeCode) === 'reject') delay = this.backoff.longest();
        else delay = this.backoff.next();
        // A blip on a healthy connection: retry the same server once, where the resume token
        // is good. A black-holed or misbehaving server, or a second failure: move on.
        advance = !(end.welcomed && e.code === 'CATTAIL_CLIENT_SERVER_CLOSED' && end.goodbye === undefined && this.backoff.failures <= 1);
    }
    if (end.goodbye !== undefined) {
      this.counters.goodbyes++;
      const asked = end.goodbye.reconnectDelayMs === undefined ? delay : Math.max(end.goodbye.reconnectDelayMs, 0);
      // That server is avoided for all of it (PROTOCOL.md §1.4 MUST); any other reconnect waits
      // at most reconnectMaxDelayMs and goodbyeDelayMaxMs (the SHOULD): a GOODBYE asking for days
      // (hostile, or a bug) must not keep the agent off every other replica.
      this.rotation.pin(url, now + asked);
      delay = Math.min(asked, this.opts.reconnectMaxDelayMs, this.opts.goodbyeDelayMaxMs);
    }
    // A client that speaks TLS never follows a hint to plaintext: a ws:// peer (a fleet moving to
    // TLS) would carry it off with no CA, server CN or URI SAN check, possibly for days.
    if (end.endpoints !== undefined) this.rotation.hint(end.endpoints.filter((u) => u !== url && (!this.secure || u.startsWith('wss://'))));
    if (advance) this.rotation.advance(url);
    // The timer before the event: status listeners run synchronously, and one that calls close()
    // or destroy() must find it to cancel. Armed after, it outlived the client (up to
    // reconnectMaxDelayMs, or behindRetryDelayMs) and held the host's process open.
    this.retryTimer = this.opts.clock.setTimeout(() => this.attempt(), delay);
    this.setState(state, { endpoint: url, reason: e, delayMs: delay });
  }

  // ---------------------------------------------------------------- acks

  /** ACK the applied revision: at most once per ackIntervalMs per feed, and at once when `now`. */
  private ack(rt: FeedRuntime, now: boolean): void {
    const conn = this.conn;
    const rev = rt.state.revision;
    if (conn === undefined || rt.id === undefined || rev === undefined || rev === rt.ackedRevision) return;
    const t = this.opts.clock.monotonic();
    const due = rt.lastAckAt + this.opts.ackIntervalMs;
    if (now || t >= due) {
      this.cancelAck(rt);
      if (conn.send({ type: 'ack', feedId: rt.id, revision: rev })) {
        this.counters.acksSent++;
        rt.ackedRevision = rev;
        rt.lastAckAt = t;
      }
      return;
    }
    // Trailing ack, so the server's lag measure converges even when the deltas stop.
    rt.ackTimer ??= this.opts.clock.setTimeout(() => {
      rt.ackTimer = undefined;
      this.ack(rt, true);
    }, due - t);
  }

  private cancelAck(rt: FeedRuntime): void {
    rt.ackTimer?.cancel();
    rt.ackTimer = undefined;
  }

  // ---------------------------------------------------------------- events

  private setState(state: Exclude<ClientState, 'idle'>, extra: { endpoint?: string; reason?: CattailError | undefined; delayMs?: number; staleFeeds?: string[] }): void {
    const from = this.current;
    // Edge-triggered: a state re-entered is no event (nats.js' SlowNotifier discipline).
    if (from === state || from === 'closed') return;
    this.current = state;
    const ev: StatusEvent = {
      state,
      from,
      endpoint: extra.endpoint ?? this.conn?.url,
      serverId: this.conn?.serverId,
      reason: extra.reason,
      delayMs: extra.delayMs,
      staleFeeds: extra.staleFeeds,
      discovery: this.discovery === undefined ? undefined : { endpoints: this.discovery.current.urls.length, fallbackNotReady: this.discovery.current.fallbackNotReady, error: this.discovery.current.error },
      attempt: this.backoff.failures,
      at: this.opts.clock.now(),
    };
    for (const q of this.statusQueues) q.push(ev);
    this.emit('status', ev);
  }

  private emitChange(b: RawChangeBatch): void {
    // Reasserted keys (feed-state.ts) are news to relays only: in raw mode a batch may hold
    // nothing else; otherwise such a batch is no change at all.
    const reasserted = this.opts.raw ? b.reasserted : undefined;
    if (b.upserts.length + b.deletes.length === 0 && reasserted === undefined) return;
    this.counters.changeBatches++;
    if (this.listeners.change.size === 0) return;
    this.emit('change', {
      feed: b.feed,
      revision: b.revision,
      cause: b.cause,
      upserts: b.upserts.map(([key, v]) => ({ key, value: this.decodeValue(v as Buffer), raw: v as Buffer })),
      deletes: b.deletes,
      ...(reasserted !== undefined ? { reasserted: reasserted.map(([key, v]) => ({ key, raw: v as Buffer })) } : {}),
    });
  }

  /** Every STATUS is passed on, not only changes: a watermark-only STATUS matters to relays (tier 2). */
  private emitFeedStatus(feed: string): void {
    if (this.listeners.feedStatus.size > 0) this.emit('feedStatus', this.feed(feed).status);
    this.keeper?.maybeWrite();
  }

  private decodeValue(b: Buffer): unknown {
    if (this.opts.raw) return b;
    try {
      return this.unpackr.unpack(b);
    } catch {
      this.counters.decodeErrors++;
      return undefined;
    }
  }

  private emit<K extends keyof EventMap>(event: K, payload: EventMap[K]): void {
    for (const fn of this.listeners[event] as Set<(e: EventMap[K]) => void>) {
      try {
        fn(payload);
      } catch (err) {
        // A host's listener bug must not break the connection's state machine. It is not
        // swallowed either: reported to 'listenerError' listeners, else re-thrown outside our
        // call stack where the host's own uncaught-error handling sees it.
        this.counters.listenerErrors++;
        if (event !== 'listenerError' && this.listeners.listenerError.size > 0) this.emit('listenerError', err);
        else queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/**
 * Creates a client and starts connecting. The first attempt starts in a microtask, so listeners
 * and `status()` iterators attached right after `connect()` returns see every edge from
 * `connecting` on. Await {@link Client.whenInSync} for the first sync. Throws
 * InvalidArgumentError for bad options (synchronously, before anything is opened), and
 * CATTAIL_CLIENT_NO_DISCOVERY_CONFIG for a `service` with no kubeconfig, no in-cluster service
 * account, no `endpointSliceSource` and no static `endpoints`.
 */
export function connect(options: ConnectOptions): Client {
  const c = new Client(options);
  queueMicrotask(() => c.start());
  return c;
}
