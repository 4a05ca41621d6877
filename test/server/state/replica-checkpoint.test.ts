import { describe, expect, it } from 'vitest';
import { CattailError } from '../../../src/errors.js';
import { isExactBuffer } from '../../../src/snapshot/index.js';
import { decodeReplicaCheckpoint, encodeReplicaCheckpoint, type ReplicaCheckpoint } from '../../../src/server/state/replica-checkpoint.js';

const cp: ReplicaCheckpoint = {
  identity: 'cluster-a/opts-1',
  resources: [
    {
      name: 'pods', resourceVersion: '1234',
      views: [
        { id: '["calico","",""]', values: [['ns/a', Buffer.from([0x81, 0xa1, 0x61, 0x01])], ['ns/b', Buffer.from([0xc0])]], owned: [] },
        { id: '["libcalico","",""]', values: [['/calico/v1/host/n1/workload/k8s/ns%2fa/endpoint/eth0', Buffer.from([0x80])]], owned: [['ns/a', ['/calico/v1/host/n1/workload/k8s/ns%2fa/endpoint/eth0']]] },
      ],
    },
    { name: 'nodes', resourceVersion: '99', views: [{ id: 'x', values: [], owned: [] }] },
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
  it('round-trips views (values byte-exact, ownership) and resourceVersions', () => {
    const got = decodeReplicaCheckpoint(encodeReplicaCheckpoint(cp, 1 << 20), cp.identity);
    expect(got.resources).toEqual(cp.resources);
    expect(Buffer.isBuffer(got.resources[0]?.views[0]?.values[0]?.[1])).toBe(true);
  });

  it('decodes each value into a Buffer of its own, not a slice that pins the whole file', () => {
    const file = encodeReplicaCheckpoint(cp, 1 << 20);
    const got = decodeReplicaCheckpoint(file, cp.identity);
    for (const r of got.resources) {
      for (const v of r.views) {
        for (const [, value] of v.values) {
          expect(value.buffer).not.toBe(file.buffer);
          expect(isExactBuffer(value)).toBe(true);
        }
      }
    }
  });

  it('rejects a body of the wrong shape (a value that is not bytes, a bad ownership entry)', () => {
    const wrong = (r: unknown): string => code(() => decodeReplicaCheckpoint(encodeReplicaCheckpoint({ identity: 'i', resources: [r as ReplicaCheckpoint['resources'][number]] }, 1 << 20), 'i'));
    expect(wrong({ name: 'pods', resourceVersion: '1', views: [{ id: 'v', values: [['k', 'text']], owned: [] }] })).toMatch(/CATTAIL_SERVER_STATE_INVALID: .*value of pods/);
    expect(wrong({ name: 'pods', resourceVersion: '1', views: [{ id: 'v', values: [], owned: [['o', [1]]] }] })).toMatch(/ownership entry of pods/);
    expect(wrong({ name: 'pods', resourceVersion: '', views: [] })).toMatch(/resource has the wrong shape/);
  });

  it('keeps the cluster it was saved in (optional: older files have none), bounded as WELCOME\'s', () => {
    expect(decodeReplicaCheckpoint(encodeReplicaCheckpoint(cp, 1 << 20), cp.identity).cluster).toBeUndefined();
    const named = decodeReplicaCheckpoint(encodeReplicaCheckpoint({ ...cp, cluster: 'kube-system/0f1e2d3c' }, 1 << 20), cp.identity);
    expect(named.cluster).toBe('kube-system/0f1e2d3c');
    expect(named.resources).toEqual(cp.resources);
    for (const bad of ['', 'c'.repeat(129), 7] as unknown[]) {
      expect(code(() => decodeReplicaCheckpoint(encodeReplicaCheckpoint({ ...cp, cluster: bad as string }, 1 << 20), cp.identity))).toMatch(/CATTAIL_SERVER_STATE_INVALID: replica checkpoint cluster has the wrong shape/);
    }
  });

  it('rejects corrupt, truncated, other-version and foreign files with CATTAIL_SERVER_STATE_INVALID', () => {
    const buf = encodeReplicaCheckpoint(cp, 1 << 20);
    const flipped = Buffer.from(buf);
    flipped[20] = flipped[20]! ^ 0xff;
    expect(code(() => decodeReplicaCheckpoint(flipped, cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*checksum/);
    expect(code(() => decodeReplicaCheckpoint(buf.subarray(0, buf.length - 5), cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*truncated/);
    const v2 = Buffer.from(buf);
    v2.writeUInt32BE(3, 8);
    expect(code(() => decodeReplicaCheckpoint(v2, cp.identity))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*version 3/);
    expect(code(() => decodeReplicaCheckpoint(buf, 'cluster-b/opts-1'))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*another cluster/);
    expect(code(() => decodeReplicaCheckpoint(Buffer.from('CTLCKPT\n' + 'x'.repeat(60)), cp.identity))).toMatch(/bad magic/);
  });

  it('refuses to encode above its byte bound', () => {
    const size = encodeReplicaCheckpoint(cp, 1 << 20).length;
    expect(code(() => encodeReplicaCheckpoint(cp, size - 1))).toMatch(/^CATTAIL_SERVER_STATE_INVALID: .*bound/);
    expect(encodeReplicaCheckpoint(cp, size).length).toBe(size);
  });
});
