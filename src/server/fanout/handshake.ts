/**
 * The handshake's decisions: HELLO checks beyond the codec's shape validation (PROTOCOL.md §4.1),
 * the choice of compression (§5), resume-or-snapshot per feed (§7) and the WELCOME (§4.2).
 */
import { type OwnFrames, catchUpFits } from '../transport/own-frames.js';
import { CattailError } from '../../errors.js';
import { CAP_FEED_RESOURCES, CAP_REPAIR_BUCKETS, CAP_RESUME_WATERMARKS, CAP_SCOPE_NODE, CAP_SCOPE_WATERMARKS, type HelloMessage, MIN_CLIENT_MAX_FRAME_BYTES, behindResources, isResourceVersion, mergeWatermarks } from '../../../proto/index.js';
import type { FeedRuntime } from './feeds.js';
import type { SinceResult } from '../pipeline/store-port.js';
import { isRebaseCandidate, judgeToken, type SnapshotReason } from '../transport/tokens.js';
import { type Compression, PROTOCOL_VERSION, encodeMessage } from '../transport/framing.js';

export interface Hello {
  readonly node: string;
  readonly clientId: string;
  readonly feeds: readonly {
    readonly name: string;
    readonly token: Buffer | undefined;
    readonly watermarks: Readonly<Record<string, string>> | undefined;
    /** PROTOCOL.md §8: the watermarks the agent applied; no snapshot older than them. */
    readonly notBefore: Readonly<Record<string, string>> | undefined;
  }[];
  readonly caps: readonly string[];
  readonly maxFrameBytes: number | undefined;
  /** §8 "Another cluster": the cluster the agent's state came from (a WELCOME's `cluster`). */
  readonly cluster?: string | undefined;
}

const MAX_NAME_CHARS = 253;

/**
 * The body size a connection gets for the `maxFrameBytes` its HELLO announced: the largest power
 * of two not above it (at least 4,096, which checkHello enforces). Why: snapshot builds, flush
 * units and catch-up frames are cut per body size and shared only between agents of the same
 * size, so with any value accepted as is, every distinct value a client sends costs a whole build
 * of the feed (a bounds audit: N HELLOs, N builds of ~100 MB). Powers of two leave at most nine
 * sizes between 4 KiB and 1 MiB, and the default and usual values are powers of two already.
 * PROTOCOL.md §2.2 lets the server send less than the client allows; WELCOME announces the size.
 * The cost, for an agent announcing another value: an entry between the power of two and its
 * value, which would have fitted, closes it with ENTRY_TOO_LARGE (whose message names the size to
 * announce). Computed by doubling, not with Math.log2, whose rounding is not exact for every value.
 */
export function bodySizeFor(announced: number | undefined): number {
  if (announced === undefined) return Infinity;
  let size = MIN_CLIENT_MAX_FRAME_BYTES;
  while (size * 2 <= announced) size *= 2;
  return size;
}

export function checkHello(m: HelloMessage): Hello {
  if (m.protocol !== PROTOCOL_VERSION) throw new CattailError('CATTAIL_PROTO_UNSUPPORTED_VERSION', `protocol ${m.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`);
  if (m.node.length > MAX_NAME_CHARS || m.clientId.length > MAX_NAME_CHARS) {
    throw new CattailError('CATTAIL_SERVER_BAD_HELLO', `HELLO node and clientId must have at most ${MAX_NAME_CHARS} characters`);
  }
  if (m.maxFrameBytes !== undefined && m.maxFrameBytes < MIN_CLIENT_MAX_FRAME_BYTES) {
    throw new CattailError('CATTAIL_SERVER_BAD_HELLO', `HELLO maxFrameBytes must be at least ${MIN_CLIENT_MAX_FRAME_BYTES}`);
  }
  return {
    node: m.node,
    clientId: m.clientId,
    // Tokens are views into the frame; copy so a cursor never pins the inbound buffer.
    feeds: m.feeds.map((f) => ({ name: f.name, token: f.token === undefined ? undefined : Buffer.from(f.token), watermarks: f.watermarks, notBefore: f.notBefore })),
    caps: m.caps,
    maxFrameBytes: m.maxFrameBytes,
    cluster: m.cluster,
  };
}

/** Brotli when the agent can inflate it (smaller, and compressed once anyway), then deflate. */
export function chooseCompression(caps: readonly string[], allowed: readonly Compression[]): Compression {
  if (caps.includes('compress.brotli') && allowed.includes('brotli')) return 'brotli';
  if (caps.includes('compress.deflate') && allowed.includes('deflate')) return 'deflate';
  return 'none';
}

type DeltaSince = Extract<SinceResult, { kind: 'delta' }>;

export type FeedPlan =
  /**
   * `floor`: the agent's notBefore (see snapshotPlan): no shared build with older watermarks will
   * do; `behind` names what it is ahead on. `minRevision`: the revision of the agent's own token
   * of this store, which it applied: no shared build older than that will do either (§7).
   */
  | { readonly feed: FeedRuntime; readonly mode: 'snapshot'; readonly reason: SnapshotReason; readonly floor?: Readonly<Record<string, string>>; readonly minRevision?: number }
  | { readonly feed: FeedRuntime; readonly mode: 'resume' | 'rebase'; readonly since: DeltaSince };

type HelloFeed = Hello['feeds'][number];

/**
 * Per requested feed: resume with the compacted changes since the token, rebase onto this
 * replica's log from the agent's watermarks (another replica's token), or a snapshot with the
 * reason. An unknown feed name is a coded close (4006).
 */
export function planFeeds(hello: Hello, feeds: ReadonlyMap<string, FeedRuntime>, serverId: string, maxClientBytes: number, cluster?: string, ownFrames?: OwnFrames): FeedPlan[] {
  const fits = (bytes: number): boolean => catchUpFits(bytes, maxClientBytes, ownFrames);
  // §8 "Another cluster": state from another cluster is no state here. Its tokens name other
  // replicas anyway, but its watermarks are another cluster's resourceVersions: taken as a floor,
  // a cluster rebuilt on the same hosts (new etcd, resourceVersions from 1 again) refused an agent
  // that kept its checkpoint across the rebuild with 4015 on every replica, for good.
  if (cluster !== undefined && hello.cluster !== undefined && hello.cluster !== cluster) {
    return hello.feeds.map((requested) => ({ feed: servedFeed(feeds, requested.name), mode: 'snapshot', reason: 'other-cluster' }));
  }
  const canRebase = hello.caps.includes(CAP_RESUME_WATERMARKS);
  // §8 "A feed's resources": a client that retires resources is held to the carried ones only.
  const retires = hello.caps.includes(CAP_FEED_RESOURCES);
  const scopeWatermarks = hello.caps.includes(CAP_SCOPE_WATERMARKS);
  return hello.feeds.map((requested) => {
    const { name, token } = requested;
    const feed = servedFeed(feeds, name);
    const d = judgeToken(token, { serverId, epoch: feed.epoch, feed: feed.name, projectionVersion: feed.projectionVersion }, feed.store.revision);
    const floor = floorOf(requested, retires ? feed.def.resources : undefined);
    if (d.mode === 'snapshot') {
      if (canRebase && isRebaseCandidate(d) && requested.watermarks !== undefined) return planRebase(feed, requested, d.reason, floor, fits);
      return snapshotPlan(feed, d.reason, floor);
    }
    const s = feed.store.since(d.revision);
    // The token proves the agent applied d.revision of this store: a shared build in progress or
    // within its reuse window may be older, and a client without notBefore would take it (§7).
    // Nor one at d.revision itself: the agent holds that state, and its catch-up from there is
    // what was too large or too old, so it got that build again and again until the build's
    // reuse window ended. (A revision in the future of this store proves nothing: bad-token, no
    // floor from it.) The store is past d.revision in both cases, so a build above it can be made.
    // On a scoped feed a client without scope.watermarks may hold more than its token says (the
    // STATUS that would move the token is held back up to a second, §4.7): a build between the
    // token and what it applied would take it back in time, so only one of the current revision
    // will do.
    const applied = feed.scope !== undefined && !scopeWatermarks ? feed.store.revision : d.revision + 1;
    if (s.kind === 'too-old') return { ...snapshotPlan(feed, 'too-old', floor), minRevision: applied };
    if (s.kind !== 'delta') return snapshotPlan(feed, 'bad-token', floor);
    // A resume bigger than the agent's own budget would only get it closed with 4008: the shared
    // snapshot is cheaper for everyone.
    if (!fits(s.bytes)) return { ...snapshotPlan(feed, 'too-large', floor), minRevision: applied };
    return { feed, mode: 'resume', since: s };
  });
}

function servedFeed(feeds: ReadonlyMap<string, FeedRuntime>, name: string): FeedRuntime {
  const feed = feeds.get(name);
  if (feed === undefined) throw new CattailError('CATTAIL_SERVER_UNKNOWN_FEED', `feed ${JSON.stringify(name)} is not served here (served: ${[...feeds.keys()].join(', ')})`);
  return feed;
}

/**
 * What no snapshot for this feed may be older than: `notBefore`, the rebase `watermarks` (all the
 * agent applied), or, if both came, per resource the newer; of the resources the feed carries
 * here only. A map is ignored unless every value is a decimal resourceVersion: a floor we cannot
 * order would refuse the agent forever (PROTOCOL.md §8), and its own check still guards it.
 *
 * Why only the carried resources (`carried`, for a client that advertised `feed.resources`): a
 * resource the feed no longer carries (a release or a custom feed's configuration dropped it) has
 * no watermark here and never will, so a floor naming it refused every agent that had applied it,
 * on every replica, for good (4015). Such an agent retires the resource when the WELCOME lists
 * the feed's resources (§8 "A feed's resources") and keeps sending its watermark beside the
 * others, so a replica that still carries it is held to it.
 */
function floorOf(requested: HelloFeed, carried: readonly string[] | undefined): Readonly<Record<string, string>> | undefined {
  const valid = (m: Readonly<Record<string, string>> | undefined): Readonly<Record<string, string>> | undefined =>
    m !== undefined && Object.values(m).every(isResourceVersion) ? m : undefined;
  const a = valid(requested.notBefore);
  const b = valid(requested.watermarks);
  // Both: the watermarks of the held state and the retired resources beside them (§4.1), or a
  // client PROTOCOL.md does not describe: per resource the newer.
  const all = a === undefined || b === undefined ? (a ?? b) : mergeWatermarks(a, b);
  // A client without `feed.resources` refuses a snapshot that lacks a resource it applied: the
  // whole floor keeps it to the cheap refusal (4015) instead of a download it would throw away.
  if (all === undefined || carried === undefined) return all;
  const floor: Record<string, string> = {};
  for (const r of carried) if (Object.hasOwn(all, r)) floor[r] = all[r] as string;
  return floor;
}

/**
 * A snapshot for an agent that presented `notBefore` (PROTOCOL.md §8): the watermarks it applied.
 * A snapshot older than them would be refused by the agent's own check at SNAPSHOT_END, after the
 * whole download, and the agent would come back for the same one. So when our state is older
 * (`behind`) the HELLO is refused before any snapshot byte (4015, session.ts), which also tells the
 * upstream to look again at a resource it does not serve; and when it is not, the agent is kept
 * off shared builds whose watermarks are behind its own (`floor`, SnapshotCache.acquire). A
 * `behind` plan keeps the floor too: the session names the resources it is ahead on from it.
 */
function snapshotPlan(feed: FeedRuntime, reason: SnapshotReason, floor: Readonly<Record<string, string>> | undefined): FeedPlan {
  if (floor === undefined || Object.keys(floor).length === 0) return { feed, mode: 'snapshot', reason };
  if (behindResources(floor, feed.store.meta().watermarks).length > 0) return { feed, mode: 'snapshot', reason: 'behind', floor };
  return { feed, mode: 'snapshot', reason, floor };
}

/**
 * A rebase (PROTOCOL.md §7.1, DESIGN.md "Rebase"): the newest revision of our log made at or
 * below the agent's watermarks, when we are at or above them, and the changes since it. Every way
 * it cannot be done is the snapshot the token alone would have got (`reason`), except `behind`,
 * which the agent's own watermark check would refuse anyway, so it is worth naming.
 */
function planRebase(feed: FeedRuntime, requested: HelloFeed, reason: SnapshotReason, floor: Readonly<Record<string, string>> | undefined, fits: (bytes: number) => boolean): FeedPlan {
  // A state with a resource this feed does not carry is not one of its states (§8 "A feed's
  // resources"): no revision here stands for it, and it must not make us refuse the agent.
  const w = requested.watermarks ?? {};
  if (Object.keys(w).some((r) => !feed.def.resources.includes(r))) return snapshotPlan(feed, reason, floor);
  // The floor may hold more than the watermarks: retired resources beside them (§4.1), which a
  // rebase must not take back in time either when this feed carries them again (a rollback).
  if (floor !== undefined && behindResources(floor, feed.store.meta().watermarks).length > 0) return { feed, mode: 'snapshot', reason: 'behind', floor };
  const found = feed.store.rebase(requested.watermarks);
  if (found.kind === 'behind') return { feed, mode: 'snapshot', reason: 'behind', ...(floor === undefined ? {} : { floor }) };
  if (found.kind !== 'revision') return snapshotPlan(feed, reason, floor);
  const s = feed.store.since(found.revision);
  if (s.kind !== 'delta') return snapshotPlan(feed, 'too-old', floor);
  // The difference is worth it only when smaller than the state (a snapshot is also shared and
  // cached across agents, a rebase DELTA is built for this one), and it must fit the budget.
  const stats = feed.store.stats();
  if (s.bytes > stats.keyBytes + stats.valueBytes || !fits(s.bytes)) return snapshotPlan(feed, 'too-large', floor);
  return { feed, mode: 'rebase', since: s };
}

export interface WelcomeFields {
  readonly serverId: string;
  readonly cluster?: string;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly maxInboundBytes: number;
  readonly compression: Compression;
}

/** WELCOME, feeds in HELLO order; a feed's id is its index on the server (the same on every connection). */
export function welcomeFrame(plans: readonly FeedPlan[], w: WelcomeFields, scoped = false, listResources = false): Buffer {
  return encodeMessage({
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    ...w,
    // §9: the server side of range repair (§7.2); a client uses it only if it advertised it too.
    // §7.3: scope.node when a feed of this connection is scoped (only to a client that advertised it).
    caps: scoped ? [CAP_REPAIR_BUCKETS, CAP_SCOPE_NODE] : [CAP_REPAIR_BUCKETS],
    feeds: plans.map((p) => {
      const head = { name: p.feed.name, id: p.feed.id, ...(p.feed.def.model !== undefined ? { model: p.feed.def.model } : {}) };
      // §8 "A feed's resources": with a snapshot, what the feed carries here, so that an agent
      // retires a resource it applied that this definition of the feed no longer carries (only
      // to a client that advertised `feed.resources`: the others would not use it).
      if (p.mode === 'snapshot') return { ...head, mode: 'snapshot' as const, reason: p.reason, ...(listResources ? { resources: [...p.feed.def.resources] } : {}) };
      return p.mode === 'rebase' ? { ...head, mode: 'rebase' as const, revision: p.since.from } : { ...head, mode: 'resume' as const };
    }),
  });
}
