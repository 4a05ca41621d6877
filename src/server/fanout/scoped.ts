/**
 * Scoped units (#20, PROTOCOL.md §7.3): a change set of a scoped feed as the frames one node's
 * agents get, and the proven node of a connection. The flush encodes the shared part once per
 * unit and each node's part once per node (flush.ts); catch-ups, resumes and rebases, which are
 * built per agent anyway, use encodeScopedDelta.
 */
import { CattailError } from '../../errors.js';
import { CAP_SCOPE_NODE } from '../../../proto/index.js';
import type { SinceResult } from '../pipeline/store-port.js';
import type { ScopeIndex } from '../scoping/index.js';
import { splitChanges, type SplitChanges } from '../scoping/view.js';
import { type Compression, encodeDelta } from '../transport/framing.js';
import { v3NodeKey } from '../scoping/node-of-key.js';
import type { FeedRuntime } from './feeds.js';

type Delta = Extract<SinceResult, { kind: 'delta' }>;

export function splitOf(scope: ScopeIndex, s: Delta): SplitChanges {
  return splitChanges(scope.policy, s.upserts, s.deletes);
}

/** The shared part's frames (every one with MORE): the same for every node; none when it is empty (the node's part is then the whole unit). */
export function encodeSharedPart(feedId: number, s: { from: number; to: number }, split: SplitChanges, algo: Compression, maxBodyBytes: number, compressMinBytes: number): Buffer[] {
  if (split.shared.upserts.length === 0 && split.shared.deletes.length === 0) return [];
  return encodeDelta(feedId, s.from, s.to, split.shared.upserts, split.shared.deletes, algo, maxBodyBytes, compressMinBytes, true);
}

/** The node's part, ending the unit (an empty DELTA frame when the node has no own changes). */
export function encodeNodePart(feedId: number, s: { from: number; to: number }, split: SplitChanges, node: string | undefined, algo: Compression, maxBodyBytes: number, compressMinBytes: number): Buffer[] {
  const own = node === undefined ? undefined : split.byNode.get(node);
  return encodeDelta(feedId, s.from, s.to, own?.upserts ?? [], own?.deletes ?? [], algo, maxBodyBytes, compressMinBytes);
}

/** The whole scoped unit for one node: shared part, then the node's part. */
export function encodeScopedDelta(feedId: number, s: Delta, scope: ScopeIndex, node: string, algo: Compression, maxBodyBytes: number, compressMinBytes: number): Buffer[] {
  const split = splitOf(scope, s);
  return [...encodeSharedPart(feedId, s, split, algo, maxBodyBytes, compressMinBytes), ...encodeNodePart(feedId, s, split, node, algo, maxBodyBytes, compressMinBytes)];
}

export interface ScopeIdentity {
  readonly helloNode: string;
  readonly caps: readonly string[];
  /** The verified client certificate, when the agent presented one (mutual TLS). */
  readonly tls: { readonly cn: string | undefined; readonly uriSans: readonly string[] } | undefined;
  /** Take the node from the first URI SAN starting with this prefix instead of the CN. */
  readonly uriSanPrefix: string | undefined;
}

/**
 * The node an agent proved, for its scoped feeds: the certificate's (CN, or the rest of the first
 * URI SAN after the prefix) when it presented one, and then the HELLO must name the same node;
 * the HELLO's node otherwise. Refusals are coded (PROTOCOL.md §7.3).
 */
export function provenNode(id: ScopeIdentity): string {
  if (!id.caps.includes(CAP_SCOPE_NODE)) {
    throw new CattailError('CATTAIL_SERVER_SCOPE_UNSUPPORTED', `a feed asked for is scoped per node here and the agent did not advertise ${CAP_SCOPE_NODE}`);
  }
  if (id.helloNode === '') throw new CattailError('CATTAIL_SERVER_BAD_HELLO', 'a HELLO for a scoped feed must name its node');
  if (id.tls === undefined) return id.helloNode;
  const prefix = id.uriSanPrefix;
  const certNode = prefix !== undefined ? id.tls.uriSans.find((u) => u.startsWith(prefix))?.slice(prefix.length) : id.tls.cn;
  if (certNode === undefined || certNode === '') {
    throw new CattailError('CATTAIL_SERVER_NODE_MISMATCH', prefix !== undefined ? 'the client certificate has no URI SAN naming a node' : 'the client certificate has no CN naming a node');
  }
  if (certNode !== id.helloNode) throw new CattailError('CATTAIL_SERVER_NODE_MISMATCH', `HELLO node ${JSON.stringify(id.helloNode)} is not the node the client certificate names`);
  return certNode;
}

/**
 * False when `feed` holds Nodes (its resources include `nodes`, projected the libcalico way: every
 * Node gives its v3 Node key) and none is `node`; undefined when the feed cannot tell. An agent
 * whose `--node` is its host name where that is not the Kubernetes node name (`ip-10-0-0-1`
 * against `ip-10-0-0-1.ec2.internal`) names a node the cluster does not have: its view holds
 * none of its own entries (felix: its endpoints only in the slim form of other nodes'), its
 * digests match that view, and nothing else would say so. Not refused: a node just created may
 * reach this replica's store after its agent does.
 */
export function nodeKnown(feed: FeedRuntime, node: string): boolean | undefined {
  if (!feed.def.resources.includes('nodes')) return undefined;
  return feed.store.current().get(v3NodeKey(node)) !== undefined;
}

