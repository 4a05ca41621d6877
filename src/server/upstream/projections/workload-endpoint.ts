import { createHash } from 'node:crypto';
import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';

/**
 * Pod → slim workload endpoint, by libcalico-go's rules (conversion/workload_endpoint_default.go
 * and updateprocessors/workloadendpointprocessor.go in Calico v3.31's libcalico-go).
 *
 * Everything a status-only update touches (conditions, container statuses, restarts, readiness,
 * timestamps) is left out, so such updates project to identical bytes and never reach agents.
 * Returns null when Calico has no endpoint for the pod: host-network or unscheduled pods, and pods
 * without IPs (finished pods lose theirs, so their endpoint turns into a deletion).
 */

const ANNOTATION_POD_IP = 'cni.projectcalico.org/podIP';
const ANNOTATION_POD_IPS = 'cni.projectcalico.org/podIPs';
const ANNOTATION_AWS_POD_IPS = 'vpc.amazonaws.com/pod-ips';

/** Annotations Felix acts on; every other annotation is dropped. */
const KEPT_ANNOTATIONS = new Set([
  'cni.projectcalico.org/floatingIPs',
  'cni.projectcalico.org/allowedSourcePrefixes',
  'k8s.v1.cni.cncf.io/network-status',
]);
const KEPT_ANNOTATION_PREFIXES = ['qos.projectcalico.org/'];

const FINISHED_PHASES = new Set(['Succeeded', 'Failed', 'Completed']);

export interface WorkloadEndpoint {
  name: string;
  namespace: string;
  pod: string;
  node: string;
  orchestrator: 'k8s';
  endpoint: 'eth0';
  generateName?: string;
  interfaceName: string;
  ipNetworks: string[];
  profiles: string[];
  labels: Record<string, string>;
  ports?: WorkloadPort[];
  serviceAccountName?: string;
  annotations?: Record<string, string>;
}

export interface WorkloadPort {
  name: string;
  protocol: string;
  port: number;
  hostPort?: number;
  hostIP?: string;
}

/** `cali` + the first 11 hex digits of sha1("<namespace>.<pod>") (Felix's default prefix). */
export function interfaceName(namespace: string, pod: string, prefix = 'cali'): string {
  return prefix + createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11);
}

/** Calico's WEP name: node, `k8s`, pod and `eth0`, each with `-` doubled, joined by `-`. */
export function workloadEndpointName(node: string, pod: string): string {
  const esc = (s: string): string => s.replace(/-/g, '--');
  return `${esc(node)}-k8s-${esc(pod)}-eth0`;
}

function toCidr(ip: string): string {
  const trimmed = ip.trim();
  if (trimmed.includes('/')) return trimmed;
  return trimmed.includes(':') ? `${trimmed}/128` : `${trimmed}/32`;
}

function splitIps(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '').map(toCidr);
}

/** IP source order: status.podIPs, status.podIP, the Calico CNI annotations, then AWS's. */
function podIps(status: Record<string, unknown>, annotations: Record<string, string>): string[] {
  const podIPs = status['podIPs'];
  if (Array.isArray(podIPs) && podIPs.length > 0) {
    const ips = podIPs.flatMap((p) => (isRecord(p) && typeof p['ip'] === 'string' && p['ip'] !== '' ? [toCidr(p['ip'])] : []));
    if (ips.length > 0) return ips;
  }
  if (typeof status['podIP'] === 'string' && status['podIP'] !== '') return [toCidr(status['podIP'])];
  for (const a of [ANNOTATION_POD_IPS, ANNOTATION_POD_IP, ANNOTATION_AWS_POD_IPS]) {
    const ips = splitIps(annotations[a]);
    if (ips.length > 0) return ips;
  }
  return [];
}

function ports(spec: Record<string, unknown>): WorkloadPort[] {
  const out: WorkloadPort[] = [];
  const containers = Array.isArray(spec['containers']) ? spec['containers'] : [];
  for (const c of containers) {
    if (!isRecord(c) || !Array.isArray(c['ports'])) continue;
    for (const p of c['ports']) {
      if (!isRecord(p)) continue;
      const name = typeof p['name'] === 'string' ? p['name'] : '';
      const hostPort = typeof p['hostPort'] === 'number' && p['hostPort'] > 0 ? p['hostPort'] : undefined;
      // Only named ports (policy can refer to them) and host ports become endpoint ports.
      if (name === '' && hostPort === undefined) continue;
      const port: WorkloadPort = {
        name,
        protocol: typeof p['protocol'] === 'string' ? p['protocol'] : 'TCP',
        port: typeof p['containerPort'] === 'number' ? p['containerPort'] : 0,
      };
      if (hostPort !== undefined) port.hostPort = hostPort;
      if (hostPort !== undefined && typeof p['hostIP'] === 'string' && p['hostIP'] !== '') port.hostIP = p['hostIP'];
      out.push(port);
    }
  }
  return out;
}

export function projectPod(pod: KubeObject): WorkloadEndpoint | null {
  const meta = pod.metadata ?? {};
  const spec = isRecord(pod['spec']) ? pod['spec'] : {};
  const status = isRecord(pod['status']) ? pod['status'] : {};
  const name = meta.name ?? '';
  const namespace = meta.namespace ?? '';
  const node = typeof spec['nodeName'] === 'string' ? spec['nodeName'] : '';
  if (spec['hostNetwork'] === true || node === '') return null;
  const annotations = stringRecord(meta.annotations);
  const finished =
    (typeof status['phase'] === 'string' && FINISHED_PHASES.has(status['phase'])) ||
    (meta.deletionTimestamp !== undefined && meta.deletionTimestamp !== null && annotations[ANNOTATION_POD_IP] === '');
  const ipNetworks = finished ? [] : podIps(status, annotations);
  // The WEP processor drops endpoints without IPs; downstream that is a deletion.
  if (ipNetworks.length === 0) return null;

  const sa = typeof spec['serviceAccountName'] === 'string' ? spec['serviceAccountName'] : '';
  const labels = new Map(Object.entries(stringRecord(meta.labels)));
  labels.set('projectcalico.org/namespace', namespace);
  labels.set('projectcalico.org/orchestrator', 'k8s');
  if (sa !== '' && sa.length < 63) labels.set('projectcalico.org/serviceaccount', sa);

  const wep: WorkloadEndpoint = {
    name: workloadEndpointName(node, name),
    namespace,
    pod: name,
    node,
    orchestrator: 'k8s',
    endpoint: 'eth0',
    interfaceName: interfaceName(namespace, name),
    ipNetworks,
    profiles: sa !== '' ? [`kns.${namespace}`, `ksa.${namespace}.${sa}`] : [`kns.${namespace}`],
    labels: sortedRecord(labels),
  };
  if (meta.generateName) wep.generateName = meta.generateName;
  const p = ports(spec);
  if (p.length > 0) wep.ports = p;
  if (sa !== '') wep.serviceAccountName = sa;
  const kept = Object.entries(annotations).filter(([k]) => KEPT_ANNOTATIONS.has(k) || KEPT_ANNOTATION_PREFIXES.some((pre) => k.startsWith(pre)));
  if (kept.length > 0) wep.annotations = sortedRecord(kept);
  return wep;
}
