/**
 * The fleet convergence barrier: "has every agent connected here applied resourceVersion RV of
 * this resource?", answered at once or when it becomes true, or at a timeout (DESIGN.md
 * "Convergence barrier"; the HTTP side is ops/convergence-endpoint.ts).
 *
 * Event-driven, never polled: a waiter is re-judged only for the agent an event concerns, an ACK
 * or a HELLO (onAgentChanged) or a close (onAgentLeft), plus its pending agents when a feed's own
 * watermark of the resource first reaches the requested resourceVersion (onWatermarks, below).
 * Each waiter keeps the set of agents in its scope and the subset still pending; an agent's event
 * reaches only the whole-fleet waiters and those naming its node (an index), and the agent's
 * applied resourceVersion is derived once per event, not once per waiter. Nothing when nobody
 * waits. Its one timer is the injected clock's timeout.
 *
 * Why the watermark pass is keyed to that one transition: an agent's applied watermarks change
 * without an ACK of its own only while it holds the store's current revision (the watermark log's
 * records of past revisions are final), and then they are the feed's own watermarks. So an agent
 * pending on RV at a feed whose own watermark is below RV stays pending until an ACK, and when
 * the feed's watermark reaches RV every agent holding its current revision has reached it at
 * once: one pass then, none on the batches before or after. The rejected alternative, a pass
 * over every waiter's pending agents on every loop turn with batches, cost the fan-out loop
 * Σ pending (up to the 500,000-agent bound) per turn for requests waiting on a resourceVersion
 * the replica had not seen (a review). One more way in, found by the next review: an ACK of a
 * revision that maps to no watermarks (the log trimmed the only record below it, after batches
 * without watermarks of their own: tier 2) credits the agent nothing until a later batch records
 * that revision, long after the feed reached the resourceVersion. Such agents are remembered
 * (`unmapped`) and judged again after batches until their revisions map.
 *
 * Scope: agents subscribed to a feed that carries the resource, counted from the request on (an
 * agent that connects while it waits joins the scope; one that leaves drops out). With a node
 * list, only those nodes, and a named node without such a connection here counts as not converged.
 */
import type { Clock, Timer } from '../../clock.js';
import { CattailError } from '../../errors.js';
import { findResource } from '../../registry.js';
import type { Connection } from '../transport/connection.js';
import { agentApplied, reached, type AgentApplied } from './applied-watermarks.js';
import type { FeedRuntime } from './feeds.js';

/** Laggards named in one answer; the count beside them is exact. */
export const MAX_LAGGARDS = 100;
/** Requests waiting at once, beyond which a new one is refused (each holds a timer and two sets). */
export const DEFAULT_MAX_WAITERS = 1_000;
/**
 * Agents in the scopes of all waiting requests together, beyond which a new request is refused,
 * and a waiting one whose scope grows past it (agents connecting later) is answered 503 too.
 * Why: each waiter holds its scope's connections in two sets, so the count of waiters alone let
 * 1,000 requests for the whole fleet hold 20 million set entries at 10,000 agents (hundreds of MB)
 * from the unauthenticated HTTP port (a bounds audit). 500,000 is 50 whole-fleet requests at
 * 10,000 agents, or every one of the 1,000 with a node filter.
 */
export const DEFAULT_MAX_WAITING_AGENTS = 500_000;

export interface ConvergenceQuery {
  /** A resource id this replica serves (resolveResource). */
  readonly resource: string;
  /** Decimal resourceVersion. */
  readonly resourceVersion: string;
  /** 0 answers at once. */
  readonly timeoutMs: number;
  /** Only these nodes (each must be connected here to converge); undefined: every agent. */
  readonly nodes?: readonly string[] | undefined;
}

export interface Laggard {
  readonly node: string;
  /** null for a named node that is not connected. */
  readonly clientId: string | null;
  /** The resourceVersion the agent has applied; null when unknown (no ACK yet) or not connected. */
  readonly appliedResourceVersion: string | null;
  readonly connected: boolean;
}

export interface ConvergenceReport {
  readonly converged: boolean;
  readonly timedOut: boolean;
  readonly serverId: string;
  readonly resource: string;
  readonly resourceVersion: string;
  /** This replica's own watermark of the resource (the smallest over its feeds); null before its first list. */
  readonly replicaResourceVersion: string | null;
  /** Connected agents in scope, and how many of them have applied the resourceVersion. */
  readonly agents: number;
  readonly convergedAgents: number;
  /** Agents in scope not converged, plus named nodes not connected here. */
  readonly laggardCount: number;
  /** At most MAX_LAGGARDS of them, by node name. */
  readonly laggards: readonly Laggard[];
  /**
   * Every named node with no connection here (empty without a node list): what `cattail converge`
   * needs to tell a node connected to another replica from one connected nowhere.
   */
  readonly missingNodes: readonly string[];
  readonly waitedMs: number;
}

interface Waiter {
  readonly q: ConvergenceQuery;
  readonly startedMs: number;
  /** Named node → its connections in scope; undefined without a node list. */
  readonly nodes: Map<string, number> | undefined;
  /** Named nodes with no connection in scope. */
  missing: number;
  readonly scope: Set<Connection>;
  readonly pending: Set<Connection>;
  /** Feeds carrying the resource whose own watermark was at or past the resourceVersion at the last look. */
  readonly reached: Set<FeedRuntime>;
  timer: Timer | undefined;
  readonly resolve: (r: ConvergenceReport) => void;
  readonly reject: (err: Error) => void;
}

export interface ConvergenceOptions {
  readonly clock: Clock;
  readonly serverId: string;
  readonly feeds: readonly FeedRuntime[];
  readonly connections: () => Iterable<Connection>;
  /** @default DEFAULT_MAX_WAITERS */
  readonly maxWaiters?: number;
  /** Agents in all waiting requests' scopes together (count). @default DEFAULT_MAX_WAITING_AGENTS */
  readonly maxWaitingAgents?: number;
}

export class ConvergenceTracker {
  private readonly waiters = new Set<Waiter>();
  /** The waiting requests without a node list: every agent's event concerns them. */
  private readonly fleetWaiters = new Set<Waiter>();
  /** Node name → the waiting requests naming it: the only others an agent's event concerns. */
  private readonly byNode = new Map<string, Set<Waiter>>();
  /** Resource id → the served feeds carrying it (the feed list is fixed for the server's life). */
  private readonly carrying = new Map<string, readonly FeedRuntime[]>();
  /** Pending agents with an ACKed revision that mapped to no watermarks when judged (module comment). */
  private readonly unmapped = new Set<Connection>();
  /** Agent judgements so far (`cattail_convergence_agent_checks_total`): the barrier's CPU, in work done. */
  checks = 0;
  /** Agents in the scopes of the waiters together (Σ scope.size, kept as they change). */
  private heldAgents = 0;
  private recheckScheduled = false;
  private readonly maxWaiters: number;
  private readonly maxWaitingAgents: number;

  constructor(private readonly o: ConvergenceOptions) {
    this.maxWaiters = o.maxWaiters ?? DEFAULT_MAX_WAITERS;
    this.maxWaitingAgents = o.maxWaitingAgents ?? DEFAULT_MAX_WAITING_AGENTS;
  }

  /** Requests waiting now (the `cattail_convergence_waiters` gauge). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Every resource id a served feed carries, sorted. */
  resources(): string[] {
    return [...new Set(this.o.feeds.flatMap((f) => f.def.resources))].sort();
  }

  /**
   * The served resource id a query names: the id itself (`networkpolicies.networking.k8s.io`), or
   * the plural alone (`networkpolicies`) when one served id has it. When several do, the plural
   * names the Kubernetes built-in one, as kubectl resolves it (the felix feed carries both
   * Kubernetes and Calico networkpolicies; `networkpolicies` means the Kubernetes one).
   */
  resolveResource(name: string): string {
    const ids = this.resources();
    if (ids.includes(name)) return name;
    const plural = ids.filter((id) => id.split('.')[0] === name);
    const builtin = plural.filter((id) => findResource(id)?.optional === false);
    const matches = plural.length > 1 && builtin.length === 1 ? builtin : plural;
    if (matches.length === 1) return matches[0] as string;
    const why = matches.length > 1 ? `is ambiguous here (${matches.join(', ')}); name the resource id` : `is not served by this replica (served: ${ids.join(', ')})`;
    throw new CattailError('CATTAIL_CONVERGENCE_BAD_REQUEST', `resource ${JSON.stringify(name)} ${why}`, { details: { resource: name } });
  }

  /**
   * Resolves when every agent in scope has applied the resourceVersion, or at the timeout (then
   * `converged: false`), or when `signal` aborts (the asker went away; the answer is dropped).
   * Throws CATTAIL_CONVERGENCE_TOO_MANY_WAITERS when maxWaiters requests already wait (unless this
   * one does not wait: timeoutMs 0), or when
   * this one's agents would take the scopes of all waiting requests past maxWaitingAgents; the
   * promise rejects with the same code when its scope later grows past that bound.
   */
  wait(q: ConvergenceQuery, signal?: AbortSignal): Promise<ConvergenceReport> {
    // A request with timeoutMs 0 never waits, so it takes no waiter's place: it is answered even
    // at the bound (`cattail converge --node` asks that way first, to learn where each node is).
    if (this.waiters.size >= this.maxWaiters && q.timeoutMs !== 0) {
      throw new CattailError('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS', `${this.waiters.size} convergence requests are already waiting on this replica (at most ${this.maxWaiters}); retry later`);
    }
    let resolve!: (r: ConvergenceReport) => void;
    let reject!: (err: Error) => void;
    const answer = new Promise<ConvergenceReport>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const nodes = q.nodes === undefined ? undefined : new Map(q.nodes.map((n) => [n, 0]));
    const w: Waiter = { q, startedMs: this.o.clock.monotonic(), nodes, missing: nodes?.size ?? 0, scope: new Set(), pending: new Set(), reached: new Set(), timer: undefined, resolve, reject };
    this.newlyReached(w);
    for (const conn of this.o.connections()) this.judge(w, conn);
    if (this.isConverged(w) || q.timeoutMs === 0) {
      resolve(this.report(w, !this.isConverged(w)));
      return answer;
    }
    const held = this.heldAgents;
    if (held + w.scope.size > this.maxWaitingAgents) {
      throw new CattailError('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS', `convergence requests waiting on this replica already follow ${held} agents; this one's ${w.scope.size} would pass ${this.maxWaitingAgents}; retry later or name nodes`);
    }
    this.waiters.add(w);
    if (nodes === undefined) this.fleetWaiters.add(w);
    for (const n of nodes?.keys() ?? []) {
      let set = this.byNode.get(n);
      if (set === undefined) this.byNode.set(n, (set = new Set()));
      set.add(w);
    }
    this.heldAgents += w.scope.size;
    w.timer = this.o.clock.setTimeout(() => this.finish(w, true), q.timeoutMs);
    signal?.addEventListener('abort', () => this.drop(w), { once: true });
    return answer;
  }

  /** An agent finished its HELLO or ACKed: re-judge it for every waiter it concerns. */
  onAgentChanged(conn: Connection): void {
    if (this.waiters.size === 0) return;
    const applied = new Map<string, AgentApplied | undefined>();
    for (const w of this.concerned(conn)) {
      this.judge(w, conn, applied);
      if (this.isConverged(w)) this.finish(w, false);
    }
  }

  /** An agent's connection closed: it leaves every scope (a named node may now be missing). */
  onAgentLeft(conn: Connection): void {
    this.unmapped.delete(conn);
    if (this.waiters.size === 0) return;
    for (const w of this.concerned(conn)) {
      if (!w.scope.delete(conn)) continue;
      this.heldAgents--;
      w.pending.delete(conn);
      this.countNode(w, conn.node, -1);
      if (this.isConverged(w)) this.finish(w, false);
    }
  }

  /**
   * Batches were applied: a feed's own watermarks may have advanced without a new revision, and
   * agents already holding its current revision with them. Looked at once per loop turn (a burst
   * of batches costs one look): per waiter, O(feeds carrying its resource) comparisons, and a pass
   * over its pending agents only when one of those feeds has just reached its resourceVersion
   * (the module comment says why that is enough).
   */
  onWatermarks(): void {
    if (this.waiters.size === 0 || this.recheckScheduled) return;
    this.recheckScheduled = true;
    setImmediate(() => {
      this.recheckScheduled = false;
      for (const w of [...this.waiters]) {
        if (!this.newlyReached(w)) continue;
        for (const conn of [...w.pending]) this.judge(w, conn);
        if (this.isConverged(w)) this.finish(w, false);
      }
      for (const conn of [...this.unmapped]) {
        if (hasUnmappedAck(conn)) continue;
        this.unmapped.delete(conn);
        this.onAgentChanged(conn);
      }
    });
  }

  /** Shutdown: every waiter gets its answer now. */
  close(): void {
    for (const w of [...this.waiters]) this.finish(w, false);
    this.unmapped.clear();
  }

  /** The waiters an agent's event can concern, copied (answering one changes the sets). */
  private concerned(conn: Connection): Waiter[] {
    const named = this.byNode.get(conn.node);
    return named === undefined ? [...this.fleetWaiters] : [...this.fleetWaiters, ...named];
  }

  private feedsCarrying(resource: string): readonly FeedRuntime[] {
    let fs = this.carrying.get(resource);
    if (fs === undefined) this.carrying.set(resource, (fs = this.o.feeds.filter((f) => f.def.resources.includes(resource))));
    return fs;
  }

  /**
   * Updates the waiter's set of feeds whose own watermark of the resource is at or past its
   * resourceVersion; true when one joined it since the last look (a feed's watermarks may also go
   * back, after an upstream regression: leaving and joining again counts again).
   */
  private newlyReached(w: Waiter): boolean {
    let joined = false;
    for (const f of this.feedsCarrying(w.q.resource)) {
      const own = f.store.meta().watermarks[w.q.resource];
      if (reached(own, w.q.resourceVersion)) {
        if (!w.reached.has(f)) {
          w.reached.add(f);
          joined = true;
        }
      } else {
        w.reached.delete(f);
      }
    }
    return joined;
  }

  /** `memo`: the agent's applied resourceVersions by resource, when one event judges it for several waiters. */
  private judge(w: Waiter, conn: Connection, memo?: Map<string, AgentApplied | undefined>): void {
    this.checks++;
    if (w.nodes !== undefined && !w.nodes.has(conn.node)) return;
    let a: AgentApplied | undefined;
    if (memo === undefined) a = agentApplied(conn, w.q.resource);
    else if (memo.has(w.q.resource)) a = memo.get(w.q.resource);
    else memo.set(w.q.resource, (a = agentApplied(conn, w.q.resource)));
    if (a === undefined) return;
    if (!w.scope.has(conn)) {
      if (this.waiters.has(w) && this.heldAgents >= this.maxWaitingAgents) {
        // Grown past the bound as agents connected: this request goes, as a new one would be
        // refused (the asker retries, or names nodes). The request that grows is the one to drop.
        this.drop(w);
        w.reject(new CattailError('CATTAIL_CONVERGENCE_TOO_MANY_WAITERS', `convergence requests waiting on this replica follow ${this.maxWaitingAgents} agents as agents connected; this one was dropped; retry later or name nodes`));
        return;
      }
      w.scope.add(conn);
      if (this.waiters.has(w)) this.heldAgents++;
      this.countNode(w, conn.node, 1);
    }
    if (reached(a.rv, w.q.resourceVersion)) {
      w.pending.delete(conn);
    } else {
      w.pending.add(conn);
      if (hasUnmappedAck(conn)) this.unmapped.add(conn);
    }
  }

  private countNode(w: Waiter, node: string, by: 1 | -1): void {
    const n = w.nodes?.get(node);
    if (w.nodes === undefined || n === undefined) return;
    w.nodes.set(node, n + by);
    if (n === 0 && by === 1) w.missing--;
    if (n === 1 && by === -1) w.missing++;
  }

  private isConverged(w: Waiter): boolean {
    return w.pending.size === 0 && w.missing === 0;
  }

  private finish(w: Waiter, timedOut: boolean): void {
    if (!this.drop(w)) return;
    w.resolve(this.report(w, timedOut));
  }

  private drop(w: Waiter): boolean {
    if (!this.waiters.delete(w)) return false;
    if (this.waiters.size === 0) this.unmapped.clear();
    this.fleetWaiters.delete(w);
    for (const n of w.nodes?.keys() ?? []) {
      const set = this.byNode.get(n);
      set?.delete(w);
      if (set?.size === 0) this.byNode.delete(n);
    }
    this.heldAgents -= w.scope.size;
    w.timer?.cancel();
    return true;
  }

  private report(w: Waiter, timedOut: boolean): ConvergenceReport {
    const { resource, resourceVersion } = w.q;
    const laggards: Laggard[] = [];
    for (const conn of w.pending) {
      if (laggards.length >= MAX_LAGGARDS) break;
      laggards.push({ node: conn.node, clientId: conn.clientId, appliedResourceVersion: agentApplied(conn, resource)?.rv ?? null, connected: true });
    }
    for (const [node, n] of w.nodes ?? []) {
      if (laggards.length >= MAX_LAGGARDS) break;
      if (n === 0) laggards.push({ node, clientId: null, appliedResourceVersion: null, connected: false });
    }
    laggards.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    return {
      converged: this.isConverged(w),
      timedOut: timedOut && !this.isConverged(w),
      serverId: this.o.serverId,
      resource,
      resourceVersion,
      replicaResourceVersion: this.replicaRv(resource) ?? null,
      agents: w.scope.size,
      convergedAgents: w.scope.size - w.pending.size,
      laggardCount: w.pending.size + w.missing,
      laggards,
      missingNodes: [...(w.nodes ?? [])].filter(([, n]) => n === 0).map(([node]) => node).sort(),
      waitedMs: Math.max(0, Math.round(this.o.clock.monotonic() - w.startedMs)),
    };
  }

  /** The smallest of this replica's own watermarks of the resource over the feeds carrying it. */
  private replicaRv(resource: string): string | undefined {
    let min: string | undefined;
    for (const f of this.o.feeds) {
      if (!f.def.resources.includes(resource)) continue;
      const rv = f.store.meta().watermarks[resource];
      if (rv === undefined) return undefined;
      if (min === undefined || !reached(rv, min)) min = rv;
    }
    return min;
  }
}

/**
 * The connection ACKed its feed's current revision while the watermark log maps it to nothing:
 * a later batch at that revision may record it. (An older revision without a mapping never gets
 * one: only the current revision's record is ever written.)
 */
function hasUnmappedAck(conn: Connection): boolean {
  for (const c of conn.cursors) if (c.acked === true && c.ackedRevision === c.feed.store.revision && c.feed.store.watermarksAt(c.ackedRevision) === undefined) return true;
  return false;
}
