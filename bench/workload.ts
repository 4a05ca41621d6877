/**
 * Deterministic, realistic values for codec benchmarks: Calico WorkloadEndpoint-like projections
 * encoded as plain msgpack maps (msgpackr, records off) — the bytes the store would hold. About
 * 400–600 bytes each; names, labels and IPs vary, namespaces and nodes repeat.
 */
import { Packr } from 'msgpackr';
import type { Entry } from '../proto/types.js';
import { seededRandom } from '../src/random.js';

const packr = new Packr({ useRecords: false });
const APPS = ['web', 'api', 'worker', 'cache', 'ingest', 'billing', 'search', 'auth', 'frontend', 'metrics'];

export function workloadEndpoint(i: number, rand: () => number, generation = 0): { key: string; value: Buffer } {
  const hex = (n: number): string => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');
  const ns = `team-${i % 97}`;
  const app = APPS[i % APPS.length] as string;
  const hash = hex(10);
  const pod = `${app}-${hash}-${hex(5)}`;
  const node = `worker-${(i * 7919) % 1000}`;
  const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const obj = {
    name: `${node}-k8s-${pod}-eth0`,
    namespace: ns,
    labels: {
      app,
      'pod-template-hash': hash,
      'projectcalico.org/namespace': ns,
      'projectcalico.org/orchestrator': 'k8s',
      'projectcalico.org/serviceaccount': `${app}-sa`,
      tier: rand() < 0.5 ? 'backend' : 'frontend',
    },
    node,
    orchestrator: 'k8s',
    workload: '',
    pod,
    endpoint: 'eth0',
    serviceAccountName: `${app}-sa`,
    ipNetworks: [`${ip}/32`],
    profiles: [`kns.${ns}`, `ksa.${ns}.${app}-sa`],
    interfaceName: `cali${hex(11)}`,
    mac: Array.from({ length: 6 }, () => hex(2)).join(':'),
    ports: rand() < 0.7 ? [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9090, protocol: 'TCP' }] : [],
    resourceVersion: String(1_000_000 + i * 3 + generation),
    generation,
  };
  return { key: `crd.projectcalico.org/workloadendpoints/${ns}/${obj.name}`, value: packr.pack(obj) };
}

/** `count` entries in ascending key order (UTF-8 byte order, as a snapshot sends them). */
export function snapshotEntries(count: number, seed = 1): Entry[] {
  const rand = seededRandom(seed);
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const { key, value } = workloadEndpoint(i, rand);
    out.push([key, value]);
  }
  return out.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
}

/** `count` changed values for keys of a snapshot (a delta's upserts). */
export function deltaUpserts(count: number, seed = 2): Entry[] {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const { key, value } = workloadEndpoint(i * 37, rand, 1);
    return [key, value] as const;
  });
}
