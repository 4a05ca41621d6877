import fc from 'fast-check';
import type { Entry, Message } from '../../proto/types.js';

// Arbitrary valid messages of every type, for the round-trip and splitting properties.
export const str = fc.string({ unit: 'binary', maxLength: 40 });
export const bytes = (maxLength = 64): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));
const nat = fc.maxSafeNat();
const feedId = fc.integer({ min: 0, max: 0xfffe });
const revision = fc.maxSafeNat();
const digest = fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u));
const token = bytes(256);
const watermarks = fc.dictionary(str, fc.string({ unit: 'binary-ascii', maxLength: 20 }), { maxKeys: 5, noNullPrototype: true });
const syncStatus = fc.constantFrom('waiting' as const, 'resyncing' as const, 'in-sync' as const);
export const entry: fc.Arbitrary<Entry> = fc.tuple(str, bytes(300));
export const entries = fc.array(entry, { maxLength: 40 });

export const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const), protocol: fc.constant(1), node: str, clientId: str, software: str,
    feeds: fc.uniqueArray(fc.record({ name: str, token }, { requiredKeys: ['name'] }), { selector: (f) => f.name, minLength: 1, maxLength: 16 }),
    caps: fc.array(str, { maxLength: 4 }), maxFrameBytes: nat, cluster: fc.string({ minLength: 1, maxLength: 40 }),
  }, { requiredKeys: ['type', 'protocol', 'node', 'clientId', 'feeds', 'caps'] }),
  fc.record({
    type: fc.constant('welcome' as const), protocol: fc.constant(1), serverId: str, pingIntervalMs: nat, pongTimeoutMs: nat,
    maxFrameBytes: nat, maxInboundBytes: nat, compression: fc.constantFrom('none' as const, 'deflate' as const, 'brotli' as const),
    caps: fc.array(str, { maxLength: 4 }),
    feeds: fc.array(fc.record({ name: str, id: feedId, mode: fc.constantFrom('resume' as const, 'snapshot' as const), reason: str, resources: fc.array(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 8 }) }, { requiredKeys: ['name', 'id', 'mode'] }), { maxLength: 16 }),
    cluster: fc.string({ minLength: 1, maxLength: 40 }),
  }, { requiredKeys: ['type', 'protocol', 'serverId', 'pingIntervalMs', 'pongTimeoutMs', 'maxFrameBytes', 'maxInboundBytes', 'compression', 'caps', 'feeds'] }),
  fc.record({ type: fc.constant('snapshotBegin' as const), feedId, revision, entries: nat, rawBytes: nat }),
  fc.record({ type: fc.constant('snapshotChunk' as const), feedId, revision, entries }),
  fc.record({ type: fc.constant('snapshotEnd' as const), feedId, revision, digest, watermarks, status: syncStatus, stale: fc.boolean(), token }),
  fc.record({ type: fc.constant('delta' as const), feedId, fromRevision: revision, toRevision: revision, more: fc.boolean(), upserts: entries, deletes: fc.array(str, { maxLength: 20 }) }),
  fc.record({ type: fc.constant('status' as const), feedId, revision, status: syncStatus, stale: fc.boolean(), watermarks, digest, token }, { requiredKeys: ['type', 'feedId', 'revision', 'status', 'stale', 'watermarks', 'token'] })
    .map((m) => (m.status === 'in-sync' && m.digest === undefined ? { ...m, digest: Buffer.alloc(8, 7) } : m)),
  fc.record({ type: fc.constantFrom('ping' as const, 'pong' as const), t: fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ type: fc.constant('ack' as const), feedId, revision }),
  fc.record({ type: fc.constant('goodbye' as const), reason: str, message: str, reconnectDelayMs: nat, endpoints: fc.array(str, { maxLength: 3 }) }, { requiredKeys: ['type', 'reason', 'message'] }),
  fc.record({ type: fc.constant('error' as const), code: str, message: str }),
);
