/**
 * The handshake's decisions: HELLO checks beyond the codec's shape validation (PROTOCOL.md §4.1),
 * the choice of compression (§5), resume-or-snapshot per feed (§7) and the WELCOME (§4.2).
 */
import { CattailError } from '../../errors.js';
import { type HelloMessage, MIN_CLIENT_MAX_FRAME_BYTES } from '../../../proto/index.js';
import type { FeedRuntime } from './feeds.js';
import type { SinceResult } from '../pipeline/store-port.js';
import { judgeToken } from '../transport/tokens.js';
import { type Compression, PROTOCOL_VERSION, encodeMessage } from '../transport/framing.js';

export interface Hello {
  readonly node: string;
  readonly clientId: string;
  readonly feeds: readonly { readonly name: string; readonly token: Buffer | undefined }[];
  readonly caps: readonly string[];
  readonly maxFrameBytes: number | undefined;
}

const MAX_NAME_CHARS = 253;

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
    feeds: m.feeds.map((f) => ({ name: f.name, token: f.token === undefined ? undefined : Buffer.from(f.token) })),
    caps: m.caps,
    maxFrameBytes: m.maxFrameBytes,
  };
}

/** Brotli when the agent can inflate it (smaller, and compressed once anyway), then deflate. */
export function chooseCompression(caps: readonly string[], allowed: readonly Compression[]): Compression {
  if (caps.includes('compress.brotli') && allowed.includes('brotli')) return 'brotli';
  if (caps.includes('compress.deflate') && allowed.includes('deflate')) return 'deflate';
  return 'none';
}

export type FeedPlan =
  | { readonly feed: FeedRuntime; readonly mode: 'snapshot'; readonly reason: string }
  | { readonly feed: FeedRuntime; readonly mode: 'resume'; readonly since: Extract<SinceResult, { kind: 'delta' }> };

/**
 * Per requested feed: resume with the compacted changes since the token, or a snapshot with the
 * reason. An unknown feed name is a coded close (4006).
 */
export function planFeeds(hello: Hello, feeds: ReadonlyMap<string, FeedRuntime>, serverId: string, maxClientBytes: number): FeedPlan[] {
  return hello.feeds.map(({ name, token }) => {
    const feed = feeds.get(name);
    if (feed === undefined) throw new CattailError('CATTAIL_SERVER_UNKNOWN_FEED', `feed ${JSON.stringify(name)} is not served here (served: ${[...feeds.keys()].join(', ')})`);
    const d = judgeToken(token, { serverId, epoch: feed.epoch, feed: feed.name, projectionVersion: feed.def.projectionVersion }, feed.store.revision);
    if (d.mode === 'snapshot') return { feed, mode: 'snapshot', reason: d.reason };
    const s = feed.store.since(d.revision);
    if (s.kind !== 'delta') return { feed, mode: 'snapshot', reason: s.kind === 'too-old' ? 'too-old' : 'bad-token' };
    // A resume bigger than the agent's own budget would only get it closed with 4008: the shared
    // snapshot is cheaper for everyone.
    if (s.bytes > maxClientBytes / 2) return { feed, mode: 'snapshot', reason: 'too-large' };
    return { feed, mode: 'resume', since: s };
  });
}

export interface WelcomeFields {
  readonly serverId: string;
  readonly pingIntervalMs: number;
  readonly pongTimeoutMs: number;
  readonly maxFrameBytes: number;
  readonly maxInboundBytes: number;
  readonly compression: Compression;
}

/** WELCOME, feeds in HELLO order; a feed's id is its index on the server (the same on every connection). */
export function welcomeFrame(plans: readonly FeedPlan[], w: WelcomeFields): Buffer {
  return encodeMessage({
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    ...w,
    caps: [],
    feeds: plans.map((p) => ({
      ...(p.mode === 'resume' ? { name: p.feed.name, id: p.feed.id, mode: 'resume' as const } : { name: p.feed.name, id: p.feed.id, mode: 'snapshot' as const, reason: p.reason }),
      ...(p.feed.def.model !== undefined ? { model: p.feed.def.model } : {}),
    })),
  });
}
