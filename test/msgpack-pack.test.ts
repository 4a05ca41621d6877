/**
 * msgpackr's pack() writes into one buffer shared by every Packr of the process and returns views
 * into it (src/msgpack-pack.ts): what Cattail packs must own its bytes, and a large pack (a
 * checkpoint) must not leave that buffer at its size.
 */
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeCheckpoint } from '../src/client/checkpoint.js';
import { RELEASE_ABOVE_BYTES, packDetached } from '../src/msgpack-pack.js';
import { encodeReplicaCheckpoint } from '../src/server/state/replica-checkpoint.js';
import { encodeToken } from '../src/server/transport/tokens.js';

/** Bytes of the memory a Buffer keeps alive (its whole ArrayBuffer). */
const pinned = (b: Uint8Array): number => b.buffer.byteLength;
const big = (bytes: number): Buffer => Buffer.alloc(bytes, 7);
const token = (): Buffer => encodeToken({ serverId: 's', epoch: 'e', feed: 'felix', revision: 1, projectionVersion: 1 });

describe('packDetached', () => {
  it('returns exactly the packed bytes, in memory of their own', () => {
    const packr = new Packr({ useRecords: false });
    const out = packDetached(packr, { a: 1, b: 'x' });
    expect(packr.unpack(out)).toEqual({ a: 1, b: 'x' });
    expect(out.byteOffset).toBe(0);
    expect(pinned(out)).toBe(out.length);
  });

  it('after a value above RELEASE_ABOVE_BYTES, msgpackr\'s shared buffer is small again (what the next plain pack shows)', () => {
    const other = new Packr({ useRecords: false });
    const out = packDetached(new Packr({ useRecords: false }), { v: big(4 * RELEASE_ABOVE_BYTES) });
    expect(pinned(out)).toBe(out.length);
    // A view from any Packr: before, it was cut from a buffer of 16 MiB or more.
    expect(pinned(other.pack({ small: true }))).toBeLessThanOrEqual(64 * 1024);
  });
});

describe('what Cattail packs owns its bytes and leaves no large buffer behind', () => {
  it('a resume token (cached per feed until its revision moves) pins only itself', () => {
    const t = token();
    expect(pinned(t)).toBe(t.length);
  });

  it('a replica checkpoint, then a token: the token is not cut from a checkpoint-sized buffer', () => {
    const file = encodeReplicaCheckpoint({ identity: 'i', resources: [{ name: 'pods', resourceVersion: '1', views: [{ id: 'v', values: [['/k', big(8 * RELEASE_ABOVE_BYTES)]], owned: [] }] }] }, 1 << 30);
    expect(file.length).toBeGreaterThan(8 * RELEASE_ABOVE_BYTES);
    expect(pinned(new Packr({ useRecords: false }).pack([1]))).toBeLessThanOrEqual(64 * 1024);
    expect(pinned(token())).toBeLessThan(1024);
  });

  it('an agent\'s checkpoint of its feeds (on every node) leaves none behind either', () => {
    const file = encodeCheckpoint({
      node: 'n1',
      feeds: [{ name: 'felix', revision: 1, tokenRevision: 1, token: Buffer.from([1]), watermarks: {}, digest: Buffer.alloc(32), entries: [['/k', big(8 * RELEASE_ABOVE_BYTES)]] }],
    } as unknown as Parameters<typeof encodeCheckpoint>[0]);
    expect(file.length).toBeGreaterThan(8 * RELEASE_ABOVE_BYTES);
    expect(pinned(new Packr({ useRecords: false }).pack([1]))).toBeLessThanOrEqual(64 * 1024);
  });
});
