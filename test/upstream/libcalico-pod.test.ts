/**
 * Golden tests of Pod → v1 WorkloadEndpoint (`libcalico` projection). Every expected key and value
 * is written out by hand from libcalico-go's rules (conversion/workload_endpoint_default.go,
 * conversion.go, updateprocessors/workloadendpointprocessor.go, model/workloadendpoint.go), applied
 * to the fixtures (test/fixtures/README.md "Pod → WorkloadEndpoint facts").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { parseJson } from '../../src/server/upstream/json.js';
import { encodeValue, entryProjector } from '../../src/server/upstream/projections/index.js';
import { convertPod } from '../../src/server/upstream/projections/libcalico-workload-endpoint.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { fixturesDir } from '../support/fixtures.js';

const objectsDir = join(fixturesDir(), 'objects');
const load = (rel: string): KubeObject => parseJson(readFileSync(join(objectsDir, rel), 'utf8')) as KubeObject;
const pods = entryProjector(resource('pods'), 'libcalico');
const project = (o: KubeObject): Map<string, unknown> => new Map(pods.entries(o, 'unused'));
const clone = (o: KubeObject): KubeObject => structuredClone(o);

const DEMO_KEY = '/calico/v1/host/worker-1/workload/k8s/demo%2fweb-6d8f5b7c9d-x7k2p/endpoint/eth0';
const DEMO_WEP = {
  state: 'active',
  name: 'cali3afcc7b3011',
  active_instance_id: '',
  mac: null,
  profile_ids: ['kns.demo', 'ksa.demo.web'],
  ipv4_nets: ['192.168.226.66/32'],
  ipv6_nets: null,
  labels: {
    app: 'web',
    'pod-template-hash': '6d8f5b7c9d',
    'projectcalico.org/namespace': 'demo',
    'projectcalico.org/orchestrator': 'k8s',
    'projectcalico.org/serviceaccount': 'web',
  },
  ports: [{ name: 'http', protocol: 'tcp', port: 80 }],
  generate_name: 'web-6d8f5b7c9d-',
};

describe('libcalico Pod → WorkloadEndpoint', () => {
  it('converts the demo pod to exactly the v1 endpoint Felix gets (key, field names, order)', () => {
    const out = pods.entries(load('k8s/pod-deployment-running.constructed.json'), 'unused');
    expect(out).toHaveLength(1);
    const [key, value] = out[0] as [string, unknown];
    expect(key).toBe(DEMO_KEY);
    expect(value).toEqual(DEMO_WEP);
    // Struct order of model.WorkloadEndpoint, so equal endpoints encode to equal bytes.
    expect(Object.keys(value as object)).toEqual(Object.keys(DEMO_WEP));
  });

  it('converts the verbatim kind pod (no CNI annotations, default service account, no named ports)', () => {
    const out = project(load('k8s/pod-deployment-running.kind-v1.26.json'));
    const wep = out.get('/calico/v1/host/nodeport-worker/workload/k8s/test%2fecho-757d4cb97f-9gmf7/endpoint/eth0') as Record<string, unknown>;
    expect(wep['profile_ids']).toEqual(['kns.test', 'ksa.test.default']);
    expect(wep['ipv4_nets']).toEqual(['10.244.1.224/32']);
    expect(wep['ports']).toBeUndefined();
  });

  it('gives no endpoint for host-network pods, unscheduled pods and finished pods', () => {
    expect(project(load('k8s/pod-hostnetwork-calico-node.constructed.json')).size).toBe(0);
    expect(project(load('k8s/pod-hostnetwork-kube-controller-manager.ipdk-v1.24.json')).size).toBe(0);
    // Succeeded, though it still shows a podIP: a finished pod no longer owns its IP.
    expect(project(load('k8s/pod-succeeded.kind-v1.26.json')).size).toBe(0);
    const failed = clone(load('k8s/pod-deployment-running.constructed.json'));
    (failed['status'] as Record<string, unknown>)['phase'] = 'Failed';
    expect(project(failed).size).toBe(0);
    const unscheduled = clone(load('k8s/pod-deployment-running.constructed.json'));
    delete (unscheduled['spec'] as Record<string, unknown>)['nodeName'];
    expect(project(unscheduled).size).toBe(0);
    // Deleting an unscheduled pod names no key; a scheduled one names its endpoint even without IPs.
    expect(pods.deleteKeys(unscheduled, 'unused')).toEqual([]);
    expect(pods.deleteKeys(load('k8s/pod-succeeded.kind-v1.26.json'), 'unused')).toEqual([
      '/calico/v1/host/hostport-control-plane/workload/k8s/test%2fhostport-1/endpoint/eth0',
    ]);
  });

  it('walks the watch stream as Felix would: no endpoint until the CNI annotation, kept while terminating, gone at CNI DEL', () => {
    const lines = readFileSync(join(objectsDir, 'watch/watch-pods.constructed.ndjson'), 'utf8').split('\n').filter((l) => l.trim() !== '');
    const events = lines.map((l) => parseJson(l) as { type: string; object: KubeObject }).filter((e) => e.type === 'ADDED' || e.type === 'MODIFIED');
    const seen = events.map((e) => {
      const v = project(e.object).get(DEMO_KEY) as Record<string, unknown> | undefined;
      return v === undefined ? 'none' : (v['ipv4_nets'] as string[]).join(',');
    });
    // ADDED (unscheduled) → scheduled (no IP: the v3 WEP exists, the processor filters it) →
    // kubelet Pending → CNI annotations (IP from the annotation) → Running → Ready →
    // deletionTimestamp (annotation still set: terminating pods keep their endpoint) → CNI DEL ("").
    expect(seen).toEqual(['none', 'none', 'none', '192.168.226.66/32', '192.168.226.66/32', '192.168.226.66/32', '192.168.226.66/32', 'none']);
  });

  it('takes IPs from podIPs, podIP, then the Calico annotations, and splits dual-stack into ipv4_nets / ipv6_nets', () => {
    const base = (): KubeObject => clone(load('k8s/pod-deployment-running.constructed.json'));
    const dual = base();
    (dual['status'] as Record<string, unknown>)['podIPs'] = [{ ip: '192.168.226.66' }, { ip: 'fd00:10:244:0:0:0:0:5' }];
    const wep = project(dual).get(DEMO_KEY) as Record<string, unknown>;
    expect(wep['ipv4_nets']).toEqual(['192.168.226.66/32']);
    // Printed the way Go prints a parsed IPv6 address (RFC 5952 compression).
    expect(wep['ipv6_nets']).toEqual(['fd00:10:244::5/128']);

    const onlyPodIP = base();
    delete (onlyPodIP['status'] as Record<string, unknown>)['podIPs'];
    (onlyPodIP['status'] as Record<string, unknown>)['podIP'] = '192.168.226.99';
    expect((project(onlyPodIP).get(DEMO_KEY) as Record<string, unknown>)['ipv4_nets']).toEqual(['192.168.226.99/32']);

    const annotationOnly = base();
    delete (annotationOnly['status'] as Record<string, unknown>)['podIPs'];
    delete (annotationOnly['status'] as Record<string, unknown>)['podIP'];
    annotationOnly.metadata!.annotations!['cni.projectcalico.org/podIPs'] = '192.168.226.66/32,fd00::42/128';
    const fromAnnotation = project(annotationOnly).get(DEMO_KEY) as Record<string, unknown>;
    expect(fromAnnotation['ipv4_nets']).toEqual(['192.168.226.66/32']);
    expect(fromAnnotation['ipv6_nets']).toEqual(['fd00::42/128']);

    const singular = base();
    delete (singular['status'] as Record<string, unknown>)['podIPs'];
    delete (singular['status'] as Record<string, unknown>)['podIP'];
    delete singular.metadata!.annotations!['cni.projectcalico.org/podIPs'];
    singular.metadata!.annotations!['cni.projectcalico.org/podIP'] = '192.168.226.70/32';
    expect((project(singular).get(DEMO_KEY) as Record<string, unknown>)['ipv4_nets']).toEqual(['192.168.226.70/32']);

    // A malformed IP fails the conversion (libcalico returns an error): the view counts and skips it.
    const bad = base();
    (bad['status'] as Record<string, unknown>)['podIPs'] = [{ ip: 'not-an-ip' }];
    expect(() => convertPod(bad)).toThrow(/malformed IP/);
  });

  it('keeps named container and init-container ports only (lower-case protocol), drops unnamed host ports and unknown protocols', () => {
    const pod = clone(load('k8s/pod-deployment-running.constructed.json'));
    const spec = pod['spec'] as Record<string, unknown>;
    const containers = spec['containers'] as Record<string, unknown>[];
    (containers[0] as Record<string, unknown>)['ports'] = [
      { name: 'http', containerPort: 80, protocol: 'TCP' },
      { containerPort: 8080, hostPort: 18080, protocol: 'TCP' },
      { name: 'dns', containerPort: 53, protocol: 'UDP' },
      { name: 'noproto', containerPort: 81 },
      { name: 'weird', containerPort: 82, protocol: 'XTP' },
      { name: 'zero', containerPort: 0 },
    ];
    spec['initContainers'] = [{ name: 'init', image: 'x', ports: [{ name: 'sctp', containerPort: 9000, protocol: 'SCTP' }] }];
    expect((project(pod).get(DEMO_KEY) as Record<string, unknown>)['ports']).toEqual([
      { name: 'http', protocol: 'tcp', port: 80 },
      { name: 'dns', protocol: 'udp', port: 53 },
      { name: 'noproto', protocol: 'tcp', port: 81 },
      { name: 'sctp', protocol: 'sctp', port: 9000 },
    ]);
  });

  it('strips pcns./pcsa. labels, always labels the service account, honours the interface prefix, keeps network-status only', () => {
    const pod = clone(load('k8s/pod-deployment-running.constructed.json'));
    pod.metadata!.labels!['pcns.fake'] = 'x';
    pod.metadata!.labels!['pcsa.fake'] = 'y';
    const longSa = 's'.repeat(70);
    (pod['spec'] as Record<string, unknown>)['serviceAccountName'] = longSa;
    pod.metadata!.annotations!['k8s.v1.cni.cncf.io/network-status'] = '[]';
    const [[, value]] = convertPod(pod, { interfacePrefix: 'azv' }) as [[string, Record<string, unknown>]];
    expect(value['name']).toBe('azv3afcc7b3011');
    expect(value['labels']).toEqual({
      app: 'web',
      'pod-template-hash': '6d8f5b7c9d',
      'projectcalico.org/namespace': 'demo',
      'projectcalico.org/orchestrator': 'k8s',
      'projectcalico.org/serviceaccount': longSa,
    });
    expect(value['profile_ids']).toEqual(['kns.demo', `ksa.demo.${longSa}`]);
    expect(value['annotations']).toEqual({ 'k8s.v1.cni.cncf.io/network-status': '[]' });
  });

  it('maps floating IPs and allowed source prefixes', () => {
    const pod = clone(load('k8s/pod-deployment-running.constructed.json'));
    pod.metadata!.annotations!['cni.projectcalico.org/floatingIPs'] = '["203.0.113.7", "2001:db8::7"]';
    pod.metadata!.annotations!['cni.projectcalico.org/allowedSourcePrefixes'] = '["10.1.2.3/16"]';
    const value = project(pod).get(DEMO_KEY) as Record<string, unknown>;
    expect(value['ipv4_nat']).toEqual([{ int_ip: '192.168.226.66', ext_ip: '203.0.113.7' }]);
    expect(value['ipv6_nat']).toBeUndefined(); // no IPv6 pod IP to map it to
    expect(value['allow_spoofed_source_ips']).toEqual(['10.1.0.0/16']);
  });

  it('is byte-equal across status-only updates (conditions, restarts)', () => {
    const a = load('k8s/pod-deployment-running.constructed.json');
    const b = clone(a);
    (b['status'] as Record<string, unknown>)['conditions'] = [];
    b.metadata!.resourceVersion = '999999';
    expect(encodeValue(project(a).get(DEMO_KEY)).equals(encodeValue(project(b).get(DEMO_KEY)))).toBe(true);
  });
});
