/**
 * How many agents one replica should hold, from what it can see: the cluster's node count (one
 * agent connection per node and feed set), the ready replicas of its own Service, and the peers'
 * reported loads. Pure, so the policy is tested on its own (test/server/fleet-share.test.ts).
 *
 * Two numbers, where Typha has one:
 * - `capacity`: the share if one replica were missing, plus 20 % (Typha's rebalancing target,
 *   `typha/pkg/k8s/rebalance.go`). Held to when no peer has room: the survivors of a replica
 *   loss can always absorb its agents, and a healthy fleet is not churned for nothing.
 * - `fair`: the even share. Held to only while some peer has room (reports fewer agents than the
 *   even share minus a 10 % band), so shedding moves agents to a replica that has room instead
 *   of making them bounce, and stops once every peer is within the band: the fleet ends within
 *   about 10 % of even (plus what one balance interval of shedding overshoots), never churning
 *   over a few agents (Typha sheds against `capacity` only and kills random connections, so replicas
 *   started one after another stay unbalanced until something restarts).
 * Shed agents and refused ones are hinted the peers with room, least loaded first.
 */

/** What a peer said about itself on `GET /v1/load`. */
export interface PeerLoad {
  /** `ws://` URL agents use for it. */
  readonly url: string;
  readonly connections: number;
}

export interface ShareInput {
  /** Nodes in the cluster (from the replica's own cache); undefined before the first sync. */
  readonly nodes: number | undefined;
  /** This replica's open connections. */
  readonly ownConnections: number;
  /**
   * Ready peers (this replica excluded), with their load when it could be read. `notReady`: the
   * peer answered that it is not ready (its EndpointSlice lags): load unknown, and never hinted,
   * since a hinted agent would get its 503.
   */
  readonly peers: readonly (PeerLoad | { readonly url: string; readonly connections: undefined; readonly notReady?: boolean })[];
}

export interface Share {
  /** The target to set (undefined: no target, e.g. before the node count is known). */
  readonly target: number | undefined;
  readonly capacity: number | undefined;
  readonly fair: number | undefined;
  /** Peers to hint to refused and shed agents, in order (least loaded with room first). */
  readonly hints: readonly string[];
  /** True when `target` is the fair share (some peer has room). */
  readonly rebalancing: boolean;
}

/** How far below the even share a peer must be to count as having room (fraction). */
export const FAIR_BAND = 0.1;
/** Headroom on top of the one-replica-missing share (fraction), as Typha. */
export const CAPACITY_HEADROOM = 0.2;

export function computeShare(i: ShareInput): Share {
  const replicas = i.peers.length + 1;
  const known = i.peers.reduce((n, p) => n + (p.connections ?? 0), i.ownConnections);
  // Agents are one per node; more connections than nodes (several feeds sets, a test fleet)
  // count as they are.
  const agents = Math.max(i.nodes ?? 0, known);
  // With no peer known to have room, every peer is hinted but those that said they are not ready.
  const allUrls = i.peers.filter((p) => !('notReady' in p && p.notReady === true)).map((p) => p.url);
  // Without a node count the fleet's agents are only what the loads say: a peer whose load is
  // unknown would count as holding none, and a replica that cannot read its peers (a slow
  // /v1/load in a reconnect storm, a certificate it does not know yet) shrank its own target
  // look after look and shed agents to peers as blind as itself (tier 2 has no node count at
  // all). No target until every load is known.
  if (i.nodes === undefined && (known === 0 || i.peers.some((p) => p.connections === undefined))) {
    return { target: undefined, capacity: undefined, fair: undefined, hints: allUrls, rebalancing: false };
  }
  const capacity = Math.max(1, Math.ceil((agents * (1 + CAPACITY_HEADROOM)) / Math.max(1, replicas - 1)));
  const fair = Math.max(1, Math.ceil(agents / replicas));
  const room = Math.floor((agents / replicas) * (1 - FAIR_BAND));
  const roomy = i.peers
    .filter((p): p is PeerLoad => p.connections !== undefined && p.connections < room)
    .sort((a, b) => a.connections - b.connections);
  // A peer whose load is unknown counts as holding none, so with more connections than nodes
  // (several feeds sets per node) a replica that cannot read its peers (a certificate it does
  // not know yet, a slow /v1/load in a storm) took the node count for the fleet's agents, found
  // itself above capacity, and shed agents to the peers, which took them and shed them back once
  // it could read again. Blind, it keeps what it holds.
  const blind = i.peers.some((p) => p.connections === undefined && !('notReady' in p && p.notReady === true));
  if (roomy.length === 0) return { target: replicas === 1 ? undefined : blind ? Math.max(capacity, i.ownConnections) : capacity, capacity, fair, hints: allUrls, rebalancing: false };
  return { target: fair, capacity, fair, hints: roomy.map((p) => p.url), rebalancing: true };
}
