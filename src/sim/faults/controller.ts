/**
 * The faults controller: implements the core's {@link SimHooks} (one gate before every resource
 * request, one tap per watch) and the `admin.faults` API. Every fault it causes is counted in
 * `sim_faults_total{kind}` and appended to a log (RV and clock time), which is what makes a
 * seeded timeline checkably replayable.
 */
import type { Socket } from 'node:net';
import type { Clock } from '../../clock.js';
import { CattailError } from '../../errors.js';
import { findResource, type ResourceDef } from '../../registry.js';
import type { ApiRequest, SimContext, SimHooks, WatchTap } from '../context.js';
import type { WatchCloseReason } from '../counters.js';
import type { JsonObject } from '../encode.js';
import { encodeContinue } from '../list.js';
import { expired, status, StatusError } from '../status.js';
import type { Store, StoreBackup } from '../store.js';
import type { WatchHub } from '../watch.js';
import { parseStored, type Writer } from '../writes.js';
import type { TokenAuth } from './auth.js';
import { TimeBudget } from './budget.js';
import { FaultRules, type ActiveRule, type FaultEventKind, type FaultRule } from './rules.js';
import { FaultTap, type SlowWatcherLimits } from './tap.js';
import { scheduleTimeline, validateTimeline, type TimelineAction, type TimelineEntry } from './timeline.js';

export interface FaultLogEntry {
  /** Clock monotonic ms. */
  atMs: number;
  kind: FaultEventKind;
  rv: number;
  resource?: string;
  clientId?: string;
}

export interface LargeObjectOptions {
  /** @default 'pods' */
  resource?: string;
  /** @default 'default' (ignored for cluster-scoped resources) */
  namespace?: string;
  /** @default 'large-<n>' */
  name?: string;
  /** Approximate encoded size. @default 1_500_000 */
  bytes?: number;
}

/** `admin.faults`: fault rules, server-side disasters and token rotation. */
export interface SimFaults {
  /** Adds a rule (see FAULT_KINDS); returns its id. */
  add(rule: FaultRule): string;
  remove(id: string): boolean;
  clear(): void;
  rules(): ActiveRule[];
  /** Ends every watch of `resource` (cache re-initialisation), then answers its LIST/WATCH with 429 + Retry-After for `retryAfterMs`. Returns how many watches closed. */
  terminateWatches(resource: string, retryAfterMs?: number): number;
  /** Compacts history (default: up to the current RV); the next resume from before it gets 410. */
  compact(rv?: number): number;
  /** Drops every connection, refuses connections for `refuseMs` (clock time), then serves again on the same port with an empty watch-cache history. Resolves once listening again. */
  restart(options?: { refuseMs?: number }): Promise<void>;
  /** The store's state now, for restore(). */
  backup(): StoreBackup;
  /**
   * etcd restored from `backup` without a revision bump (`etcdutl snapshot restore` without
   * `--bump-revision`): the objects and the revision go back to the backup's, histories start
   * empty there, and the API server restarts as with restart(). Watches from a resourceVersion
   * ahead of the restored revision are then silent until it passes them. Only the resources
   * served now are restored (a CRD installed or deleted since keeps its present state), the churn
   * generator goes on with the pods it knew, and a simulator with an HA follower refuses it.
   */
  restore(backup: StoreBackup, options?: { refuseMs?: number }): Promise<void>;
  /** Creates an object of about `bytes` (default 1.5 MB) through the normal write path. */
  largeObject(options?: LargeObjectOptions): JsonObject;
  /** Rewrites the token (kubeconfig and service-account file); the old one stays valid for `graceMs`. Returns the new token. */
  rotateToken(token?: string, graceMs?: number): Promise<string>;
  /** Every fault so far, oldest first. */
  log(): FaultLogEntry[];
  /** Runs a fault script on the clock, from now (replacing a running one). */
  runTimeline(entries: readonly TimelineEntry[]): void;
  stopTimeline(): void;
}

/** What the controller needs from startSim that the context does not carry. */
export interface FaultsEnv {
  /** The leader's and, with HA, the follower's watches. */
  readonly hubs: readonly WatchHub[];
  /** Started with an HA follower (startSim({ ha })). */
  readonly haFollower: boolean;
  churnSteps(n: number): void;
  readonly writer: Writer;
  readonly store: Store;
  readonly slow: SlowWatcherLimits;
  readonly auth: TokenAuth | undefined;
  restartServer(refuseMs: number): Promise<void>;
  onTokenRotated(token: string): Promise<void>;
}

export class FaultsController implements SimHooks, SimFaults {
  private readonly rulesSet: FaultRules;
  private readonly budget: TimeBudget;
  private readonly throttledUntil = new Map<string, number>();
  private readonly pendingStream = new WeakMap<ApiRequest, ActiveRule>();
  private readonly entries: FaultLogEntry[] = [];
  private largeSeq = 0;
  private timeline: { cancel(): void } | undefined;
  private tokenSeq = 0;

  constructor(
    private readonly ctx: SimContext,
    private readonly env: FaultsEnv,
  ) {
    this.rulesSet = new FaultRules(ctx.rng);
    this.budget = new TimeBudget(ctx.clock);
  }

  private get clock(): Clock {
    return this.ctx.clock;
  }

  /** Counts one fault and logs it. */
  record(kind: FaultEventKind, resource?: string, clientId?: string): void {
    this.ctx.counters.faults.inc([kind]);
    const e: FaultLogEntry = { atMs: this.clock.monotonic(), kind, rv: this.ctx.store.currentRv };
    if (resource !== undefined) e.resource = resource;
    if (clientId !== undefined) e.clientId = clientId;
    this.entries.push(e);
    if (this.entries.length > 10_000) this.entries.splice(0, this.entries.length - 10_000);
  }

  // --- SimHooks ---

  gate(r: ApiRequest): boolean {
    const { res } = r;
    if (this.env.auth && !this.env.auth.check(r.req.headers.authorization)) {
      throw new StatusError(status(401, 'Unauthorized', 'Unauthorized'));
    }
    if (r.verb !== 'LIST' && r.verb !== 'WATCH') return false;
    const until = this.throttledUntil.get(r.def.id);
    if (until !== undefined) {
      const left = until - this.clock.monotonic();
      if (left > 0) {
        this.record('throttle_429', r.def.id, r.clientId);
        const secs = Math.max(1, Math.ceil(left / 1000));
        throw new StatusError(status(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: secs }), { 'Retry-After': String(secs) });
      }
      this.throttledUntil.delete(r.def.id);
    }
    const rule = this.rulesSet.match(r.def.id, r.clientId, r.verb, (r.query.get('continue') ?? '') !== '');
    if (!rule) return false;
    switch (rule.kind) {
      case 'unauthorized':
        this.record(rule.kind, r.def.id, r.clientId);
        throw new StatusError(status(401, 'Unauthorized', 'Unauthorized'));
      case 'forbidden':
        this.record(rule.kind, r.def.id, r.clientId);
        throw new StatusError(
          status(403, 'Forbidden', `${r.def.plural}${r.def.group ? `.${r.def.group}` : ''} is forbidden: User "system:serviceaccount:kube-system:cattail" cannot ${r.verb.toLowerCase()} resource "${r.def.plural}" in API group "${r.def.group}" at the cluster scope`, {
            group: r.def.group,
            kind: r.def.plural,
          }),
        );
      case 'http_410':
        this.record(rule.kind, r.def.id, r.clientId);
        throw expired(`too old resource version: ${r.query.get('resourceVersion') ?? ''} (${this.ctx.store.currentRv})`);
      case 'expire_continue': {
        this.record(rule.kind, r.def.id, r.clientId);
        this.ctx.counters.continueExpired.inc([]);
        let start = '';
        try {
          start = (JSON.parse(Buffer.from(r.query.get('continue') ?? '', 'base64url').toString('utf8')) as { start?: string }).start ?? '';
        } catch {
          /* an undecodable token restarts at the beginning */
        }
        throw expired('The provided continue parameter is too old to display a consistent list result.', encodeContinue(this.ctx.store.currentRv, start.endsWith('\u0000') ? start.slice(0, -1) : start));
      }
      case 'blackhole':
        this.record(rule.kind, r.def.id, r.clientId);
        this.ctx.counters.requests.inc([r.verb, r.def.id, '200']);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
        res.flushHeaders();
        return true;
      case 'no_headers':
        // Leave the request unanswered; close() and restart() drop the connection.
        this.record(rule.kind, r.def.id, r.clientId);
        return true;
      case 'close_after_headers':
        this.record(rule.kind, r.def.id, r.clientId);
        this.ctx.counters.requests.inc([r.verb, r.def.id, '200']);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
        res.end();
        return true;
      default:
        // Stream faults act inside the watch (see watch()).
        this.pendingStream.set(r, rule);
        return false;
    }
  }

  /** A new TCP connection: true when a connection-level fault took it (the caller must not use it). */
  onConnection(socket: Socket): boolean {
    const rule = this.rulesSet.matchConnection();
    if (!rule) return false;
    this.record(rule.kind);
    // An HTTP/1.1 status line where a TLS ServerHello belongs: the client's handshake fails.
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return true;
  }

  watch(r: ApiRequest, close: (reason: WatchCloseReason) => void): WatchTap {
    const rule = this.pendingStream.get(r);
    this.pendingStream.delete(r);
    return new FaultTap(r, close, rule, this.env.slow, this.budget, this.clock, this.ctx.counters, (k) => this.record(k, r.def.id, r.clientId));
  }

  // --- SimFaults ---

  add(rule: FaultRule): string {
    return this.rulesSet.add(rule);
  }
  remove(id: string): boolean {
    return this.rulesSet.remove(id);
  }
  clear(): void {
    this.rulesSet.clear();
  }
  rules(): ActiveRule[] {
    return this.rulesSet.list();
  }
  log(): FaultLogEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  private def(id: string): ResourceDef {
    const d = findResource(id);
    if (!d || !this.ctx.store.resource(id)) throw new CattailError('CATTAIL_SIM_UNKNOWN_RESOURCE', `the simulator serves no resource ${JSON.stringify(id)}`, { details: { resource: id } });
    return d;
  }

  terminateWatches(resource: string, retryAfterMs = 0): number {
    const d = this.def(resource);
    if (!Number.isSafeInteger(retryAfterMs) || retryAfterMs < 0) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `terminateWatches: retryAfterMs must be an integer >= 0, got ${retryAfterMs}`);
    this.record('terminate_watches', d.id);
    if (retryAfterMs > 0) this.throttledUntil.set(d.id, this.clock.monotonic() + retryAfterMs);
    return this.env.hubs.reduce((n, h) => n + h.closeAll('admin', d.id), 0);
  }

  compact(rv?: number): number {
    if (rv !== undefined && (!Number.isSafeInteger(rv) || rv < 0)) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `compact: invalid resourceVersion ${rv}`);
    const at = this.env.store.compact(rv);
    this.record('compact');
    return at;
  }

  async restart(options: { refuseMs?: number } = {}): Promise<void> {
    const refuseMs = options.refuseMs ?? 0;
    if (!Number.isSafeInteger(refuseMs) || refuseMs < 0) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `restart: refuseMs must be an integer >= 0, got ${refuseMs}`);
    this.record('restart');
    for (const h of this.env.hubs) h.closeAll('shutdown');
    await this.env.restartServer(refuseMs);
  }

  backup(): StoreBackup {
    return this.env.store.backup();
  }

  async restore(backup: StoreBackup, options: { refuseMs?: number } = {}): Promise<void> {
    const refuseMs = options.refuseMs ?? 0;
    if (!Number.isSafeInteger(refuseMs) || refuseMs < 0) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `restore: refuseMs must be an integer >= 0, got ${refuseMs}`);
    // The follower's queue of lagged events would outlive the restore (events of objects that no
    // longer exist, the restored timeline's stuck behind them): not modelled, refused.
    if (this.env.haFollower) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'restore: not modelled with an HA follower (startSim({ ha }))');
    for (const h of this.env.hubs) h.closeAll('shutdown');
    this.env.store.restore(backup);
    this.record('restore');
    await this.env.restartServer(refuseMs);
  }

  largeObject(options: LargeObjectOptions = {}): JsonObject {
    const d = this.def(options.resource ?? 'pods');
    const bytes = options.bytes ?? 1_500_000;
    if (!Number.isSafeInteger(bytes) || bytes < 1 || bytes > 3_000_000) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `largeObject: bytes must be in [1, 3000000], got ${bytes}`);
    const name = options.name ?? `large-${++this.largeSeq}`;
    const metadata: JsonObject = { name, annotations: { 'cattail.dev/padding': 'x'.repeat(bytes) } };
    if (d.namespaced) metadata['namespace'] = options.namespace ?? 'default';
    const obj: JsonObject = d.id === 'pods' ? { metadata, spec: { containers: [] } } : { metadata, spec: {} };
    const stored = this.env.writer.create(d, obj, d.namespaced ? (metadata['namespace'] as string) : undefined);
    this.record('large_object', d.id);
    return parseStored(stored);
  }

  runTimeline(entries: readonly TimelineEntry[]): void {
    const valid = validateTimeline(entries);
    this.stopTimeline();
    this.timeline = scheduleTimeline(this.clock, valid, (a) => this.apply(a));
  }

  stopTimeline(): void {
    this.timeline?.cancel();
    this.timeline = undefined;
  }

  private apply(a: TimelineAction): void {
    switch (a.type) {
      case 'fault':
        this.add(a.rule);
        return;
      case 'clearFaults':
        this.clear();
        return;
      case 'churn':
        this.env.churnSteps(a.steps);
        return;
      case 'compact':
        this.compact();
        return;
      case 'terminate':
        this.terminateWatches(a.resource, a.retryAfterMs ?? 0);
        return;
    }
  }

  async rotateToken(token?: string, graceMs = 60_000): Promise<string> {
    const auth = this.env.auth;
    if (!auth) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'rotateToken: the simulator was started without a token (startSim({ token }) or { https: true })');
    const next = token ?? `cattail-sim-${this.ctx.rng.hex(16)}-${++this.tokenSeq}`;
    auth.rotate(next, graceMs);
    await this.env.onTokenRotated(next);
    return next;
  }
}
