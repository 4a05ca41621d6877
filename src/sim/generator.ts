/**
 * The seeded cluster generator: a Calico-on-kubeadm cluster shaped like the fixtures' demo cluster
 * (real objects' shapes as Kubernetes and Calico v3.31 write them), scaled to N nodes × M pods per node.
 *
 * Everything random comes from {@link Rng} (same seed, same cluster) and timestamps from a fixed
 * epoch, so two runs with one seed produce byte-identical objects. Pods are 2-7 KB of JSON with
 * spec, status and managedFields; every node runs a host-network calico-node pod, and a few pods
 * have finished (Succeeded), because projections must skip or handle both.
 */
import type { JsonObject } from './encode.js';
import { Rng } from './rng.js';

export interface GeneratorOptions {
  nodes: number;
  podsPerNode: number;
  seed: number;
  /** Creation time of the cluster's objects (fixed so output is reproducible). @default 2026-04-14T08:00:00Z */
  epochMs?: number;
}

/** What the churn driver needs to know about the generated cluster. */
export interface ClusterModel {
  nodes: string[];
  apps: AppModel[];
  /** Pod IPs per node are `podIp(nodeIndex, slot)`; slots up to `slotsPerNode`. */
  slotsPerNode: number;
}

export interface AppModel {
  namespace: string;
  name: string;
  hash: string;
  serviceAccount: string;
  containers: number;
  envVars: number;
  extraLabels: Record<string, string>;
  /** UID of the app's ReplicaSet (shared by its pods' ownerReferences). */
  rsUid: string;
}

/** A pod rendered from a per-app template (see {@link renderPod}): the text plus what the store indexes. */
export interface RenderedObject {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  nodeName: string;
  /** The wire JSON with metadata.resourceVersion set to `rv`. */
  render(rv: string): string;
  /** The same as pre-encoded template parts and filled-in strings (copied straight into storage). */
  chunks(rv: string): (Buffer | string)[];
}

/** One generated object: either a plain object (encoded by the store) or a pre-rendered pod. */
export interface GeneratedObject {
  resource: string;
  object?: JsonObject;
  rendered?: RenderedObject;
}

/** The object as JSON, whichever form it was generated in (tests, tools). */
export function generatedJson(g: GeneratedObject): JsonObject {
  return g.object ?? (JSON.parse((g.rendered as RenderedObject).render('0')) as JsonObject);
}

const POOL_BASE = (172 << 24) | (16 << 16); // 172.16.0.0/12, /26 blocks

function ip(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function nodeIp(i: number): string {
  return ip((10 << 24) | (i + 10));
}

export function podIp(model: Pick<ClusterModel, 'slotsPerNode'>, nodeIndex: number, slot: number): string {
  return ip(POOL_BASE + nodeIndex * model.slotsPerNode + slot);
}

function ts(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const IMAGES = ['nginx:1.27.4', 'redis:7.2.5', 'envoyproxy/envoy:v1.31.2', 'registry.k8s.io/pause:3.10', 'busybox:1.36.1', 'python:3.12-slim', 'ghcr.io/acme/api:2.14.0'];
const TEAMS = ['payments', 'search', 'identity', 'checkout', 'catalog', 'billing', 'ml', 'edge'];
const TIERS = ['frontend', 'backend', 'cache', 'worker'];

/** The kube-controller-manager's managedFields entry for a Deployment pod (fieldsV1 keys sorted). */
const kcmFieldsCache = new WeakMap<AppModel, JsonObject>();

/** The kube-controller-manager's fieldsV1 is the same for every pod of an app: built once (generation speed). */
function kcmFields(app: AppModel, rsUid: string): JsonObject {
  const hit = kcmFieldsCache.get(app);
  if (hit) return hit;
  const labels: JsonObject = { '.': {}, 'f:app': {}, 'f:pod-template-hash': {} };
  for (const k of Object.keys(app.extraLabels)) labels[`f:${k}`] = {};
  const containers: JsonObject = { '.': {} };
  for (let c = 0; c < app.containers; c++) {
    containers[`k:{"name":"${c === 0 ? app.name : `sidecar-${c}`}"}`] = {
      '.': {}, 'f:env': app.envVars > 0 ? { '.': {} } : undefined, 'f:image': {}, 'f:imagePullPolicy': {}, 'f:name': {},
      'f:resources': c === 0 ? { '.': {}, 'f:limits': { '.': {}, 'f:memory': {} }, 'f:requests': { '.': {}, 'f:cpu': {}, 'f:memory': {} } } : {},
      'f:terminationMessagePath': {}, 'f:terminationMessagePolicy': {},
    };
  }
  const fields: JsonObject = {
    'f:metadata': { 'f:generateName': {}, 'f:labels': labels, 'f:ownerReferences': { '.': {}, [`k:{"uid":"${rsUid}"}`]: {} } },
    'f:spec': { 'f:containers': containers, 'f:dnsPolicy': {}, 'f:enableServiceLinks': {}, 'f:restartPolicy': {}, 'f:schedulerName': {}, 'f:securityContext': {}, 'f:serviceAccount': {}, 'f:serviceAccountName': {}, 'f:terminationGracePeriodSeconds': {} },
  };
  kcmFieldsCache.set(app, fields);
  return fields;
}

/** managedFields of a Deployment pod: controller-manager, calico (status subresource), kubelet (status). */
function podManagedFields(app: AppModel, rsUid: string, created: string, annotated: string, ready: string, podIpStr: string): unknown[] {
  return [
    { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: created, fieldsType: 'FieldsV1', fieldsV1: kcmFields(app, rsUid) },
    {
      manager: 'calico', operation: 'Update', apiVersion: 'v1', time: annotated, fieldsType: 'FieldsV1',
      fieldsV1: { 'f:metadata': { 'f:annotations': { '.': {}, 'f:cni.projectcalico.org/containerID': {}, 'f:cni.projectcalico.org/podIP': {}, 'f:cni.projectcalico.org/podIPs': {} } } },
      subresource: 'status',
    },
    {
      manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: ready, fieldsType: 'FieldsV1',
      fieldsV1: {
        'f:status': {
          'f:conditions': Object.fromEntries(['ContainersReady', 'Initialized', 'PodReadyToStartContainers', 'Ready'].map((t) => [`k:{"type":"${t}"}`, { '.': {}, 'f:lastProbeTime': {}, 'f:lastTransitionTime': {}, 'f:status': {}, 'f:type': {} }])),
          'f:containerStatuses': {}, 'f:hostIP': {}, 'f:hostIPs': {}, 'f:phase': {}, 'f:podIP': {}, 'f:podIPs': { '.': {}, [`k:{"ip":"${podIpStr}"}`]: { '.': {}, 'f:ip': {} } }, 'f:startTime': {},
        },
      },
      subresource: 'status',
    },
  ];
}

export interface PodParams {
  app: AppModel;
  name: string;
  uid: string;
  nodeName: string;
  hostIp: string;
  podIp: string;
  createdMs: number;
  phase: 'Running' | 'Succeeded' | 'Pending';
  rng: Rng;
  /** Timestamp strings instead of ones derived from createdMs (templates pass placeholders). */
  times?: { created: string; started: string; ready: string };
}

/** A Deployment pod in struct field order (the shape of pod-deployment-running.constructed.json). */
export function makePod(p: PodParams): JsonObject {
  const { app, rng } = p;
  const created = p.times?.created ?? ts(p.createdMs);
  const started = p.times?.started ?? ts(p.createdMs + 2_000);
  const ready = p.times?.ready ?? ts(p.createdMs + 6_000);
  const rsUid = app.rsUid;
  const volume = `kube-api-access-${rng.suffix(5)}`;
  const mount = { name: volume, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' };
  const containers: JsonObject[] = [];
  const statuses: JsonObject[] = [];
  const finished = p.phase === 'Succeeded';
  for (let c = 0; c < app.containers; c++) {
    const name = c === 0 ? app.name : `sidecar-${c}`;
    const image = c === 0 ? IMAGES[app.name.length % IMAGES.length] : IMAGES[(c + 3) % IMAGES.length];
    const env = Array.from({ length: c === 0 ? app.envVars : 0 }, (_, i) => ({ name: `${app.name.toUpperCase().replace(/-/g, '_')}_SETTING_${i}`, value: `value-${i}-${app.hash}` }));
    containers.push({
      name, image,
      ports: c === 0 ? [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] : undefined,
      env: env.length > 0 ? env : undefined,
      resources: c === 0 ? { limits: { memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } } : {},
      volumeMounts: [mount],
      readinessProbe: c === 0 ? { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 5, successThreshold: 1, failureThreshold: 3 } : undefined,
      terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
    });
    const cid = `containerd://${rng.hex(64)}`;
    statuses.push({
      name,
      state: finished ? { terminated: { exitCode: 0, reason: 'Completed', startedAt: started, finishedAt: ready, containerID: cid } } : p.phase === 'Running' ? { running: { startedAt: started } } : { waiting: { reason: 'ContainerCreating' } },
      lastState: {}, ready: p.phase === 'Running', restartCount: 0, image: `docker.io/library/${image}`,
      imageID: `docker.io/library/${(image ?? '').split(':')[0]}@sha256:${rng.hex(64)}`, containerID: cid, started: p.phase === 'Running',
      volumeMounts: c === 0 ? [{ name: volume, mountPath: mount.mountPath, readOnly: true, recursiveReadOnly: 'Disabled' }] : undefined,
    });
  }
  const cond = (type: string, ok: boolean, at: string, reason?: string): JsonObject => ({ type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: at, reason });
  const running = p.phase === 'Running';
  return {
    kind: 'Pod', apiVersion: 'v1',
    metadata: {
      name: p.name, generateName: `${app.name}-${app.hash}-`, namespace: app.namespace, uid: p.uid, resourceVersion: '0', creationTimestamp: created,
      labels: { app: app.name, 'pod-template-hash': app.hash, ...app.extraLabels },
      annotations: {
        'cni.projectcalico.org/containerID': rng.hex(64),
        'cni.projectcalico.org/podIP': finished ? '' : `${p.podIp}/32`,
        'cni.projectcalico.org/podIPs': finished ? '' : `${p.podIp}/32`,
      },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${app.name}-${app.hash}`, uid: rsUid, controller: true, blockOwnerDeletion: true }],
      managedFields: podManagedFields(app, rsUid, created, started, ready, p.podIp),
    },
    spec: {
      volumes: [{ name: volume, projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } }], defaultMode: 420 } }],
      containers,
      restartPolicy: finished ? 'Never' : 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst',
      serviceAccountName: app.serviceAccount, serviceAccount: app.serviceAccount, nodeName: p.nodeName, securityContext: {}, schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: p.phase,
      conditions: [
        cond('PodReadyToStartContainers', p.phase !== 'Pending', started),
        cond('Initialized', true, created, finished ? 'PodCompleted' : undefined),
        cond('Ready', running, ready, finished ? 'PodCompleted' : undefined),
        cond('ContainersReady', running, ready, finished ? 'PodCompleted' : undefined),
        cond('PodScheduled', true, created),
      ],
      hostIP: p.hostIp, hostIPs: [{ ip: p.hostIp }],
      podIP: p.phase === 'Pending' ? undefined : p.podIp, podIPs: p.phase === 'Pending' ? undefined : [{ ip: p.podIp }],
      startTime: created, containerStatuses: statuses, qosClass: 'Burstable',
    },
  };
}

/**
 * Pod templates: generation speed. Encoding 150,000 pod objects costs tens of CPU-seconds
 * (building the object, JSON.stringify, escaping); a pod of a given app and phase differs from its
 * siblings only in a few strings. So each (app, phase) is built once through {@link makePod} with
 * placeholders — a recording Rng returns a placeholder per random call — and every pod is that text
 * with the placeholders filled. Random values are drawn in the recorded call order, so the output is
 * byte-identical to encoding `makePod` with the same Rng (tested).
 */
const MARK = '\\u0001'; // JSON.stringify writes U+0001 as this 6-character escape
const ph = (token: string): string => `\u0001${token}\u0001`;

class RecordingRng extends Rng {
  readonly calls: { kind: 'h' | 's' | 'u'; n: number }[] = [];
  constructor() {
    super(0);
  }
  private rec(kind: 'h' | 's' | 'u', n: number): string {
    this.calls.push({ kind, n });
    return ph(`r${this.calls.length - 1}`);
  }
  override hex(n: number): string {
    return this.rec('h', n);
  }
  override suffix(n: number): string {
    return this.rec('s', n);
  }
  override uuid(): string {
    return this.rec('u', 0);
  }
}

interface PodTemplate {
  parts: string[];
  /** parts[2i] as UTF-8, for {@link RenderedObject.chunks}. */
  literals: Buffer[];
  calls: { kind: 'h' | 's' | 'u'; n: number }[];
}

const podTemplates = new WeakMap<AppModel, Map<string, PodTemplate>>();

function podTemplate(app: AppModel, phase: PodParams['phase'], encode: (o: JsonObject) => string): PodTemplate {
  let byPhase = podTemplates.get(app);
  if (!byPhase) podTemplates.set(app, (byPhase = new Map()));
  const hit = byPhase.get(phase);
  if (hit) return hit;
  const rng = new RecordingRng();
  const obj = makePod({
    app, phase, rng, createdMs: 0,
    name: ph('p:name'), uid: ph('p:uid'), nodeName: ph('p:node'), hostIp: ph('p:hostIp'), podIp: ph('p:podIp'),
    times: { created: ph('p:t0'), started: ph('p:t1'), ready: ph('p:t2') },
  });
  (obj['metadata'] as JsonObject)['resourceVersion'] = ph('p:rv');
  const parts = encode(obj).split(MARK);
  const t: PodTemplate = { parts, literals: parts.map((x, i) => (i % 2 === 0 ? Buffer.from(x) : Buffer.alloc(0))), calls: rng.calls };
  byPhase.set(phase, t);
  return t;
}

/** {@link makePod}, rendered from the app's template. `encode` is the store's encoder for pods. */
export function renderPod(p: PodParams, encode: (o: JsonObject) => string): RenderedObject {
  const t = podTemplate(p.app, p.phase, encode);
  const vals = t.calls.map((c) => (c.kind === 'h' ? p.rng.hex(c.n) : c.kind === 's' ? p.rng.suffix(c.n) : p.rng.uuid()));
  const params: Record<string, string> = {
    name: p.name, uid: p.uid, node: p.nodeName, hostIp: p.hostIp, podIp: p.podIp,
    t0: p.times?.created ?? ts(p.createdMs), t1: p.times?.started ?? ts(p.createdMs + 2_000), t2: p.times?.ready ?? ts(p.createdMs + 6_000),
  };
  const labels = { app: p.app.name, 'pod-template-hash': p.app.hash, ...p.app.extraLabels };
  const value = (tok: string, rv: string): string => (tok.charCodeAt(0) === 114 /* r */ ? (vals[Number(tok.slice(1))] as string) : tok === 'p:rv' ? rv : (params[tok.slice(2)] as string));
  return {
    namespace: p.app.namespace, name: p.name, labels, nodeName: p.nodeName,
    chunks(rv: string): (Buffer | string)[] {
      const out: (Buffer | string)[] = [t.literals[0] as Buffer];
      for (let i = 1; i < t.parts.length; i += 2) out.push(value(t.parts[i] as string, rv), t.literals[i + 1] as Buffer);
      return out;
    },
    render(rv: string): string {
      const parts = t.parts;
      let out = parts[0] as string;
      for (let i = 1; i < parts.length; i += 2) {
        const tok = parts[i] as string;
        out += value(tok, rv) + (parts[i + 1] as string);
      }
      return out;
    },
  };
}

function calicoNodePod(node: string, i: number, createdMs: number, rng: Rng): JsonObject {
  const created = ts(createdMs);
  const hostIp = nodeIp(i);
  const env = [
    ['DATASTORE_TYPE', 'kubernetes'], ['WAIT_FOR_DATASTORE', 'true'], ['CALICO_NETWORKING_BACKEND', 'bird'], ['CLUSTER_TYPE', 'k8s,bgp'],
    ['IP', 'autodetect'], ['CALICO_IPV4POOL_IPIP', 'Always'], ['FELIX_IPINIPMTU', '0'], ['CALICO_DISABLE_FILE_LOGGING', 'true'],
    ['FELIX_DEFAULTENDPOINTTOHOSTACTION', 'ACCEPT'], ['FELIX_IPV6SUPPORT', 'false'], ['FELIX_HEALTHENABLED', 'true'],
  ].map(([name, value]) => ({ name, value }));
  env.push({ name: 'NODENAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } } } as never);
  const mounts = ['lib-modules', 'xtables-lock', 'policysync', 'var-run-calico', 'var-lib-calico', 'cni-net-dir', 'cni-log-dir'].map((n) => ({ name: n, mountPath: `/var/run/${n}` }));
  return {
    kind: 'Pod', apiVersion: 'v1',
    metadata: {
      name: `calico-node-${rng.suffix(5)}`, generateName: 'calico-node-', namespace: 'kube-system', uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created,
      labels: { 'controller-revision-hash': '6b9c8d7f4', 'k8s-app': 'calico-node', 'pod-template-generation': '1' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'calico-node', uid: '5d3b6c1e-7a0f-4e2b-9c6d-2f1a8e4b7c90', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      volumes: mounts.map((m) => ({ name: m.name, hostPath: { path: m.mountPath, type: '' } })),
      initContainers: [{ name: 'install-cni', image: 'docker.io/calico/cni:v3.31.7', command: ['/opt/cni/bin/install'], resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent', securityContext: { privileged: true } }],
      containers: [{ name: 'calico-node', image: 'docker.io/calico/node:v3.31.7', env, resources: { requests: { cpu: '250m' } }, volumeMounts: mounts, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent', securityContext: { privileged: true } }],
      restartPolicy: 'Always', terminationGracePeriodSeconds: 0, dnsPolicy: 'ClusterFirst', nodeSelector: { 'kubernetes.io/os': 'linux' },
      serviceAccountName: 'calico-node', serviceAccount: 'calico-node', nodeName: node, hostNetwork: true, securityContext: {},
      affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } } },
      schedulerName: 'default-scheduler', tolerations: [{ operator: 'Exists', effect: 'NoSchedule' }, { key: 'CriticalAddonsOnly', operator: 'Exists' }, { operator: 'Exists', effect: 'NoExecute' }],
      priorityClassName: 'system-node-critical', priority: 2000001000, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {
      phase: 'Running',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: created })),
      hostIP: hostIp, hostIPs: [{ ip: hostIp }], podIP: hostIp, podIPs: [{ ip: hostIp }], startTime: created,
      containerStatuses: [{ name: 'calico-node', state: { running: { startedAt: created } }, lastState: {}, ready: true, restartCount: 0, image: 'docker.io/calico/node:v3.31.7', imageID: `docker.io/calico/node@sha256:${rng.hex(64)}`, containerID: `containerd://${rng.hex(64)}`, started: true }],
      qosClass: 'Burstable',
    },
  };
}

function makeNode(name: string, i: number, createdMs: number, heartbeatMs: number, rng: Rng, slotsPerNode: number): JsonObject {
  const created = ts(createdMs);
  const hb = ts(heartbeatMs);
  const addr = nodeIp(i);
  const tunnel = podIp({ slotsPerNode }, i, 0);
  const cond = (type: string, status: string, reason: string, message: string): JsonObject => ({ type, status, lastHeartbeatTime: hb, lastTransitionTime: created, reason, message });
  return {
    kind: 'Node', apiVersion: 'v1',
    metadata: {
      name, uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created,
      labels: { 'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'topology.kubernetes.io/zone': `zone-${i % 3}` },
      annotations: {
        'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///var/run/containerd/containerd.sock',
        'node.alpha.kubernetes.io/ttl': '0',
        'projectcalico.org/IPv4Address': `${addr}/16`,
        'projectcalico.org/IPv4IPIPTunnelAddr': tunnel,
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
      },
      managedFields: [
        { manager: 'calico-node', operation: 'Update', apiVersion: 'v1', time: created, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:annotations': { 'f:projectcalico.org/IPv4Address': {}, 'f:projectcalico.org/IPv4IPIPTunnelAddr': {} } } }, subresource: 'status' },
        { manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: hb, fieldsType: 'FieldsV1', fieldsV1: { 'f:status': { 'f:conditions': { 'k:{"type":"DiskPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"MemoryPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"PIDPressure"}': { 'f:lastHeartbeatTime': {} }, 'k:{"type":"Ready"}': { 'f:lastHeartbeatTime': {} } } } }, subresource: 'status' },
      ],
    },
    spec: { podCIDR: `10.${100 + (i >> 8)}.${i & 255}.0/24`, podCIDRs: [`10.${100 + (i >> 8)}.${i & 255}.0/24`] },
    status: {
      capacity: { cpu: '16', 'ephemeral-storage': '101430960Ki', 'hugepages-2Mi': '0', memory: '65842256Ki', pods: '110' },
      allocatable: { cpu: '16', 'ephemeral-storage': '93478772582', 'hugepages-2Mi': '0', memory: '65739856Ki', pods: '110' },
      conditions: [
        { type: 'NetworkUnavailable', status: 'False', lastHeartbeatTime: created, lastTransitionTime: created, reason: 'CalicoIsUp', message: 'Calico is running on this node' },
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      addresses: [{ type: 'InternalIP', address: addr }, { type: 'Hostname', address: name }],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: { machineID: rng.hex(32), systemUUID: rng.uuid(), bootID: rng.uuid(), kernelVersion: '5.15.0-136-generic', osImage: 'Ubuntu 22.04.5 LTS', containerRuntimeVersion: 'containerd://1.7.27', kubeletVersion: 'v1.32.4', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'amd64' },
      images: IMAGES.map((im) => ({ names: [`docker.io/library/${im.split(':')[0]}@sha256:${rng.hex(64)}`, `docker.io/library/${im}`], sizeBytes: rng.int(2_000_000, 90_000_000) })),
    },
  };
}

/** Calico CR metadata in the v1 storage form: v3 metadata inside the projectcalico.org/metadata annotation. */
function calicoMeta(name: string, created: string, rng: Rng, extra: JsonObject = {}, v3Labels?: Record<string, string>): JsonObject {
  const v3: JsonObject = { creationTimestamp: created };
  if (v3Labels) v3['labels'] = v3Labels;
  return { name, uid: rng.uuid(), resourceVersion: '0', generation: 1, creationTimestamp: created, annotations: { 'projectcalico.org/metadata': JSON.stringify(v3) }, ...extra };
}

const CALICO_AV = 'crd.projectcalico.org/v1';

/**
 * Generates the cluster lazily (150,000 pods as live JS objects would need gigabytes; each object
 * is yielded, encoded by the caller and dropped). `model` is complete once `objects` is exhausted.
 */
export function generateCluster(o: GeneratorOptions, encodePod: (o: JsonObject) => string = (x) => JSON.stringify(x)): { objects: Iterable<GeneratedObject>; model: ClusterModel } {
  const slotsPerNode = Math.max(64, Math.ceil((o.podsPerNode + 2) / 64) * 64);
  const nodes = Array.from({ length: o.nodes }, (_, i) => `node-${String(i + 1).padStart(4, '0')}`);
  const model: ClusterModel = { nodes, apps: [], slotsPerNode };
  return { objects: generate(o, model, encodePod), model };
}

const mk = (resource: string, object: JsonObject): GeneratedObject => ({ resource, object });

function* generate(o: GeneratorOptions, model: ClusterModel, encodePod: (o: JsonObject) => string): Generator<GeneratedObject> {
  const { nodes, slotsPerNode, apps } = model;
  const rng = new Rng(o.seed);
  const epoch = o.epochMs ?? Date.UTC(2026, 3, 14, 8, 0, 0);
  const created = ts(epoch);

  // Namespaces and service accounts.
  const appNamespaces = Array.from({ length: Math.min(200, Math.max(2, Math.ceil(o.nodes / 10))) }, (_, i) => `${TEAMS[i % TEAMS.length]}-${Math.floor(i / TEAMS.length) + 1}`);
  for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease', ...appNamespaces]) {
    yield mk('namespaces', { kind: 'Namespace', apiVersion: 'v1', metadata: { name: ns, uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created, labels: { 'kubernetes.io/metadata.name': ns } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    yield mk('serviceaccounts', { kind: 'ServiceAccount', apiVersion: 'v1', metadata: { name: 'default', namespace: ns, uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created } });
  }
  yield mk('serviceaccounts', { kind: 'ServiceAccount', apiVersion: 'v1', metadata: { name: 'calico-node', namespace: 'kube-system', uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created } });

  // Apps: a Deployment's worth of metadata, a service account, a Service and a NetworkPolicy each.
  for (const ns of appNamespaces) {
    const n = rng.int(2, 6);
    for (let a = 0; a < n; a++) {
      const name = `${TIERS[a % TIERS.length]}-${rng.suffix(3)}`;
      const extraLabels: Record<string, string> = { tier: TIERS[a % TIERS.length] as string, team: ns.split('-')[0] as string };
      for (let l = rng.int(0, 4); l > 0; l--) extraLabels[`example.com/label-${l}`] = rng.suffix(6);
      const app: AppModel = { namespace: ns, name, hash: rng.suffix(10), rsUid: rng.uuid(), serviceAccount: name, containers: rng.chance(0.75) ? 1 : 2, envVars: rng.chance(0.3) ? 0 : rng.int(1, 7), extraLabels };
      apps.push(app);
      yield mk('serviceaccounts', { kind: 'ServiceAccount', apiVersion: 'v1', metadata: { name, namespace: ns, uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created } });
      yield mk('networkpolicies.networking.k8s.io', {
        kind: 'NetworkPolicy', apiVersion: 'networking.k8s.io/v1',
        metadata: { name: `${name}-allow-frontend`, namespace: ns, uid: rng.uuid(), resourceVersion: '0', generation: 1, creationTimestamp: created },
        spec: { podSelector: { matchLabels: { app: name } }, ingress: [{ from: [{ podSelector: { matchLabels: { tier: 'frontend' } } }], ports: [{ protocol: 'TCP', port: 8080 }] }], policyTypes: ['Ingress'] },
      });
    }
  }

  // Nodes, their calico-node pod and app pods. Pod names end in random suffixes, so key order
  // (the order of lists and initial watch events) differs from creation (RV) order.
  const usedNames = new Set<string>();
  const podsByApp = new Map<AppModel, { ip: string; node: string; name: string; uid: string }[]>();
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i] as string;
    yield mk('nodes', makeNode(node, i, epoch, epoch + 3_600_000, rng, slotsPerNode));
    if (o.podsPerNode === 0) continue;
    yield mk('pods', calicoNodePod(node, i, epoch + 60_000, rng));
    for (let s = 1; s < o.podsPerNode; s++) {
      const app = rng.pick(apps);
      const phase = rng.chance(0.03) ? 'Succeeded' : 'Running';
      let name = `${app.name}-${app.hash}-${rng.suffix(5)}`;
      while (usedNames.has(name)) name = `${app.name}-${app.hash}-${rng.suffix(5)}`;
      usedNames.add(name);
      const uid = rng.uuid();
      const pip = podIp({ slotsPerNode }, i, s + 1);
      yield { resource: 'pods', rendered: renderPod({ app, name, uid, nodeName: node, hostIp: nodeIp(i), podIp: pip, createdMs: epoch + 120_000 + s * 1_000, phase, rng }, encodePod) };
      if (phase === 'Running') {
        let l = podsByApp.get(app);
        if (!l) podsByApp.set(app, (l = []));
        l.push({ ip: pip, node, name, uid });
      }
    }
  }

  // Services and EndpointSlices (at most 100 endpoints per slice, as the controller does).
  for (const app of apps) {
    const clusterIp = `10.96.${rng.int(0, 255)}.${rng.int(1, 254)}`;
    yield mk('services', {
      kind: 'Service', apiVersion: 'v1',
      metadata: { name: app.name, namespace: app.namespace, uid: rng.uuid(), resourceVersion: '0', creationTimestamp: created, labels: { app: app.name } },
      spec: { ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 'http' }], selector: { app: app.name }, clusterIP: clusterIp, clusterIPs: [clusterIp], type: 'ClusterIP', sessionAffinity: 'None', ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', internalTrafficPolicy: 'Cluster' },
      status: { loadBalancer: {} },
    });
    const eps = podsByApp.get(app) ?? [];
    for (let start = 0; start === 0 || start < eps.length; start += 100) {
      yield mk('endpointslices.discovery.k8s.io', {
        kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1',
        metadata: {
          name: `${app.name}-${rng.suffix(5)}`, generateName: `${app.name}-`, namespace: app.namespace, uid: rng.uuid(), resourceVersion: '0', generation: 1, creationTimestamp: created,
          labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io', 'kubernetes.io/service-name': app.name },
        },
        addressType: 'IPv4',
        endpoints: eps.slice(start, start + 100).map((e) => ({ addresses: [e.ip], conditions: { ready: true, serving: true, terminating: false }, targetRef: { kind: 'Pod', namespace: app.namespace, name: e.name, uid: e.uid }, nodeName: e.node })),
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
      });
    }
  }

  // The default Calico objects written by calico-node and kube-controllers.
  yield mk('clusterinformations.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'ClusterInformation', metadata: calicoMeta('default', created, rng), spec: { calicoVersion: 'v3.31.7', clusterGUID: rng.hex(32), clusterType: 'k8s,bgp,kubeadm,kdd', datastoreReady: true } });
  yield mk('felixconfigurations.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'FelixConfiguration', metadata: calicoMeta('default', created, rng), spec: { bpfConnectTimeLoadBalancing: 'TCP', bpfHostNetworkedNATWithoutCTLB: 'Enabled', bpfLogLevel: '', floatingIPs: 'Disabled', logSeverityScreen: 'Info', reportingInterval: '0s' } });
  yield mk('bgpconfigurations.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'BGPConfiguration', metadata: calicoMeta('default', created, rng), spec: { asNumber: 64512, logSeverityScreen: 'Info', nodeToNodeMeshEnabled: true, serviceLoadBalancerAggregation: 'Enabled' } });
  yield mk('kubecontrollersconfigurations.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'KubeControllersConfiguration', metadata: calicoMeta('default', created, rng), spec: { controllers: { node: { hostEndpoint: { autoCreate: 'Enabled' }, reconcilerPeriod: '5m0s', syncLabels: 'Enabled' }, policy: { reconcilerPeriod: '5m0s' } }, etcdV3CompactionPeriod: '10m0s', healthChecks: 'Enabled', logSeverityScreen: 'Info' } });
  for (const [name, order, action] of [['adminnetworkpolicy', 1000, 'Pass'], ['default', 1_000_000, 'Deny'], ['baselineadminnetworkpolicy', 10_000_000, 'Pass']] as const) {
    yield mk('tiers.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'Tier', metadata: calicoMeta(name, created, rng), spec: { defaultAction: action, order } });
  }
  yield mk('ippools.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'IPPool', metadata: calicoMeta('default-ipv4-ippool', created, rng), spec: { allowedUses: ['Workload', 'Tunnel'], assignmentMode: 'Automatic', blockSize: 26, cidr: '172.16.0.0/12', ipipMode: 'Always', natOutgoing: true, nodeSelector: 'all()', vxlanMode: 'Never' } });
  yield mk('globalnetworkpolicies.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'GlobalNetworkPolicy', metadata: calicoMeta('default.deny-external-db', created, rng), spec: { tier: 'default', order: 100, selector: "role == 'database'", types: ['Ingress'], ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: "role == 'frontend'" }, destination: { ports: [6379] } }] } });
  yield mk('globalnetworksets.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'GlobalNetworkSet', metadata: calicoMeta('external-database', created, rng, {}, { role: 'external-database' }), spec: { nets: ['198.51.100.0/28', '203.0.113.0/24'] } });
  for (const ns of appNamespaces.slice(0, 5)) {
    yield mk('networkpolicies.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'NetworkPolicy', metadata: { ...calicoMeta('default.allow-tcp-6379', created, rng), namespace: ns }, spec: { tier: 'default', order: 200, selector: "role == 'database'", types: ['Ingress'], ingress: [{ action: 'Allow', protocol: 'TCP', source: { selector: "role == 'frontend'" }, destination: { ports: [6379] } }] } });
    yield mk('networksets.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'NetworkSet', metadata: { ...calicoMeta('external-database', created, rng, {}, { role: 'external-database' }), namespace: ns }, spec: { nets: ['198.51.100.0/28'] } });
  }
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i] as string;
    const blockCidr = `${podIp({ slotsPerNode }, i, 0)}/26`;
    const blockName = blockCidr.replace(/[./]/g, '-');
    yield mk('hostendpoints.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'HostEndpoint', metadata: calicoMeta(`${node}-auto-hep`, created, rng, { labels: { 'projectcalico.org/created-by': 'calico-kube-controllers' } }, { 'kubernetes.io/hostname': node, 'projectcalico.org/created-by': 'calico-kube-controllers' }), spec: { expectedIPs: [nodeIp(i), podIp({ slotsPerNode }, i, 0)], interfaceName: '*', node, profiles: ['projectcalico-default-allow'] } });
    // sequenceNumber is UnixNano-based, above 2^53 (fixtures fact 6); multiples of 256 stay exact as doubles.
    const seq = 1_776_160_000_000_000_000 + i * 256;
    yield mk('ipamblocks.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'IPAMBlock', metadata: { name: blockName, uid: rng.uuid(), resourceVersion: '0', generation: 1, creationTimestamp: null }, spec: { affinity: `host:${node}`, allocations: [0, ...Array.from({ length: 63 }, () => null)], attributes: [{ handle_id: `ipip-tunnel-addr-${node}`, secondary: { node, type: 'ipipTunnelAddress' } }], cidr: blockCidr, deleted: false, sequenceNumber: seq, sequenceNumberForAllocation: { '0': seq - 256 }, strictAffinity: false, unallocated: Array.from({ length: 63 }, (_, k) => k + 1) } });
    yield mk('blockaffinities.crd.projectcalico.org', { apiVersion: CALICO_AV, kind: 'BlockAffinity', metadata: { name: `${node}-${blockName}`, uid: rng.uuid(), resourceVersion: '0', generation: 1, creationTimestamp: null, labels: { 'projectcalico.org/affinity-type': 'host', 'projectcalico.org/ip-version': '4' } }, spec: { cidr: blockCidr, deleted: 'false', node, state: 'confirmed', type: 'host' } });
  }
}
