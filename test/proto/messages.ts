import { Packr } from 'msgpackr';
import { rawBytesOf } from '../../proto/entries.js';
import type { Entry, Message } from '../../proto/types.js';

// One representative message per type; the golden fixtures are generated from these once
// (scripts/gen-proto-golden.ts) and then pinned: tests never regenerate them.
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
// Values are stored msgpack bytes, as the store holds them (plain maps, no records).
const packr = new Packr({ useRecords: false });
const value = (v: unknown): Buffer => packr.pack(v);

const podA: Entry = ['/pods/demo/web-6d8f5b7c9d-x7k2p', value({ name: 'web-6d8f5b7c9d-x7k2p', phase: 'Running', podIP: '10.0.13.27', labels: { app: 'web' } })];
const nodeB: Entry = ['/nodes//worker-1', value({ name: 'worker-1', ready: true, podCIDR: '10.0.1.0/24' })];
const pool: Entry = ['crd.projectcalico.org/ippools//default-ipv4-ippool', value({ cidr: '192.168.0.0/16', ipipMode: 'Never' })];

export const SAMPLE_MESSAGES: Record<string, Message> = {
  hello: {
    type: 'hello', protocol: 1, node: 'worker-1', clientId: '3f2a9c1e-agent', software: 'cattail-client/0.1.0',
    feeds: [{ name: 'felix', token: hex('0102030405060708090a0b0c0d0e0f10') }, { name: 'bgp' }],
    caps: ['compress.brotli', 'compress.deflate'], maxFrameBytes: 1_048_576,
  },
  welcome: {
    type: 'welcome', protocol: 1, serverId: 'cattail-7c9d5-abcde', pingIntervalMs: 10_000, pongTimeoutMs: 60_000,
    maxFrameBytes: 1_048_576, maxInboundBytes: 65_536, compression: 'brotli', caps: [],
    feeds: [{ name: 'felix', id: 0, mode: 'resume' }, { name: 'bgp', id: 1, mode: 'snapshot', reason: 'no-token' }],
  },
  // PROTOCOL.md §7.1: resume.watermarks, a token of another replica with the state's watermarks.
  helloRebase: {
    type: 'hello', protocol: 1, node: 'worker-1', clientId: '3f2a9c1e-agent',
    feeds: [{ name: 'felix', token: hex('0102030405060708090a0b0c0d0e0f10'), watermarks: { nodes: '1882', pods: '1907' } }],
    caps: ['compress.brotli', 'resume.watermarks'],
  },
  welcomeRebase: {
    type: 'welcome', protocol: 1, serverId: 'cattail-7c9d5-fghij', pingIntervalMs: 10_000, pongTimeoutMs: 60_000,
    maxFrameBytes: 1_048_576, maxInboundBytes: 65_536, compression: 'brotli', caps: [],
    feeds: [{ name: 'felix', id: 0, mode: 'rebase', revision: 7311 }],
  },
  // PROTOCOL.md 3.2: the optional `model` of each WELCOME feed entry (added with libcalico.v1).
  welcomeModel: {
    type: 'welcome', protocol: 1, serverId: 'cattail-7c9d5-abcde', pingIntervalMs: 10_000, pongTimeoutMs: 60_000,
    maxFrameBytes: 1_048_576, maxInboundBytes: 65_536, compression: 'none', caps: [],
    feeds: [{ name: 'felix', id: 0, mode: 'snapshot', reason: 'projection-changed', model: 'libcalico.v1' }, { name: 'pods-raw', id: 1, mode: 'resume', model: 'raw.v1' }],
  },
  // PROTOCOL.md §8 "A feed's resources": the optional `resources` of a snapshot feed entry.
  welcomeResources: {
    type: 'welcome', protocol: 1, serverId: 'cattail-7c9d5-abcde', pingIntervalMs: 10_000, pongTimeoutMs: 60_000,
    maxFrameBytes: 1_048_576, maxInboundBytes: 65_536, compression: 'none', caps: [],
    feeds: [{ name: 'bgp', id: 1, mode: 'snapshot', reason: 'projection-changed', model: 'libcalico.v3', resources: ['nodes', 'bgppeers.crd.projectcalico.org'] }],
  },
  snapshotBegin: { type: 'snapshotBegin', feedId: 1, revision: 4242, entries: 3, rawBytes: rawBytesOf([nodeB, podA, pool]) },
  snapshotChunk: { type: 'snapshotChunk', feedId: 1, revision: 4242, entries: [nodeB, podA, pool] },
  snapshotEnd: {
    type: 'snapshotEnd', feedId: 1, revision: 4242, digest: hex('5f3c0a9e81b2d4c7'),
    watermarks: { nodes: '1882', pods: '1907', 'ippools.crd.projectcalico.org': '77' },
    status: 'in-sync', stale: false, token: hex('01c0ffee0000000000001092'),
  },
  delta: { type: 'delta', feedId: 0, fromRevision: 4242, toRevision: 4245, more: false, upserts: [podA], deletes: ['/nodes//worker-9'] },
  deltaMore: { type: 'delta', feedId: 0, fromRevision: 2 ** 40 + 7, toRevision: 2 ** 40 + 9, more: true, upserts: [nodeB, pool], deletes: [] },
  status: {
    type: 'status', feedId: 0, revision: 4245, status: 'in-sync', stale: true,
    watermarks: { pods: '1911' }, digest: hex('0011223344556677'), token: hex('01c0ffee0000000000001095'),
  },
  statusWaiting: { type: 'status', feedId: 2, revision: 0, status: 'waiting', stale: false, watermarks: {}, token: hex('01') },
  ping: { type: 'ping', t: 123_456_789 },
  pong: { type: 'pong', t: 123_456_789 },
  ack: { type: 'ack', feedId: 0, revision: 4245 },
  goodbye: { type: 'goodbye', reason: 'shutdown', message: 'server draining', reconnectDelayMs: 2_500, endpoints: ['wss://cattail-1.cattail:5473/', 'wss://cattail-2.cattail:5473/'] },
  error: { type: 'error', code: 'CATTAIL_PROTO_TRUNCATED', message: 'frame has 20 bytes; its header announces 48' },
  // PROTOCOL.md §7.2 (repair.buckets): the client's 256 bucket sums, and the server's answer naming
  // buckets 0, 9 and 255 (bit 0x80 >> (i & 7) of byte i >> 3).
  repairRequest: { type: 'repairRequest', feedId: 0, revision: 4245, sums: Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 37) & 0xff)) },
  repair: { type: 'repair', feedId: 0, fromRevision: 4245, toRevision: 4247, buckets: hex(`8040${'00'.repeat(29)}01`) },
};
