/**
 * A second tier: this replica follows another Cattail (tier 1) through the client library instead
 * of watching the API server (`cattail serve --upstream-cattail ws://tier1:5473/`). However many
 * tier-2 replicas there are, the API server sees only tier 1's watches.
 *
 * What passes through unchanged, so a tier-2 agent's state equals the API server's:
 * - entries: the client runs in raw mode, so each value is the exact msgpack bytes tier 1 stored
 *   (never decoded and re-encoded); a snapshot after a reconnect arrives as its reconciled diff
 *   (keys gone are deletions), so the tier-2 store changes by exactly the real differences;
 * - watermarks, sync status and `stale`: from every SNAPSHOT_END and STATUS (the client's
 *   `feedStatus` event), watermark-only ones included, so agents can compare replicas of either
 *   tier (PROTOCOL.md §8). Entries changed by a unit go to the store together with the
 *   watermarks of the feedStatus that follows it, so each revision is recorded at the watermarks
 *   it was made at (what a rebase between tier-2 replicas compares); a skip in the client's
 *   history (a resync, deletions of keys it did not hold) makes that batch a rebase barrier, as a
 *   relist does on tier 1. A unit's upserts of values the client already held (`reasserted`:
 *   A→B→A at tier 1) are changes here too (force), as they were in tier 1's store. The status
 *   never goes back from in-sync (PROTOCOL.md §4.7);
 * - digests follow from equal entries.
 * Revisions and resume tokens are this replica's own (they never cross replicas anyway).
 *
 * When tier 1 has not confirmed a sync for `staleAfterMs` since it was lost (a WELCOME is not
 * enough: a tier 1 that cuts every snapshot off is as good as gone), every feed is reported stale
 * (as a replica whose API server is down) and keeps serving its last state. Tier 1 is found from
 * the static list of `--upstream-cattail` or from its Service's EndpointSlices
 * (`--upstream-cattail-service`, the client library's discovery, looked at before every attempt),
 * with the client's failover, backoff and behind checks;
 * `wss://` takes the client library's TLS settings from the `--upstream-cattail-*` options (CA,
 * client certificate for a tier 1 with mutual TLS, expected server CN or URI SAN).
 */
import { connect, type Client, type ConnectOptions } from '../client/index.js';
import type { FeedStatus } from '../client/feed-view.js';
import type { Clock, Timer } from '../clock.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { SYNCER_FEEDS } from '../registry.js';
import type { FeedDefinition, FeedSink, FeedUpdate, ResourceHealth, Upstream } from './pipeline/seams.js';
import { builtinFeed } from './upstream/feeds.js';

export interface CattailUpstreamOptions {
  /** Tier-1 agent URLs (ws:// or wss://); with `service`, used while discovery finds none. */
  readonly endpoints: readonly string[];
  /** Tier 1's Service (NAMESPACE/NAME): its replicas are read from its EndpointSlices before every attempt. */
  readonly service: string | undefined;
  /** With `service`: the EndpointSlice port name of tier 1's agent port. @default 'agents' */
  readonly servicePortName?: string;
  /** Built-in feed names to follow (custom feeds are defined by tier 1, not here). */
  readonly feeds: readonly string[];
  /** This replica's name, sent as the node in HELLO (tier 1's /debug/clients shows it). */
  readonly replicaId: string;
  /** Report stale after this long without tier 1, in ms. */
  readonly staleAfterMs: number;
  readonly clock: Clock;
  readonly log?: Logger | undefined;
  /** TLS to tier 1, the agent's options. */
  readonly tls?: ConnectOptions['tls'];
  readonly kubeconfig?: string | undefined;
  /** For tests: how long refusals must go on before a move, in ms. @default TIER1_AHEAD_PERSIST_MS */
  readonly aheadPersistMs?: number;
  /** For tests: makes the client that follows tier 1 (default: the client library's connect). */
  readonly connect?: (o: ConnectOptions) => Tier1Client;
}

/** What this upstream uses of the client library's Client. */
export type Tier1Client = Pick<Client, 'on' | 'feed' | 'close' | 'moveOn' | 'inSync'>;

/**
 * The longest a change waits for the feedStatus that carries its watermarks, in ms. The STATUS
 * comes in the same socket write as the DELTA (a few ms at most, behind a slow read); this bound
 * only matters when none comes.
 */
export const HELD_MAX_MS = 1_000;

/**
 * The longest a tier-1 GOODBYE's reconnectDelayMs keeps this replica from the other tier-1
 * replicas (the client's goodbyeDelayMaxMs), in ms. That delay spreads a crowd of agents over a
 * closing replica's peers, up to 30 s when tier 1 closes all at once (its drain's cut-off, a
 * second signal); a tier-2 replica is one of a handful, and every one of its agents hears no
 * change while it waits (nor is told stale, which takes staleAfterMs). The replica that sent the
 * GOODBYE is still avoided for all of its delay.
 */
export const TIER1_GOODBYE_WAIT_MAX_MS = 1_000;

/**
 * The shortest time between two moves to another tier-1 replica on agents' evidence
 * (recheckMissing), in ms. Agents refused as ahead (4015) retry every few seconds; one move a
 * minute serves them all, and bounds what an agent presenting made-up watermarks can cost: one
 * reconnect of this replica to tier 1 (a rebase, or a snapshot) a minute, its agents served
 * from its state meanwhile.
 */
export const TIER1_MOVE_MIN_MS = 60_000;

/**
 * How long agents must go on being refused as ahead before this replica moves (recheckMissing),
 * in ms: a second refusal at least this long after the first, within TIER1_MOVE_MIN_MS of it.
 * Tier-1 replicas trail each other by moments on busy resources, so an agent crossing from a
 * tier-2 replica of one to a replica of the other is often refused once (and served elsewhere,
 * or here a few seconds later); moving on that dropped a healthy tier-1 connection for nothing.
 * A tier-1 replica stuck behind (a CRD it has not looked at again) keeps refusing.
 */
export const TIER1_AHEAD_PERSIST_MS = 10_000;

function syncOf(s: FeedStatus['sync']): 'waiting' | 'resyncing' | 'in-sync' | undefined {
  return s === 'unknown' ? undefined : s;
}

export class CattailUpstream implements Upstream {
  readonly feeds: readonly FeedDefinition[];
  private client: Tier1Client | undefined;
  private sink: FeedSink | undefined;
  private readonly everInSync = new Set<string>();
  private lastHealthyMs: number | undefined;
  private disconnectedSinceMs: number | undefined;
  /** Per feed: `stale` as tier 1's last STATUS of it said. */
  private readonly tier1Stale = new Map<string, boolean>();
  private staleTimer: Timer | undefined;
  private readonly startedMs: number;
  /** Per feed: changes applied by the client and not yet given to the store (see the `change` listener). */
  private readonly held = new Map<string, { updates: FeedUpdate[]; untilMs: number }>();
  private heldTimer: Timer | undefined;
  /** Per feed: the client's historySkips at the last feedStatus. */
  private readonly skips = new Map<string, number>();
  /** When recheckMissing last moved the client to another tier-1 replica (monotonic ms). */
  private lastMoveMs = -Infinity;
  /** When the refusals that may lead to a move began (monotonic ms); see TIER1_AHEAD_PERSIST_MS. */
  private aheadSinceMs: number | undefined;

  constructor(private readonly o: CattailUpstreamOptions) {
    for (const f of o.feeds) {
      if (!Object.hasOwn(SYNCER_FEEDS, f)) {
        throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--upstream-cattail follows built-in feeds only; ${JSON.stringify(f)} is not one (custom feeds are declared on tier 1)`, { details: { option: 'feeds' } });
      }
    }
    // The built-in definition this code gives tier 1 too: the same resources, projection version
    // and model, so tier 2 announces what it passes through. A tier 1 that announces another
    // model or other resources is refused at its WELCOME (below).
    // No `cluster()` (PROTOCOL.md §8 "Another cluster"): tier 1's name for the cluster arrives with
    // its WELCOME, before this store holds that cluster's state (it takes the snapshot feed by
    // feed), and announced meanwhile it labelled the previous cluster's state with the new name:
    // agents checkpointed that, and every replica of the new cluster then refused them (4015).
    // Told no name, tier-2 agents compare watermarks as before the key.
    this.feeds = o.feeds.map((name) => {
      const spec = builtinFeed(name);
      return { name, resources: spec.resources, projectionVersion: spec.projectionVersion, model: spec.model };
    });
    this.startedMs = o.clock.monotonic();
  }

  start(sink: FeedSink): void {
    if (this.client !== undefined) return;
    this.sink = sink;
    const client = (this.o.connect ?? connect)({
      endpoints: this.o.endpoints,
      ...(this.o.service !== undefined ? { service: this.o.service, ...(this.o.servicePortName !== undefined ? { servicePortName: this.o.servicePortName } : {}) } : {}),
      ...(this.o.kubeconfig !== undefined ? { kubeconfig: this.o.kubeconfig } : {}),
      feeds: this.o.feeds,
      node: this.o.replicaId,
      clientId: `cattail-tier2-${this.o.replicaId}`,
      raw: true,
      // A tier-2 replica re-serves whole feeds: never take one node's scoped view (PROTOCOL.md §7.3).
      acceptScopedFeeds: false,
      // Nor a feed of another definition (a tier 1 of another release, PROTOCOL.md §8 "A feed's
      // resources"): retiring a resource would delete its objects from this store while its
      // watermark stays, and taking in one its own definition lacks would serve it unannounced.
      resources: Object.fromEntries(this.feeds.map((f) => [f.name, f.resources])),
      // Nor values of another data model (a tier 1 of a release whose projection changed the
      // model, §3.2): passed through, tier-2 agents applied them under this replica's WELCOME,
      // which names its own model, so their own model check could not catch it. Refused (4002),
      // this replica keeps its state and turns stale, as for other resources. No model announced
      // is `calico.v1` (§4.2).
      models: Object.fromEntries(this.feeds.map((f) => [f.name, [f.model ?? 'calico.v1']])),
      goodbyeDelayMaxMs: TIER1_GOODBYE_WAIT_MAX_MS,
      clock: this.o.clock,
      ...(this.o.tls !== undefined ? { tls: this.o.tls } : {}),
    });
    this.client = client;
    client.on('change', (b) => {
      // Reasserted keys changed and came back at tier 1 (A→B→A): tier 1's store counted them as
      // changes (Update.force), and so must this one, or a rebase from another tier-2 replica
      // whose agent holds B left it with B (the since() of the rebase revision lacked the key).
      const updates: FeedUpdate[] = [
        ...b.upserts.map((u) => ({ key: u.key, value: u.raw })),
        ...(b.reasserted ?? []).map((u) => ({ key: u.key, value: u.raw, force: true })),
        ...b.deletes.map((key) => ({ key, value: null })),
      ];
      if (updates.length === 0) return;
      // Held until the feedStatus that follows (a snapshot's END, or the STATUS tier 1 sends after
      // every DELTA of an unscoped feed), so the store records the revision at the watermarks
      // it was made at. Applied alone, the revision was recorded at the previous watermarks, and a
      // rebase from another tier-2 replica at those watermarks continued after the change it lacked.
      const held = this.held.get(b.feed);
      if (held === undefined) this.held.set(b.feed, { updates, untilMs: this.o.clock.monotonic() + HELD_MAX_MS });
      // Not push(...updates): a reconciled snapshot of 125k entries or more is past the engine's
      // argument limit (a RangeError out of the client's event).
      else held.updates = held.updates.concat(updates);
      this.armHeld();
    });
    client.on('feedStatus', (st) => {
      let status = syncOf(st.sync);
      // Once in sync, never back (PROTOCOL.md §4.7): a tier-1 replica restarted from its
      // checkpoint may answer with a snapshot while it is still resyncing; its trouble reaches
      // agents as `stale`, not as a status that goes backwards.
      if (status !== 'in-sync' && this.everInSync.has(st.feed)) status = undefined;
      if (status === 'in-sync') this.everInSync.add(st.feed);
      this.lastHealthyMs = this.o.clock.monotonic();
      const updates = this.held.get(st.feed)?.updates ?? [];
      if (this.held.delete(st.feed)) this.armHeld();
      // A resync, or deletions of keys the client never held: keys may have come and gone that
      // another tier-2 replica's agents hold, and this store has no tombstones for them. Like a
      // relist after a watch gap, the batch is a barrier no rebase from before it crosses.
      const skips = this.skips.get(st.feed) ?? 0;
      const barrier = st.historySkips > skips;
      this.skips.set(st.feed, st.historySkips);
      // Stale while tier 1 has been away too long, whatever this one feed's STATUS says: one
      // feed's snapshot completing on a short visit (the connection lost during the next feed's,
      // never in sync as a whole) cleared the flag that markStale set once per outage, for good.
      this.tier1Stale.set(st.feed, st.stale);
      const stale = st.stale || this.awayTooLong();
      this.sink?.onBatch(st.feed, { updates, watermarks: { ...st.watermarks }, ...(status !== undefined ? { status } : {}), stale, ...(barrier ? { barrier: true } : {}) });
    });
    client.on('status', (e) => {
      // Only a confirmed sync ends the outage: a WELCOME (`syncing`) does not, or a tier 1 that
      // cut this replica off during every snapshot kept it from ever turning stale.
      if (e.state === 'in-sync' || e.state === 'upstream-stale') {
        // An outage long enough to have marked feeds stale ends: each feed gets tier 1's own flag
        // back. A feed whose STATUS came while the outage was still counted (its snapshot done
        // before the others') passed on stale, and nothing else would clear it until tier 1's next
        // STATUS of that feed.
        if (this.awayTooLong()) for (const f of this.o.feeds) this.sink?.onBatch(f, { updates: [], stale: this.tier1Stale.get(f) ?? false });
        this.disconnectedSinceMs = undefined;
        this.staleTimer?.cancel();
        this.staleTimer = undefined;
      } else if ((e.state === 'reconnecting' || e.state === 'behind') && this.disconnectedSinceMs === undefined) {
        this.disconnectedSinceMs = this.o.clock.monotonic();
        // A move of our own (recheckMissing) is logged there, at info.
        if (e.reason?.code !== 'CATTAIL_CLIENT_MOVED') this.o.log?.warn({ reason: e.reason?.code, endpoint: e.endpoint }, 'lost tier 1; serving the last state');
        this.staleTimer = this.o.clock.setTimeout(() => this.markStale(), this.o.staleAfterMs);
      }
    });
  }

  /**
   * An agent was refused as ahead of this replica on `resources` (4015): it applied newer state of
   * them from another replica, so the tier-1 replica this one follows is behind another. Tier 1
   * looks again at a missing CRD when its own agents say so (Upstream.recheckMissing there), but
   * this replica's HELLO to it presents its own, older state: the agent's evidence stopped here,
   * and tier-2 agents were refused until that tier-1 replica's next look (missingResourceRetryMs,
   * 5 minutes by default). So this replica moves to another tier-1 replica (at most once per
   * TIER1_MOVE_MIN_MS), keeping its state and serving it meanwhile.
   */
  recheckMissing(resources: readonly string[]): void {
    const now = this.o.clock.monotonic();
    // Only from a tier-1 replica this one is in sync with: moving while it catches up (after an
    // outage its store stays in-sync and keeps answering agents) cut off the very catch-up that
    // closes the gap. And only on named resources (a refusal without a usable floor names none).
    if (this.client === undefined || !this.client.inSync || resources.length === 0 || now - this.lastMoveMs < TIER1_MOVE_MIN_MS) return;
    const persistMs = this.o.aheadPersistMs ?? TIER1_AHEAD_PERSIST_MS;
    if (this.aheadSinceMs === undefined || now - this.aheadSinceMs >= TIER1_MOVE_MIN_MS) this.aheadSinceMs = now;
    if (now - this.aheadSinceMs < persistMs) return;
    if (!this.client.moveOn(`an agent holds newer state of ${resources.join(', ')} than this tier-1 replica serves`)) return;
    this.lastMoveMs = now;
    this.aheadSinceMs = undefined;
    this.o.log?.info({ resources }, 'agents hold newer state than the tier-1 replica followed: moving to another');
  }

  /**
   * Changes whose feedStatus did not follow within HELD_MAX_MS go to the store alone (at the
   * watermarks it holds): tier 1 sent a DELTA without a STATUS, which PROTOCOL.md §4.7 allows when
   * nothing but entries changed, or the connection ended between the two.
   */
  private releaseHeld(): void {
    this.heldTimer = undefined;
    const now = this.o.clock.monotonic();
    for (const [feed, h] of this.held) {
      if (h.untilMs > now) continue;
      this.held.delete(feed);
      this.sink?.onBatch(feed, { updates: h.updates });
    }
    this.armHeld();
  }

  /**
   * One timer for the feed whose held changes are due first, each feed on its own deadline: a
   * timer shared from the first feed's change released another feed's change early, before its
   * STATUS, and one left running after its feed's STATUS did the same to the next change.
   */
  private armHeld(): void {
    this.heldTimer?.cancel();
    this.heldTimer = undefined;
    let first = Infinity;
    for (const h of this.held.values()) first = Math.min(first, h.untilMs);
    if (first === Infinity) return;
    this.heldTimer = this.o.clock.setTimeout(() => this.releaseHeld(), Math.max(0, first - this.o.clock.monotonic()));
  }

  /** Tier 1 has been away for staleAfterMs: say so on every feed (entries stay). */
  private markStale(): void {
    this.staleTimer = undefined;
    if (this.disconnectedSinceMs === undefined) return;
    for (const f of this.o.feeds) this.sink?.onBatch(f, { updates: [], stale: true });
  }

  async stop(): Promise<void> {
    this.staleTimer?.cancel();
    this.heldTimer?.cancel();
    this.heldTimer = undefined;
    this.held.clear();
    this.sink = undefined;
    const c = this.client;
    this.client = undefined;
    await c?.close();
  }

  /** Tier 1 has been away (no confirmed sync) for staleAfterMs or longer. */
  private awayTooLong(now = this.o.clock.monotonic()): boolean {
    return this.disconnectedSinceMs !== undefined && now - this.disconnectedSinceMs >= this.o.staleAfterMs;
  }

  health(): readonly ResourceHealth[] {
    const now = this.o.clock.monotonic();
    const away = this.awayTooLong(now);
    const neverSeen = this.lastHealthyMs === undefined && now - this.startedMs >= this.o.staleAfterMs;
    const out = new Map<string, ResourceHealth>();
    for (const f of this.feeds) {
      const st = this.client?.feed(f.name).status;
      for (const id of f.resources) {
        const prev = out.get(id);
        const synced = this.everInSync.has(f.name) && (prev?.synced ?? true);
        const stale = away || neverSeen || st?.stale === true || (prev?.stale ?? false);
        out.set(id, { id, synced, stale, lastHealthyMs: this.lastHealthyMs });
      }
    }
    return [...out.values()];
  }
}
