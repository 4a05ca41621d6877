/**
 * Wire constants and message types of `cattail.v1` (proto/PROTOCOL.md is the contract; section
 * numbers below refer to it). Kinds are `as const` objects plus literal unions, not `enum`s, so they
 * erase to plain values and compare with `===`.
 */

/** WebSocket subprotocol name (§1). */
export const SUBPROTOCOL = 'cattail.v1';
/** `protocol` value of HELLO and WELCOME (§4.1, §4.2). */
export const PROTOCOL_VERSION = 1;
/** Header `version` byte (§2.1). */
export const HEADER_VERSION = 1;
/** Fixed header size in bytes (§2.1). */
export const HEADER_BYTES = 28;
/** `feedId` of connection-level messages (§2.1). */
export const NO_FEED = 0xffff;
/** Largest feed id a WELCOME may assign (§4.2). */
export const MAX_FEED_ID = 0xfffe;
/** Revisions are at most 2^53 − 1 so they stay exact JavaScript numbers (§2.1). */
export const MAX_REVISION = Number.MAX_SAFE_INTEGER;
/** Largest resume token in bytes (§7). */
export const MAX_TOKEN_BYTES = 256;
/** Digest length in bytes (§10). */
export const DIGEST_BYTES = 8;
/**
 * Most resources one `watermarks` map may name (§8). A feed carries a few dozen at most (the felix
 * feed 25; the registry ~30); the bound keeps a broken peer from growing what a client stores and
 * sends back in HELLO past the server's inbound limit, which would lock the client out of every
 * replica. The same bound as a rebase's (src/snapshot watermark-log.ts).
 */
export const MAX_WATERMARKS = 64;
/** Largest resource id or resourceVersion in a `watermarks` map, in UTF-8 bytes (§8). */
export const MAX_WATERMARK_STRING_BYTES = 256;
/** Longest `cluster` in HELLO and WELCOME, in UTF-8 bytes (§4.1, §4.2). */
export const MAX_CLUSTER_BYTES = 128;
/** A `cluster` as HELLO and WELCOME carry it, and as checkpoints keep it: a string of 1 to MAX_CLUSTER_BYTES UTF-8 bytes. */
export function isClusterName(v: unknown): v is string {
  return typeof v === 'string' && v !== '' && Buffer.byteLength(v) <= MAX_CLUSTER_BYTES;
}
/**
 * Most UTF-8 bytes of resource ids and resourceVersions together in one `watermarks` map (§8):
 * the felix feed's take ~1.3 KB with 20-digit values, all ~33 resources of the registry ~1.8 KB.
 * 16 feeds' maps, tokens and names in one HELLO stay below the
 * default inbound limit of 64 KiB (16 × (3 KiB + 256-byte token) ≈ 53 KiB).
 */
export const MAX_WATERMARKS_BYTES = 3_072;
/** Most feeds one HELLO may ask for (§4.1). */
export const MAX_HELLO_FEEDS = 16;
/** §9, §7.1: the client sends per-feed watermarks in HELLO and accepts WELCOME mode `rebase`. */
export const CAP_RESUME_WATERMARKS = 'resume.watermarks';
/**
 * §9, §7.2: both sides advertise it; the client may send REPAIR_REQUEST and the server answers
 * with REPAIR + a DELTA unit (range repair) instead of the client reconnecting for a snapshot.
 */
export const CAP_REPAIR_BUCKETS = 'repair.buckets';
/**
 * §9, §7.3: per-node scoping. The client accepts scoped units (a key in both the shared and the
 * node part of one unit, the later frame winning; a scoped snapshot's node chunks after its shared
 * chunks); the server announces it in WELCOME when it scopes a feed of the connection.
 */
export const CAP_SCOPE_NODE = 'scope.node';
/**
 * §9, §4.7, §7.3: with `scope.node`, the client accepts an in-sync STATUS without `digest` on a
 * scoped feed; the server then follows every DELTA unit of a scoped feed that no digest-bearing
 * STATUS follows with one, so the watermarks and token the client would present elsewhere never
 * trail the state it holds (a crash of its replica cannot hand it an older snapshot).
 */
export const CAP_SCOPE_WATERMARKS = 'scope.watermarks';
/**
 * §9, §8 "A feed's resources": the client retires an applied resource a snapshot's WELCOME
 * `resources` list lacks. Only to such a client does the server send the list and hold
 * `notBefore`/`watermarks` to the feed's resources alone; an older client would refuse the
 * snapshot after the whole download, so it keeps the cheap refusal (4015).
 */
export const CAP_FEED_RESOURCES = 'feed.resources';
/** Bytes of REPAIR_REQUEST `sums`: 256 bucket sums, u64be each (§7.2, §10). */
export const REPAIR_SUMS_BYTES = 2048;
/** Bytes of REPAIR `buckets`: a 256-bit set, bit i = byte i >> 3, mask 0x80 >> (i & 7) (§7.2). */
export const REPAIR_BUCKET_SET_BYTES = 32;

/** Largest uncompressed body the server sends, in bytes (§2.2). @default 1 MiB */
export const DEFAULT_MAX_FRAME_BYTES = 1_048_576;
/**
 * Smallest `maxFrameBytes` a client may announce in HELLO, in bytes (§2.2): below it an ordinary
 * entry (a projected pod or node, up to a few KiB) would not fit in one frame body.
 */
export const MIN_CLIENT_MAX_FRAME_BYTES = 4_096;
/** Largest frame (header + body) the server accepts from a client, in bytes (§2.2). @default 64 KiB */
export const DEFAULT_MAX_INBOUND_BYTES = 65_536;

/** Header `type` byte per message (§4). */
export const MessageType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  SNAPSHOT_BEGIN: 0x03,
  SNAPSHOT_CHUNK: 0x04,
  SNAPSHOT_END: 0x05,
  DELTA: 0x06,
  STATUS: 0x07,
  PING: 0x08,
  PONG: 0x09,
  ACK: 0x0a,
  GOODBYE: 0x0b,
  ERROR: 0x0c,
  REPAIR_REQUEST: 0x0d,
  REPAIR: 0x0e,
} as const;
export type MessageTypeName = keyof typeof MessageType;
export type MessageTypeCode = (typeof MessageType)[MessageTypeName];

/** Header `flags` bits (§2.1). Every other bit MUST be 0. */
export const Flags = {
  COMPRESSED: 0x01,
  MORE: 0x02,
} as const;
export const KNOWN_FLAGS = Flags.COMPRESSED | Flags.MORE;

/** Capability strings (§9). Unknown capabilities are ignored, never an error. */
export const Capability = {
  COMPRESS_DEFLATE: 'compress.deflate',
  COMPRESS_BROTLI: 'compress.brotli',
} as const;

export const COMPRESSIONS = ['none', 'deflate', 'brotli'] as const;
export type Compression = (typeof COMPRESSIONS)[number];
export const SYNC_STATUSES = ['waiting', 'resyncing', 'in-sync'] as const;
export type SyncStatus = (typeof SYNC_STATUSES)[number];
export const FEED_MODES = ['resume', 'rebase', 'snapshot'] as const;
export type FeedMode = (typeof FEED_MODES)[number];

/**
 * A `[key, value]` entry (§3.1). `value` is the stored value's own msgpack bytes; the codec copies
 * it into a `bin` and never decodes it. Decoded entries hold a view into the frame (no copy): keep
 * the frame alive as long as the value, or copy it.
 */
export type Entry = readonly [key: string, value: Buffer];

/** The fixed 28-byte header (§2.1) as read from the wire. */
export interface FrameHeader {
  readonly type: MessageTypeCode;
  readonly flags: number;
  readonly feedId: number;
  readonly fromRevision: number;
  readonly toRevision: number;
  readonly bodyLength: number;
}

export interface HelloFeed {
  name: string;
  /** Resume token last received for this feed (opaque, ≤ 256 bytes). */
  token?: Buffer;
  /** With `resume.watermarks` (§7.1): the upstream watermarks of the state the client holds. */
  watermarks?: Record<string, string>;
  /**
   * §8: every watermark the client has applied for this feed (their union). The server sends no
   * snapshot older than them: it refuses with 4015 instead. With or without a token.
   */
  notBefore?: Record<string, string>;
}

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  node: string;
  clientId: string;
  software?: string;
  feeds: HelloFeed[];
  caps: string[];
  /** Largest uncompressed body this client accepts, in bytes. */
  maxFrameBytes?: number;
  /**
   * §8 "Another cluster": the WELCOME `cluster` of the server the held state came from. A server
   * of another cluster takes the client as holding nothing (snapshots, reason `other-cluster`).
   */
  cluster?: string;
}

export interface WelcomeFeed {
  name: string;
  id: number;
  mode: FeedMode;
  /** With mode `rebase` (§7.1): the revision the client's state counts as; the DELTA starts there. */
  revision?: number;
  reason?: string;
  /**
   * The feed's data model (PROTOCOL.md 3.2): what its keys and values mean, e.g. `libcalico.v3`.
   * Absent from servers older than the key (their feeds carry `calico.v1`).
   */
  model?: string;
  /**
   * With mode `snapshot` (PROTOCOL.md §8 "A feed's resources"): the resource ids the feed carries on
   * this server, at most MAX_WATERMARKS, each 1 to MAX_WATERMARK_STRING_BYTES bytes. A resource
   * the client applied that is not listed is retired, not counted behind. Absent from older servers.
   */
  resources?: string[];
}

export interface WelcomeMessage {
  type: 'welcome';
  protocol: number;
  serverId: string;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  maxFrameBytes: number;
  maxInboundBytes: number;
  compression: Compression;
  caps: string[];
  feeds: WelcomeFeed[];
  /** §8 "Another cluster": names the upstream cluster, the same on every server of it (opaque). */
  cluster?: string;
}

/** Header: `toRevision` = `revision`, MORE always set. */
export interface SnapshotBeginMessage {
  type: 'snapshotBegin';
  feedId: number;
  revision: number;
  entries: number;
  rawBytes: number;
}

/** Header: `toRevision` = `revision`, MORE always set. */
export interface SnapshotChunkMessage {
  type: 'snapshotChunk';
  feedId: number;
  revision: number;
  entries: Entry[];
}

/** Header: `toRevision` = `revision`, MORE never set (ends the unit). */
export interface SnapshotEndMessage {
  type: 'snapshotEnd';
  feedId: number;
  revision: number;
  digest: Buffer;
  watermarks: Record<string, string>;
  status: SyncStatus;
  stale: boolean;
  token: Buffer;
}

/** `more` is the MORE flag: the unit continues in the next DELTA frame of this feed. */
export interface DeltaMessage {
  type: 'delta';
  feedId: number;
  fromRevision: number;
  toRevision: number;
  more: boolean;
  upserts: Entry[];
  deletes: string[];
}

/** Header: `fromRevision` = `toRevision` = `revision`. */
export interface StatusMessage {
  type: 'status';
  feedId: number;
  revision: number;
  status: SyncStatus;
  stale: boolean;
  watermarks: Record<string, string>;
  digest?: Buffer;
  token: Buffer;
}

export interface PingMessage {
  type: 'ping';
  t: number;
}

export interface PongMessage {
  type: 'pong';
  t: number;
}

/** Header: `toRevision` = `revision`; the body is `{}`. */
export interface AckMessage {
  type: 'ack';
  feedId: number;
  revision: number;
}

export interface GoodbyeMessage {
  type: 'goodbye';
  reason: string;
  message: string;
  reconnectDelayMs?: number;
  endpoints?: string[];
}

/**
 * §7.2, C→S with `repair.buckets`. Header: `toRevision` = `revision`, the revision whose state the
 * `sums` describe (the client's applied revision).
 */
export interface RepairRequestMessage {
  type: 'repairRequest';
  feedId: number;
  revision: number;
  /** The client's 256 bucket sums (§10 step 2), u64be each: 2,048 bytes. */
  sums: Buffer;
}

/**
 * §7.2, S→C with `repair.buckets`: the DELTA unit that follows on this feed (from `fromRevision`
 * to `toRevision`) replaces the whole content of `buckets`. Header: from/to as that DELTA's.
 */
export interface RepairMessage {
  type: 'repair';
  feedId: number;
  fromRevision: number;
  toRevision: number;
  /** 32-byte bit set of the buckets the next DELTA unit replaces (see REPAIR_BUCKET_SET_BYTES). */
  buckets: Buffer;
}

export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
}

export type Message =
  | HelloMessage
  | WelcomeMessage
  | SnapshotBeginMessage
  | SnapshotChunkMessage
  | SnapshotEndMessage
  | DeltaMessage
  | StatusMessage
  | PingMessage
  | PongMessage
  | AckMessage
  | GoodbyeMessage
  | ErrorMessage
  | RepairRequestMessage
  | RepairMessage;

export type MessageKind = Message['type'];

/** Message kind ↔ header type byte. */
export const TYPE_OF_KIND = {
  hello: MessageType.HELLO,
  welcome: MessageType.WELCOME,
  snapshotBegin: MessageType.SNAPSHOT_BEGIN,
  snapshotChunk: MessageType.SNAPSHOT_CHUNK,
  snapshotEnd: MessageType.SNAPSHOT_END,
  delta: MessageType.DELTA,
  status: MessageType.STATUS,
  ping: MessageType.PING,
  pong: MessageType.PONG,
  ack: MessageType.ACK,
  goodbye: MessageType.GOODBYE,
  error: MessageType.ERROR,
  repairRequest: MessageType.REPAIR_REQUEST,
  repair: MessageType.REPAIR,
} as const satisfies Record<MessageKind, MessageTypeCode>;

export const KIND_OF_TYPE: Readonly<Record<number, MessageKind>> = Object.fromEntries(
  Object.entries(TYPE_OF_KIND).map(([kind, code]) => [code, kind as MessageKind]),
);

/** Who may send each message (§4); the codec does not enforce direction, the connection does. */
export const DIRECTION_OF_KIND = {
  hello: 'c2s', welcome: 's2c', snapshotBegin: 's2c', snapshotChunk: 's2c', snapshotEnd: 's2c',
  delta: 's2c', status: 's2c', ping: 's2c', pong: 'c2s', ack: 'c2s', goodbye: 'either', error: 'either',
  repairRequest: 'c2s', repair: 's2c',
} as const satisfies Record<MessageKind, 'c2s' | 's2c' | 'either'>;

/** Limits a decoder enforces. */
export interface DecodeLimits {
  /**
   * Largest `bodyLength` accepted, in bytes; checked from the header before the body is looked at.
   * Server inbound: `maxInboundBytes − HEADER_BYTES`; client: the negotiated `maxFrameBytes`.
   */
  maxBodyBytes: number;
}
