/**
 * Message ↔ body map (PROTOCOL.md §4) for every message type, and the typed field readers that
 * turn a decoded msgpack map into a message or a coded BAD_BODY error. Unknown keys are ignored
 * (§3, forward compatibility); missing required keys and wrong types are errors.
 */
import { ProtocolError } from './errors.js';
import type { MsgValue } from './msgpack.js';
import {
  COMPRESSIONS,
  DIGEST_BYTES,
  FEED_MODES,
  MAX_CLUSTER_BYTES,
  isClusterName,
  MAX_FEED_ID,
  MAX_HELLO_FEEDS,
  MAX_TOKEN_BYTES,
  MAX_WATERMARK_STRING_BYTES,
  MAX_WATERMARKS,
  MAX_WATERMARKS_BYTES,
  PROTOCOL_VERSION,
  REPAIR_BUCKET_SET_BYTES,
  REPAIR_SUMS_BYTES,
  SYNC_STATUSES,
  type Entry,
  type FrameHeader,
  type Message,
  type MessageKind,
} from './types.js';

/** A plain body value as written: msgpack maps come from plain objects (insertion order kept). */
export type PlainValue = null | boolean | number | string | Uint8Array | readonly PlainValue[] | { readonly [key: string]: PlainValue | undefined };

/**
 * The body map of a message, keys in the order they are written. Optional fields that are
 * `undefined` are omitted. Used by the encoder of control messages and by tests that read golden
 * bodies with an independent msgpack library.
 */
export function bodyOf(m: Message): { [key: string]: PlainValue | undefined } {
  switch (m.type) {
    case 'hello':
      return {
        protocol: m.protocol, node: m.node, clientId: m.clientId, software: m.software,
        feeds: m.feeds.map((f) => ({ name: f.name, token: f.token, watermarks: f.watermarks, notBefore: f.notBefore })), caps: m.caps, maxFrameBytes: m.maxFrameBytes,
        cluster: m.cluster,
      };
    case 'welcome':
      return {
        protocol: m.protocol, serverId: m.serverId, pingIntervalMs: m.pingIntervalMs, pongTimeoutMs: m.pongTimeoutMs,
        maxFrameBytes: m.maxFrameBytes, maxInboundBytes: m.maxInboundBytes, compression: m.compression, caps: m.caps,
        feeds: m.feeds.map((f) => ({ name: f.name, id: f.id, mode: f.mode, revision: f.revision, reason: f.reason, model: f.model, resources: f.resources })),
        cluster: m.cluster,
      };
    case 'snapshotBegin':
      return { entries: m.entries, rawBytes: m.rawBytes };
    case 'snapshotChunk':
      return { entries: m.entries };
    case 'snapshotEnd':
      return { digest: m.digest, watermarks: m.watermarks, status: m.status, stale: m.stale, token: m.token };
    case 'delta':
      return { upserts: m.upserts, deletes: m.deletes };
    case 'status':
      return { status: m.status, stale: m.stale, watermarks: m.watermarks, digest: m.digest, token: m.token };
    case 'ping':
    case 'pong':
      return { t: m.t };
    case 'ack':
      return {};
    case 'goodbye':
      return { reason: m.reason, message: m.message, reconnectDelayMs: m.reconnectDelayMs, endpoints: m.endpoints };
    case 'error':
      return { code: m.code, message: m.message };
    case 'repairRequest':
      return { sums: m.sums };
    case 'repair':
      return { buckets: m.buckets };
  }
}

// ---- typed readers -----------------------------------------------------------------------

type Body = Map<string, MsgValue>;

class Fields {
  constructor(private readonly kind: MessageKind, private readonly body: Body) {}

  fail(key: string, want: string): never {
    throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${this.kind}.${key}: expected ${want}`, { details: { kind: this.kind, key } });
  }

  private get(key: string, want: string, optional: boolean): MsgValue | undefined {
    const v = this.body.get(key);
    if (v === undefined && !optional) this.fail(key, `${want} (missing)`);
    // nil for an optional key is its absence (PROTOCOL.md §3): encoders that write every field of
    // a struct (Go without omitempty, Python's None) were closed with 4000 on every HELLO.
    if (v === null && optional) return undefined;
    return v;
  }

  str(key: string): string;
  str(key: string, optional: true): string | undefined;
  str(key: string, optional = false): string | undefined {
    const v = this.get(key, 'a string', optional);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.str(key);
    if (!(allowed as readonly string[]).includes(v)) this.fail(key, `one of ${allowed.join(', ')}`);
    return v as T;
  }

  int(key: string, min?: number, max?: number): number;
  int(key: string, min: number, max: number, optional: true): number | undefined;
  int(key: string, min = 0, max = Number.MAX_SAFE_INTEGER, optional = false): number | undefined {
    const v = this.get(key, 'an integer', optional);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) this.fail(key, `an integer in ${min}..${max}`);
    return v;
  }

  bool(key: string): boolean {
    const v = this.get(key, 'a boolean', false);
    if (typeof v !== 'boolean') this.fail(key, 'a boolean');
    return v;
  }

  bin(key: string, maxBytes: number, exactBytes?: number): Buffer;
  bin(key: string, maxBytes: number, exactBytes: number | undefined, optional: true): Buffer | undefined;
  bin(key: string, maxBytes: number, exactBytes?: number, optional = false): Buffer | undefined {
    const v = this.get(key, 'a bin', optional);
    if (v === undefined) return undefined;
    if (!Buffer.isBuffer(v) || v.length > maxBytes || (exactBytes !== undefined && v.length !== exactBytes)) {
      this.fail(key, exactBytes === undefined ? `a bin of at most ${maxBytes} bytes` : `a bin of ${exactBytes} bytes`);
    }
    return v;
  }

  array(key: string): MsgValue[];
  array(key: string, optional: true): MsgValue[] | undefined;
  array(key: string, optional = false): MsgValue[] | undefined {
    const v = this.get(key, 'an array', optional);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) this.fail(key, 'an array');
    return v;
  }

  strings(key: string): string[];
  strings(key: string, optional: true): string[] | undefined;
  strings(key: string, optional = false): string[] | undefined {
    const a = optional ? this.array(key, true) : this.array(key);
    if (a === undefined) return undefined;
    for (const s of a) if (typeof s !== 'string') this.fail(key, 'an array of strings');
    return a as string[];
  }

  maps(key: string): Fields[] {
    return this.array(key).map((v, i) => {
      if (!(v instanceof Map)) this.fail(`${key}[${i}]`, 'a map');
      return new Fields(this.kind, v);
    });
  }

  entries(key: string): Entry[] {
    const a = this.array(key);
    for (let i = 0; i < a.length; i++) {
      const e = a[i];
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !Buffer.isBuffer(e[1])) {
        this.fail(`${key}[${i}]`, 'a [str, bin] entry');
      }
    }
    return a as unknown as Entry[];
  }

  watermarks(key: string): Record<string, string>;
  watermarks(key: string, optional: true): Record<string, string> | undefined;
  watermarks(key: string, optional = false): Record<string, string> | undefined {
    const v = this.get(key, 'a map of strings', optional);
    if (v === undefined) return undefined;
    if (!(v instanceof Map)) this.fail(key, 'a map of strings');
    if (v.size > MAX_WATERMARKS) this.fail(key, `at most ${MAX_WATERMARKS} resources (got ${v.size})`);
    let bytes = 0;
    for (const [r, s] of v) {
      if (typeof s !== 'string') this.fail(key, 'a map of strings');
      const rb = Buffer.byteLength(r as string);
      const sb = Buffer.byteLength(s);
      if (rb > MAX_WATERMARK_STRING_BYTES || sb > MAX_WATERMARK_STRING_BYTES) this.fail(key, `resource ids and resourceVersions of at most ${MAX_WATERMARK_STRING_BYTES} bytes`);
      bytes += rb + sb;
    }
    if (bytes > MAX_WATERMARKS_BYTES) this.fail(key, `at most ${MAX_WATERMARKS_BYTES} bytes of resource ids and resourceVersions (got ${bytes})`);
    // fromEntries defines own properties, so a key such as "__proto__" stays plain data.
    return Object.fromEntries(v as Map<string, string>);
  }
}

function protocolVersion(f: Fields, kind: MessageKind): number {
  const protocol = f.int('protocol');
  if (protocol !== PROTOCOL_VERSION) {
    throw new ProtocolError('CATTAIL_PROTO_UNSUPPORTED_VERSION', `${kind} speaks protocol ${protocol}; this peer speaks ${PROTOCOL_VERSION}`, { details: { protocol } });
  }
  return protocol;
}

/** The optional `cluster` of HELLO and WELCOME: 1 to MAX_CLUSTER_BYTES bytes (§4.1). */
function clusterOf(f: Fields): string | undefined {
  const cluster = f.str('cluster', true);
  if (cluster !== undefined && !isClusterName(cluster)) f.fail('cluster', `a string of 1 to ${MAX_CLUSTER_BYTES} bytes`);
  return cluster;
}

/** Builds the message of `kind` from its decoded body map and its header (validated already). */
export function messageOf(kind: MessageKind, h: FrameHeader, body: Body): Message {
  const f = new Fields(kind, body);
  switch (kind) {
    case 'hello': {
      const protocol = protocolVersion(f, kind);
      const feeds = f.maps('feeds').map((ff) => {
        const name = ff.str('name');
        const token = ff.bin('token', MAX_TOKEN_BYTES, undefined, true);
        const watermarks = ff.watermarks('watermarks', true);
        const notBefore = ff.watermarks('notBefore', true);
        return { name, ...(token === undefined ? {} : { token }), ...(watermarks === undefined ? {} : { watermarks }), ...(notBefore === undefined ? {} : { notBefore }) };
      });
      if (feeds.length < 1 || feeds.length > MAX_HELLO_FEEDS) f.fail('feeds', `1..${MAX_HELLO_FEEDS} feeds`);
      if (new Set(feeds.map((x) => x.name)).size !== feeds.length) f.fail('feeds', 'unique feed names');
      const m: Message = { type: 'hello', protocol, node: f.str('node'), clientId: f.str('clientId'), feeds, caps: f.strings('caps') };
      const software = f.str('software', true);
      if (software !== undefined) m.software = software;
      const maxFrameBytes = f.int('maxFrameBytes', 0, Number.MAX_SAFE_INTEGER, true);
      if (maxFrameBytes !== undefined) m.maxFrameBytes = maxFrameBytes;
      const cluster = clusterOf(f);
      if (cluster !== undefined) m.cluster = cluster;
      return m;
    }
    case 'welcome': {
      const protocol = protocolVersion(f, kind);
      const feeds = f.maps('feeds').map((ff) => {
        const feed = { name: ff.str('name'), id: ff.int('id', 0, MAX_FEED_ID), mode: ff.oneOf('mode', FEED_MODES) };
        const revision = ff.int('revision', 0, Number.MAX_SAFE_INTEGER, true);
        // A rebase is meaningless without the revision it rebases onto.
        if (feed.mode === 'rebase' && revision === undefined) ff.fail('revision', 'an integer with mode rebase');
        const reason = ff.str('reason', true);
        const model = ff.str('model', true);
        const resources = ff.strings('resources', true);
        // Bounded as a watermarks map's resource ids are (§8): the client keeps what it names.
        if (resources !== undefined && (resources.length > MAX_WATERMARKS || resources.some((r) => r === '' || Buffer.byteLength(r) > MAX_WATERMARK_STRING_BYTES))) {
          ff.fail('resources', `at most ${MAX_WATERMARKS} resource ids of 1 to ${MAX_WATERMARK_STRING_BYTES} bytes`);
        }
        return {
          ...feed, ...(revision === undefined ? {} : { revision }), ...(reason === undefined ? {} : { reason }), ...(model === undefined ? {} : { model }),
          ...(resources === undefined ? {} : { resources }),
        };
      });
      const cluster = clusterOf(f);
      return {
        type: 'welcome', protocol, serverId: f.str('serverId'), pingIntervalMs: f.int('pingIntervalMs'),
        pongTimeoutMs: f.int('pongTimeoutMs'), maxFrameBytes: f.int('maxFrameBytes'), maxInboundBytes: f.int('maxInboundBytes'),
        compression: f.oneOf('compression', COMPRESSIONS), caps: f.strings('caps'), feeds, ...(cluster === undefined ? {} : { cluster }),
      };
    }
    case 'snapshotBegin':
      return { type: 'snapshotBegin', feedId: h.feedId, revision: h.toRevision, entries: f.int('entries'), rawBytes: f.int('rawBytes') };
    case 'snapshotChunk':
      return { type: 'snapshotChunk', feedId: h.feedId, revision: h.toRevision, entries: f.entries('entries') };
    case 'snapshotEnd':
      return {
        type: 'snapshotEnd', feedId: h.feedId, revision: h.toRevision, digest: f.bin('digest', DIGEST_BYTES, DIGEST_BYTES),
        watermarks: f.watermarks('watermarks'), status: f.oneOf('status', SYNC_STATUSES), stale: f.bool('stale'),
        token: f.bin('token', MAX_TOKEN_BYTES),
      };
    case 'delta':
      return {
        type: 'delta', feedId: h.feedId, fromRevision: h.fromRevision, toRevision: h.toRevision,
        more: (h.flags & 0x02) !== 0, upserts: f.entries('upserts'), deletes: f.strings('deletes'),
      };
    case 'status': {
      const m: Message = {
        type: 'status', feedId: h.feedId, revision: h.toRevision, status: f.oneOf('status', SYNC_STATUSES),
        stale: f.bool('stale'), watermarks: f.watermarks('watermarks'), token: f.bin('token', MAX_TOKEN_BYTES),
      };
      const digest = f.bin('digest', DIGEST_BYTES, DIGEST_BYTES, true);
      // §4.7: an in-sync status carries a digest except on a scoped feed to a client that
      // advertised scope.watermarks; the codec cannot know either, so the client checks that.
      if (digest !== undefined) m.digest = digest;
      return m;
    }
    case 'ping':
    case 'pong':
      return { type: kind, t: f.int('t', -Number.MAX_SAFE_INTEGER) };
    case 'ack':
      return { type: 'ack', feedId: h.feedId, revision: h.toRevision };
    case 'goodbye': {
      const m: Message = { type: 'goodbye', reason: f.str('reason'), message: f.str('message') };
      const reconnectDelayMs = f.int('reconnectDelayMs', 0, Number.MAX_SAFE_INTEGER, true);
      if (reconnectDelayMs !== undefined) m.reconnectDelayMs = reconnectDelayMs;
      const endpoints = f.strings('endpoints', true);
      if (endpoints !== undefined) m.endpoints = endpoints;
      return m;
    }
    case 'error':
      return { type: 'error', code: f.str('code'), message: f.str('message') };
    case 'repairRequest':
      return { type: 'repairRequest', feedId: h.feedId, revision: h.toRevision, sums: f.bin('sums', REPAIR_SUMS_BYTES, REPAIR_SUMS_BYTES) };
    case 'repair': {
      // §7.2: a repair moves the client forward (or nowhere), never back.
      if (h.toRevision < h.fromRevision) f.fail('toRevision', 'a revision at or after fromRevision');
      return { type: 'repair', feedId: h.feedId, fromRevision: h.fromRevision, toRevision: h.toRevision, buckets: f.bin('buckets', REPAIR_BUCKET_SET_BYTES, REPAIR_BUCKET_SET_BYTES) };
    }
  }
}
