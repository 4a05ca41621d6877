import { describe, expect, it } from 'vitest';
import { CattailError } from '../../../src/errors.js';
import { decodeReplicaCheckpoint, encodeReplicaCheckpoint, type ReplicaCheckpoint } from '../../../src/server/state/replica-checkpoint.js';

const cp: ReplicaCheckpoint = {
  identity: 'cluster-a/opts-1',
  resources: [
    { name: 'pods', resourceVersion: '1234', objects: new Map([['ns/a', '{"metadata":{"name":"a"}}'], ['ns/b', '{"metadata":{"name":"b"}}']]) },
    { name: 'nodes', resourceVersion: '99', objects: new Map() },
  ],
};

function code(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(CattailError);
    return `${(err as CattailError).code}: ${(err as Error).message}`;
  }
  return 'no error';
}

describe('replica checkpoint format', () => {
  it('round-trips objects and resourceVersions', () => {
    const got = decodeReplicaCheckpoint(encodeReplicaCheckpoint(cp, 1 << 20), cp.identity);
    expect(got.resources.map((r) => [r.name, r.resourceVersion, [...r.objects]])).toEqual(cp.resources.map((r) => [r.name, r.resourceVersion, [...r.objects]]));
  });

  it('rejects corrupt, truncated, other-version and foreign files with CATTAIL_SERVER_STATE_INVALID', () => {
    const buf = encodeReplicaCheckpoint(cp, 1 << 20);
    const flipped = Buffer.from(buf);
    flipped[20] = flipped[20]! ^ 0xff;
    expect(code(() => decodeReplicaCheckpoint(flipped, cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*checksum/);
    expect(code(() => decodeReplicaCheckpoint(buf.subarray(0, buf.length - 5), cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*truncated/);
    const v2 = Buffer.from(buf);
    v2.writeUInt32BE(2, 8);
    expect(code(() => decodeReplicaCheckpoint(v2, cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*version 2/);
    expect(code(() => decodeReplicaCheckpoint(buf, 'cluster-b/opts-1'))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*another cluster/);
    expect(code(() => decodeReplicaCheckpoint(Buffer.from('CTLCKPT\n' + 'x'.repeat(60)), cp.identity))).toMatch(/bad magic/);
  });

  it('refuses to encode above its byte bound', () => {
    const size = encodeReplicaCheckpoint(cp, 1 << 20).length;
    expect(code(() => encodeReplicaCheckpoint(cp, size - 1))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*bound/);
    expect(encodeReplicaCheckpoint(cp, size).length).toBe(size);
  });
});
