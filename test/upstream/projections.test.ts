import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { RESOURCES, resource, type ResourceDef } from '../../src/registry.js';
import { encodeValue, entryProjector, projector } from '../../src/server/upstream/projections/index.js';
import { parseJson } from '../../src/server/upstream/json.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { fixturesDir } from '../support/fixtures.js';
import { MsgReader } from '../../proto/msgpack.js';

const objectsDir = join(fixturesDir(), 'objects');
const load = (rel: string): KubeObject => parseJson(readFileSync(join(objectsDir, rel), 'utf8')) as KubeObject;
const calico = (id: string): ((o: KubeObject) => unknown) => projector(resource(id), 'calico');
const bytes = (v: unknown): Buffer | null => (v === null ? null : encodeValue(v));

describe('Pod → workload endpoint', () => {
  it('follows libcalico-go on the demo pod (name, interface, profiles, labels, IPs, ports)', () => {
    const wep = calico('pods')(load('k8s/pod-deployment-running.constructed.json')) as Record<string, unknown>;
    expect(wep).toMatchObject({
      name: 'worker--1-k8s-web--6d8f5b7c9d--x7k2p-eth0',
      namespace: 'demo',
      pod: 'web-6d8f5b7c9d-x7k2p',
      node: 'worker-1',
      interfaceName: 'cali3afcc7b3011',
      ipNetworks: ['192.168.226.66/32'],
      profiles: ['kns.demo', 'ksa.demo.web'],
      generateName: 'web-6d8f5b7c9d-',
      serviceAccountName: 'web',
    });
    expect(wep['labels']).toEqual({
      app: 'web',
      'pod-template-hash': '6d8f5b7c9d',
      'projectcalico.org/namespace': 'demo',
      'projectcalico.org/orchestrator': 'k8s',
      'projectcalico.org/serviceaccount': 'web',
    });
    expect(wep['ports']).toEqual([{ name: 'http', protocol: 'TCP', port: 80 }]);
    // No status, spec or managedFields leak through.
    expect(Object.keys(wep)).not.toContain('status');
    expect(JSON.stringify(wep)).not.toContain('managedFields');
  });

  it('skips host-network pods and finished pods', () => {
    expect(calico('pods')(load('k8s/pod-hostnetwork-calico-node.constructed.json'))).toBeNull();
    expect(calico('pods')(load('k8s/pod-hostnetwork-kube-controller-manager.ipdk-v1.24.json'))).toBeNull();
    // Succeeded, though it still shows a podIP.
    expect(calico('pods')(load('k8s/pod-succeeded.kind-v1.26.json'))).toBeNull();
  });

  it('turns the pod watch stream into exactly two changes: IP assigned, then CNI DEL', () => {
    const lines = readFileSync(join(objectsDir, 'watch/watch-pods.constructed.ndjson'), 'utf8').split('\n').filter((l) => l.trim() !== '');
    const events = lines.map((l) => parseJson(l) as { type: string; object: KubeObject }).filter((e) => e.type === 'ADDED' || e.type === 'MODIFIED');
    let prev: Buffer | null = null;
    const changes: { rv: string | undefined; value: unknown }[] = [];
    for (const e of events) {
      const value = bytes(calico('pods')(e.object));
      const same = value === null ? prev === null : prev !== null && prev.equals(value);
      if (!same) changes.push({ rv: e.object.metadata?.resourceVersion, value: value && decode(value) });
      prev = value;
    }
    expect(changes.map((c) => c.rv)).toEqual(['418452', '423597']);
    expect((changes[0]?.value as { ipNetworks: string[] }).ipNetworks).toEqual(['192.168.226.66/32']);
    expect(changes[1]?.value).toBeNull();
  });

  it('keeps status-only updates byte-identical', () => {
    const pod = load('k8s/pod-deployment-running.constructed.json');
    const a = bytes(calico('pods')(pod));
    const status = pod['status'] as Record<string, unknown>;
    status['conditions'] = [{ type: 'Ready', status: 'False', lastTransitionTime: '2026-05-01T00:00:00Z' }];
    status['containerStatuses'] = [{ name: 'web', restartCount: 9, ready: false }];
    pod.metadata = { ...pod.metadata, resourceVersion: '999999', managedFields: [] };
    expect(bytes(calico('pods')(pod))?.equals(a as Buffer)).toBe(true);
  });

  it('cuts the demo pod by at least 5x in bytes', () => {
    const text = JSON.stringify(JSON.parse(readFileSync(join(objectsDir, 'k8s/pod-deployment-running.constructed.json'), 'utf8')));
    const wep = bytes(calico('pods')(load('k8s/pod-deployment-running.constructed.json'))) as Buffer;
    expect(wep.length * 5).toBeLessThan(Buffer.byteLength(text));
  });
});

describe('Nodes, profiles, stripping', () => {
  it('keeps node labels, addresses, pod CIDRs and Calico annotations; heartbeats change nothing', () => {
    const node = load('k8s/node-worker-1.constructed.json');
    const projected = calico('nodes')(node) as { annotations: Record<string, string>; podCIDRs: string[]; addresses: unknown[]; labels: Record<string, string> };
    expect(projected.annotations['projectcalico.org/IPv4Address']).toBe('10.0.1.21/24');
    expect(Object.keys(projected.annotations).every((k) => k.startsWith('projectcalico.org/'))).toBe(true);
    expect(projected.podCIDRs).toEqual(['192.168.1.0/24']);
    expect(projected.addresses).toContainEqual({ type: 'InternalIP', address: '10.0.1.21' });
    const before = bytes(projected) as Buffer;
    const status = node['status'] as { conditions?: { lastHeartbeatTime?: string }[] };
    for (const c of status.conditions ?? []) c.lastHeartbeatTime = '2030-01-01T00:00:00Z';
    node.metadata = { ...node.metadata, resourceVersion: '1', annotations: { ...node.metadata?.annotations, 'node.alpha.kubernetes.io/ttl': '15' } };
    expect(bytes(calico('nodes')(node))?.equals(before)).toBe(true);
  });

  it('turns namespaces and service accounts into profiles', () => {
    expect(calico('namespaces')(load('k8s/namespace-demo.constructed.json'))).toMatchObject({ name: 'kns.demo', labelsToApply: { 'pcns.projectcalico.org/name': 'demo' } });
    expect(calico('serviceaccounts')(load('k8s/serviceaccount-web.constructed.json'))).toMatchObject({ name: 'ksa.demo.web', labelsToApply: { 'pcsa.projectcalico.org/name': 'web' } });
  });

  it('strips per-write noise from Calico objects and keeps CalicoNodeStatus status', () => {
    const cns = load('calico/caliconodestatus-my-caliconodestatus-1.adapted.json');
    const p = calico('caliconodestatuses.crd.projectcalico.org')(cns) as Record<string, unknown>;
    expect(p['status']).toBeDefined();
    const meta = p['metadata'] as Record<string, unknown>;
    for (const k of ['resourceVersion', 'generation', 'uid', 'managedFields', 'creationTimestamp']) expect(meta).not.toHaveProperty(k);
    const again = { ...cns, metadata: { ...cns.metadata, resourceVersion: '1', generation: 140 } };
    expect(bytes(calico('caliconodestatuses.crd.projectcalico.org')(again))?.equals(bytes(p) as Buffer)).toBe(true);
    // IPAMBlock sequence numbers stay exact (beyond 2^53).
    const block = calico('ipamblocks.crd.projectcalico.org')(load('calico/ipamblock-192-168-226-64-26.constructed.json')) as { spec: { sequenceNumber: unknown } };
    expect(typeof block.spec.sequenceNumber).toBe('string');
    const raw = readFileSync(join(objectsDir, 'calico/ipamblock-192-168-226-64-26.constructed.json'), 'utf8');
    expect(raw).toContain(String(block.spec.sequenceNumber));
  });

  it('projects list items (no kind/apiVersion) and watch objects to the same bytes', () => {
    const pod = load('k8s/pod-deployment-running.constructed.json');
    const { kind: _k, apiVersion: _a, ...item } = pod;
    for (const kind of ['calico', 'strip', 'raw'] as const) {
      const p = projector(resource('pods'), kind);
      expect(bytes(p(item))?.equals(bytes(p(pod)) as Buffer)).toBe(true);
    }
  });

  it('never throws on any fixture object, whatever the projection, and the strict decoder reads every value', () => {
    const dirs = ['k8s', 'calico'];
    let n = 0;
    for (const d of dirs) {
      for (const f of readdirSync(join(objectsDir, d))) {
        const obj = load(`${d}/${f}`);
        const def = RESOURCES.find((r: ResourceDef) => r.kind === obj.kind && (r.group === '' ? r.version : `${r.group}/${r.version}`) === obj.apiVersion);
        if (!def) continue;
        for (const kind of ['calico', 'strip', 'raw'] as const) {
          const v = projector(def, kind)(obj);
          if (v === null) continue;
          // Every value is plain msgpack the protocol's strict decoder accepts (no extensions,
          // integers within 2^53, depth ≤ 16, the whole buffer consumed).
          const encoded = encodeValue(v);
          const reader = new MsgReader(encoded);
          reader.read();
          expect(reader.remaining).toBe(0);
          n++;
        }
        // libcalico: any number of pairs per object, each value decodable the same way.
        for (const [, v] of entryProjector(def, 'libcalico').entries(obj, 'unused')) {
          const reader = new MsgReader(encodeValue(v));
          reader.read();
          expect(reader.remaining).toBe(0);
          n++;
        }
      }
    }
    expect(n).toBeGreaterThan(90);
  });
});

describe('encodeValue', () => {
  it('returns exact-size Buffers that own their memory (no pooled slab is pinned)', () => {
    const a = encodeValue({ a: 1 });
    const b = encodeValue({ b: 2 });
    for (const buf of [a, b]) {
      expect(buf.byteOffset).toBe(0);
      expect(buf.buffer.byteLength).toBe(buf.length);
    }
    expect(a.buffer).not.toBe(b.buffer);
    expect(encodeValue({ u: undefined })).toEqual(encodeValue({ u: null }));
  });
});
