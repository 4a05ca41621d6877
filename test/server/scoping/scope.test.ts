import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FeedStore, computeDigest, decodeValue, encodeValue } from '../../../src/snapshot/index.js';
import { SCOPE_POLICIES, isEndpointKey, NODE_STATUS_PREFIX, type ScopePolicy } from '../../../src/server/scoping/policy.js';
import { slimValue } from '../../../src/server/scoping/slim.js';
import { applySplit, scopedView, splitChanges } from '../../../src/server/scoping/view.js';
import { MAX_CACHED_NODES, ScopeIndex } from '../../../src/server/scoping/index.js';
import { hostConfigKey, hostEndpointKey, ipPoolKey, resourceKey, wireguardKey, workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';
import type { ServedStore, StoreEntry } from '../../../src/server/pipeline/store-port.js';

const policy = (feed: string): ScopePolicy => SCOPE_POLICIES.get(feed) as ScopePolicy;
const NODES = ['n1', 'n2', 'n3'];

function wep(i: number, extra = 0): Buffer {
  return encodeValue({
    state: 'active', name: `cali${i}`, active_instance_id: '', mac: null, profile_ids: ['kns.demo'], ipv4_nets: [`10.0.0.${i}/32`], ipv6_nets: null,
    labels: { app: `a${i % 3}` }, ports: [{ name: 'http', protocol: 'tcp', port: 80 + extra }], annotations: { big: 'x'.repeat(extra) },
  });
}

describe('scope policies', () => {
  it('felix binds only endpoints to their node; others get the slim form', () => {
    const p = policy('felix');
    expect(p.others).toBe('slim');
    expect(p.nodeOf(workloadEndpointKey('n1', 'demo', 'p'), undefined)).toBe('n1');
    expect(p.nodeOf(hostEndpointKey('n2', 'eth0'), undefined)).toBe('n2');
    expect(p.nodeOf(hostConfigKey('n1', 'IpInIpTunnelAddr'), undefined)).toBeUndefined();
    expect(p.nodeOf(wireguardKey('n1'), undefined)).toBeUndefined();
    expect(p.nodeOf(resourceKey('nodes', 'n1'), undefined)).toBeUndefined();
    expect(isEndpointKey('/calico/v1/host/n1/config/x')).toBe(false);
  });

  it('tunnel-ip-allocation binds every key of a node; others get nothing', () => {
    const p = policy('tunnel-ip-allocation');
    expect(p.others).toBe('omit');
    expect(p.nodeOf(resourceKey('nodes', 'n1'), undefined)).toBe('n1');
    expect(p.nodeOf(hostConfigKey('n2', 'IpInIpTunnelAddr'), undefined)).toBe('n2');
    expect(p.nodeOf(ipPoolKey('10.0.0.0/16'), undefined)).toBeUndefined();
  });

  it('node-status reads the node from the value (spec.node), remembers it for deletions', () => {
    const p = policy('node-status');
    const key = `${NODE_STATUS_PREFIX}anything`;
    expect(p.nodeOf(key, encodeValue({ spec: { node: 'n3' } }))).toBe('n3');
    expect(p.nodeOf(key, encodeValue({ spec: {} }))).toBe('');
    expect(p.valueBound(key)).toBe(true);
    expect(SCOPE_POLICIES.has('bgp')).toBe(false);
  });

  it('slims an endpoint to labels, profile ids, nets and ports, once per value', () => {
    const full = wep(7, 100);
    const slim = slimValue(full);
    expect(decodeValue(slim)).toEqual({ profile_ids: ['kns.demo'], ipv4_nets: ['10.0.0.7/32'], ipv6_nets: null, labels: { app: 'a1' }, ports: [{ name: 'http', protocol: 'tcp', port: 180 }] });
    expect(slimValue(full)).toBe(slim);
    expect(slim.length).toBeLessThan(full.length);
  });

  it('slims a value that is not a map (no projection makes one) to an empty map: another node\'s full value never goes out', () => {
    for (const v of [encodeValue('secret'), encodeValue([1, 2]), encodeValue(Buffer.from('raw')), encodeValue(null)]) expect(decodeValue(slimValue(v))).toEqual({});
    expect(decodeValue(slimValue(Buffer.from([0xc1])))).toEqual({}); // not msgpack at all
  });
});

// ---- property: splits and the index follow the scoped view -------------------------------------

type Op = { kind: 'wep'; node: number; pod: number; extra: number } | { kind: 'status'; name: number; node: number } | { kind: 'cfg'; node: number; v: number } | { kind: 'pool'; v: number } | { kind: 'del'; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('wep' as const), node: fc.nat(2), pod: fc.nat(4), extra: fc.nat(3) }),
  fc.record({ kind: fc.constant('status' as const), name: fc.nat(2), node: fc.nat(3) }),
  fc.record({ kind: fc.constant('cfg' as const), node: fc.nat(2), v: fc.nat(3) }),
  fc.record({ kind: fc.constant('pool' as const), v: fc.nat(3) }),
  fc.record({ kind: fc.constant('del' as const), pick: fc.nat(50) }),
);

function toUpdate(op: Op, held: readonly string[]): { key: string; value: Buffer | null } {
  switch (op.kind) {
    case 'wep': return { key: workloadEndpointKey(NODES[op.node] as string, 'demo', `p${op.pod}`), value: wep(op.pod, op.extra) };
    case 'status': return { key: `${NODE_STATUS_PREFIX}s${op.name}`, value: encodeValue({ spec: op.node === 3 ? {} : { node: NODES[op.node] }, status: {} }) };
    case 'cfg': return { key: hostConfigKey(NODES[op.node] as string, 'IpInIpTunnelAddr'), value: encodeValue(`10.1.0.${op.v}`) };
    case 'pool': return { key: ipPoolKey('10.0.0.0/16'), value: encodeValue({ cidr: '10.0.0.0/16', v: op.v }) };
    case 'del': return { key: held.length === 0 ? 'none' : (held[op.pick % held.length] as string), value: null };
  }
}

function stateOf(store: FeedStore): Map<string, Buffer> {
  return new Map([...store.current().entries()].map(([k, v]) => [k, v] as [string, Buffer]));
}

describe('scoped views (property)', () => {
  for (const feed of ['felix', 'tunnel-ip-allocation', 'node-status']) {
    it(`${feed}: shared part then own part turns N's view at r into N's view at r' for every node; the index's digest and count are N's view's`, () => {
      const p = policy(feed);
      fc.assert(
        fc.property(fc.array(fc.array(opArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 8 }), fc.nat(7), (batches, catchUpFrom) => {
          const store = new FeedStore({ feed, epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
          const index = new ScopeIndex(p, store as unknown as ServedStore);
          const states: Map<string, Buffer>[] = [stateOf(store)];
          for (const ops of batches) {
            const before = stateOf(store);
            const rev = store.revision;
            store.apply({ updates: ops.map((o) => toUpdate(o, [...stateOf(store).keys()])) }, 0);
            states[store.revision] = stateOf(store);
            const after = stateOf(store);
            const s = store.since(rev);
            if (s.kind !== 'delta') throw new Error('log');
            const split = splitChanges(p, s.upserts, s.deletes);
            for (const n of [...NODES, 'elsewhere']) {
              const view = scopedView(p, before, n);
              applySplit(view, split, n);
              expect(view).toEqual(scopedView(p, after, n));
              // Never another node's full value of a node-bound key.
              for (const [k, v] of after) {
                const owner = p.nodeOf(k, v);
                if (owner === undefined || owner === n) continue;
                if (p.others === 'omit') expect(view.has(k)).toBe(false);
                else expect(view.get(k)?.equals(slimValue(v))).toBe(true);
              }
              const want = scopedView(p, after, n);
              expect(index.digest(n).equals(computeDigest(want))).toBe(true);
              const at = index.shared();
              expect(index.nodePartAt(at, n).count).toBe(want.size);
            }
          }
          // A compacted catch-up from any older revision (resume) lands on the same views.
          const from = Math.min(catchUpFrom, store.revision);
          const s = store.since(from);
          if (s.kind === 'delta' && states[from] !== undefined) {
            const split = splitChanges(p, s.upserts, s.deletes);
            for (const n of NODES) {
              const view = scopedView(p, states[from] as Map<string, Buffer>, n);
              applySplit(view, split, n);
              expect(view).toEqual(scopedView(p, stateOf(store), n));
            }
          }
        }),
        { numRuns: 60 },
      );
    });
  }

  it('the node part holds exactly N\'s full entries in key order; its digest matches a view built from scratch', () => {
    const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef' });
    const p = policy('felix');
    const updates = [] as { key: string; value: Buffer }[];
    for (const n of NODES) for (let i = 0; i < 5; i++) updates.push({ key: workloadEndpointKey(n, 'demo', `p${i}`), value: wep(i, 2) });
    updates.push({ key: ipPoolKey('10.0.0.0/16'), value: encodeValue({ a: 1 }) });
    store.apply({ updates }, 0);
    const index = new ScopeIndex(p, store as unknown as ServedStore);
    const part = index.nodePartAt(index.shared(), 'n2');
    expect(part.entries.map(([k]) => k)).toEqual(updates.filter((u) => u.key.includes('/n2/')).map((u) => u.key).sort());
    const view: StoreEntry[] = [...scopedView(p, stateOf(store), 'n2')];
    expect(part.digest.equals(computeDigest(view))).toBe(true);
    expect(part.count).toBe(view.length);
    expect(index.shared().count).toBe(16);
  });

  it('bounds the per-node digest cache when HELLOs name ever new nodes on a quiet cluster, and its digests stay right', () => {
    const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 600_000 });
    store.apply({ updates: [{ key: workloadEndpointKey('n1', 'demo', 'p0'), value: wep(0, 2) }, { key: ipPoolKey('10.0.0.0/16'), value: encodeValue({ a: 1 }) }] }, 0);
    const index = new ScopeIndex(policy('felix'), store as unknown as ServedStore);
    const n1 = Buffer.from(index.digest('n1'));
    const nobody = Buffer.from(index.digest('nobody-0'));
    for (let i = 1; i <= MAX_CACHED_NODES + 10; i++) index.digest(`nobody-${i}`);
    expect(index.digestsCached).toBeLessThanOrEqual(MAX_CACHED_NODES);
    expect(index.digest('n1').equals(n1)).toBe(true);
    expect(index.digest('nobody-0').equals(nobody)).toBe(true);
  });

  it('forgets a node without entries once its last change is out of the delta log (no growth with node churn)', () => {
    const store = new FeedStore({ feed: 'felix', epoch: '0123456789abcdef', logMaxAgeMs: 1_000 });
    const index = new ScopeIndex(policy('felix'), store as unknown as ServedStore);
    const key = (n: string): string => workloadEndpointKey(n, 'demo', 'p0');
    // 50 nodes come and go, one after another, the log trimmed as time passes.
    for (let i = 0; i < 50; i++) {
      const t = i * 600;
      store.apply({ updates: [{ key: key(`gone-${i}`), value: wep(0, 2) }] }, t);
      index.nodeChangedAt('x'); // the index syncs when asked
      store.apply({ updates: [{ key: key(`gone-${i}`), value: null }] }, t + 1);
      store.trim(t + 1);
      index.nodeChangedAt('x'); // the index syncs when asked
    }
    store.apply({ updates: [{ key: key('stays'), value: wep(0, 2) }] }, 50 * 600);
    const removedAt = store.revision;
    expect(index.nodeChangedAt('stays')).toBe(removedAt);
    store.apply({ updates: [{ key: key('left'), value: wep(0, 2) }] }, 50 * 600);
    expect(index.nodeChangedAt('left')).toBe(store.revision);
    store.apply({ updates: [{ key: key('left'), value: null }] }, 50 * 600);
    const leftAt = store.revision;
    // Still in the log: remembered (a build older than it must not be reused for that node).
    expect(index.nodeChangedAt('left')).toBe(leftAt);
    expect(index.nodesTracked).toBeLessThanOrEqual(4);
    expect(index.nodeChangedAt('gone-0')).toBe(-1);
    // Out of the log: forgotten; the node with entries stays.
    store.trim(50 * 600 + 5_000);
    store.apply({ updates: [{ key: ipPoolKey('10.0.0.0/16'), value: encodeValue({ a: 1 }) }] }, 50 * 600 + 5_000);
    expect(index.nodeChangedAt('left')).toBe(-1);
    expect(index.nodeChangedAt('stays')).toBe(removedAt);
    expect(index.nodesTracked).toBe(1);
  });
});
