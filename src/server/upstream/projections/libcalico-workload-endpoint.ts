import type { KubeObject } from '../types.js';
import { isRecord, sortedRecord, stringRecord } from './encode.js';
import { isV6, normalizeIp, normalizeNet, workloadEndpointKey, type KV } from './calico-keys.js';
import { interfaceName } from './workload-endpoint.js';

/**
 * Pod → the v1 WorkloadEndpoint Felix's syncer sends (`libcalico` projection). Two public Calico
 * sources, applied in order:
 * 1. `libcalico-go/lib/backend/k8s/conversion/workload_endpoint_default.go` (pod → v3 WEP) and
 *    conversion.go (`IsValidCalicoWorkloadEndpoint`, `IsFinished`, `getPodIPs`);
 * 2. `libcalico-go/lib/backend/syncersv1/updateprocessors/workloadendpointprocessor.go` (v3 → v1
 *    `model.WorkloadEndpoint`, field names from its JSON tags in model/workloadendpoint.go).
 *
 * The rules, written down:
 * - host-network pods and unscheduled pods (no `spec.nodeName`) have no endpoint at all;
 * - IPs come from `status.podIPs`, else `status.podIP`, else annotation `cni.projectcalico.org/podIPs`
 *   (comma-separated), else `…/podIP`, else AWS's `vpc.amazonaws.com/pod-ips`; each is masked to
 *   its network (a bare IP is /32 or /128) and split into ipv4_nets / ipv6_nets;
 * - a *finished* pod owns no IPs: phase Succeeded, Failed or Completed, or a deletionTimestamp
 *   together with `cni.projectcalico.org/podIP` (or AWS's annotation) explicitly "" (CNI DEL ran);
 *   a terminating pod whose IP annotation is still set keeps its endpoint until then;
 * - an endpoint without IPs is filtered out by the processor (no key; for an agent: deleted);
 * - labels: the pod's, minus any `pcns.` / `pcsa.` label (a pod cannot pose as another namespace),
 *   plus `projectcalico.org/namespace`, `projectcalico.org/orchestrator: k8s` and, when the pod
 *   has a service account, `projectcalico.org/serviceaccount` (the processor sets it whatever the
 *   name's length; the v3 WEP only below 63 characters);
 * - profiles `kns.<ns>` and, with a service account, `ksa.<ns>.<sa>`;
 * - interface name `<prefix>` + the first 11 hex digits of sha1("<ns>.<pod>"); the prefix is
 *   Felix's `FELIX_INTERFACEPREFIX` (first entry of the list), `cali` by default: pass
 *   `{ interfacePrefix }` if the agents run with another;
 * - ports: container and init-container ports with a name (v1 keeps only named ones) and a
 *   non-zero containerPort, protocol TCP (also when unset), UDP or SCTP (others are skipped),
 *   written lower-case as the v1 model does;
 * - `cni.projectcalico.org/floatingIPs` (JSON list) → ipv4_nat / ipv6_nat against the pod's IP of
 *   the same family; `cni.projectcalico.org/allowedSourcePrefixes` → allow_spoofed_source_ips;
 * - annotations: only `k8s.v1.cni.cncf.io/network-status` survives (the only one the conversion copies).
 * Not converted (yet): the `qos.projectcalico.org/*` and `kubernetes.io/*-bandwidth` QoS controls.
 */

const ANNOTATION_POD_IP = 'cni.projectcalico.org/podIP';
const ANNOTATION_POD_IPS = 'cni.projectcalico.org/podIPs';
const ANNOTATION_AWS_POD_IPS = 'vpc.amazonaws.com/pod-ips';
const ANNOTATION_FLOATING_IPS = 'cni.projectcalico.org/floatingIPs';
const ANNOTATION_SOURCE_PREFIXES = 'cni.projectcalico.org/allowedSourcePrefixes';
const ANNOTATION_NETWORK_STATUS = 'k8s.v1.cni.cncf.io/network-status';
const FINISHED_PHASES = new Set(['Succeeded', 'Failed', 'Completed']);

export interface WepOptions {
  /** Felix's interface prefix (`FELIX_INTERFACEPREFIX`, first entry). @default 'cali' */
  readonly interfacePrefix?: string;
}

export interface V1EndpointPort {
  name: string;
  protocol: string;
  port: number;
}

/** model.WorkloadEndpoint, keys in its struct order (so equal endpoints encode to equal bytes). */
export interface V1WorkloadEndpoint {
  state: 'active';
  name: string;
  active_instance_id: string;
  mac: null;
  profile_ids: string[];
  ipv4_nets: string[] | null;
  ipv6_nets: string[] | null;
  ipv4_nat?: { int_ip: string; ext_ip: string }[];
  ipv6_nat?: { int_ip: string; ext_ip: string }[];
  labels?: Record<string, string>;
  ports?: V1EndpointPort[];
  generate_name?: string;
  allow_spoofed_source_ips?: string[];
  annotations?: Record<string, string>;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** conversion.go `IsFinished`. */
export function podIsFinished(pod: KubeObject): boolean {
  const annotations = stringRecord(pod.metadata?.annotations);
  const deleting = pod.metadata?.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null;
  if (deleting && (annotations[ANNOTATION_POD_IP] === '' || annotations[ANNOTATION_AWS_POD_IPS] === '')) return true;
  const status = isRecord(pod['status']) ? pod['status'] : {};
  return FINISHED_PHASES.has(str(status['phase']));
}

/** conversion.go `getPodIPs`: the raw IP strings, first non-empty source wins. */
function podIpStrings(pod: KubeObject): string[] {
  const status = isRecord(pod['status']) ? pod['status'] : {};
  const annotations = stringRecord(pod.metadata?.annotations);
  const podIPs = Array.isArray(status['podIPs']) ? status['podIPs'] : [];
  if (podIPs.length > 0) return podIPs.map((p) => (isRecord(p) ? str(p['ip']) : ''));
  if (str(status['podIP']) !== '') return [str(status['podIP'])];
  if ((annotations[ANNOTATION_POD_IPS] ?? '') !== '') return (annotations[ANNOTATION_POD_IPS] ?? '').split(',');
  if ((annotations[ANNOTATION_POD_IP] ?? '') !== '') return [annotations[ANNOTATION_POD_IP] ?? ''];
  if ((annotations[ANNOTATION_AWS_POD_IPS] ?? '') !== '') return (annotations[ANNOTATION_AWS_POD_IPS] ?? '').split(',');
  return [];
}

function parseJsonList(text: string, what: string): string[] {
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) throw new TypeError(`${what} must be a JSON list of strings`);
  return parsed;
}

function endpointPorts(spec: Record<string, unknown>): V1EndpointPort[] {
  const out: V1EndpointPort[] = [];
  for (const list of [spec['containers'], spec['initContainers']]) {
    for (const c of Array.isArray(list) ? list : []) {
      for (const p of isRecord(c) && Array.isArray(c['ports']) ? c['ports'] : []) {
        if (!isRecord(p)) continue;
        const port = typeof p['containerPort'] === 'number' ? p['containerPort'] : 0;
        const name = str(p['name']);
        // The v3 WEP also keeps unnamed host ports; the v1 processor then drops every unnamed port.
        if (port === 0 || name === '') continue;
        const proto = str(p['protocol']);
        const protocol = proto === '' || proto === 'TCP' ? 'tcp' : proto === 'UDP' ? 'udp' : proto === 'SCTP' ? 'sctp' : undefined;
        if (protocol === undefined) continue;
        out.push({ name, protocol, port });
      }
    }
  }
  return out;
}

/** The endpoint's key, or undefined for a pod Calico never shows (host network, unscheduled). */
export function workloadEndpointKeyOf(pod: KubeObject): string | undefined {
  const spec = isRecord(pod['spec']) ? pod['spec'] : {};
  const node = str(spec['nodeName']);
  if (spec['hostNetwork'] === true || node === '') return undefined;
  return workloadEndpointKey(node, pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
}

export function convertPod(pod: KubeObject, options: WepOptions = {}): KV[] {
  const key = workloadEndpointKeyOf(pod);
  if (key === undefined) return [];
  const meta = pod.metadata ?? {};
  const spec = isRecord(pod['spec']) ? pod['spec'] : {};
  const namespace = meta.namespace ?? '';
  const name = meta.name ?? '';
  const annotations = stringRecord(meta.annotations);

  const nets: string[] = [];
  for (const ip of podIpStrings(pod)) {
    const net = normalizeNet(ip);
    // libcalico fails the whole conversion on a malformed IP; so do we (counted, skipped).
    if (net === undefined) throw new TypeError(`pod ${namespace}/${name}: malformed IP ${JSON.stringify(ip)}`);
    nets.push(net);
  }
  if (podIsFinished(pod) || nets.length === 0) return [];
  const v4 = nets.filter((n) => !isV6(n));
  const v6 = nets.filter(isV6);

  const sa = str(spec['serviceAccountName']);
  const labels = new Map(Object.entries(stringRecord(meta.labels)).filter(([k]) => !k.startsWith('pcns.') && !k.startsWith('pcsa.')));
  labels.set('projectcalico.org/namespace', namespace);
  labels.set('projectcalico.org/orchestrator', 'k8s');
  if (sa !== '') labels.set('projectcalico.org/serviceaccount', sa);

  const wep: V1WorkloadEndpoint = {
    state: 'active',
    name: interfaceName(namespace, name, options.interfacePrefix ?? 'cali'),
    active_instance_id: '',
    mac: null,
    profile_ids: sa !== '' ? [`kns.${namespace}`, `ksa.${namespace}.${sa}`] : [`kns.${namespace}`],
    ipv4_nets: v4.length > 0 ? v4 : null,
    ipv6_nets: v6.length > 0 ? v6 : null,
  };
  const floating = annotations[ANNOTATION_FLOATING_IPS];
  if (floating !== undefined) {
    const v4Int = v4[0]?.split('/')[0];
    const v6Int = v6[0]?.split('/')[0];
    const nat4: { int_ip: string; ext_ip: string }[] = [];
    const nat6: { int_ip: string; ext_ip: string }[] = [];
    for (const ext of parseJsonList(floating, ANNOTATION_FLOATING_IPS)) {
      const extIp = normalizeIp(ext);
      if (extIp === undefined) continue;
      if (ext.includes(':')) {
        if (v6Int !== undefined) nat6.push({ int_ip: v6Int, ext_ip: extIp });
      } else if (v4Int !== undefined) nat4.push({ int_ip: v4Int, ext_ip: extIp });
    }
    if (nat4.length > 0) wep.ipv4_nat = nat4;
    if (nat6.length > 0) wep.ipv6_nat = nat6;
  }
  wep.labels = sortedRecord(labels);
  const ports = endpointPorts(spec);
  if (ports.length > 0) wep.ports = ports;
  if (meta.generateName) wep.generate_name = meta.generateName;
  const prefixes = annotations[ANNOTATION_SOURCE_PREFIXES];
  if (prefixes !== undefined && prefixes !== '') {
    wep.allow_spoofed_source_ips = parseJsonList(prefixes, ANNOTATION_SOURCE_PREFIXES).map((p) => {
      const net = normalizeNet(p);
      if (net === undefined || !p.includes('/')) throw new TypeError(`pod ${namespace}/${name}: bad allowedSourcePrefixes entry ${JSON.stringify(p)}`);
      return net;
    });
  }
  const status = annotations[ANNOTATION_NETWORK_STATUS];
  if (status !== undefined) wep.annotations = { [ANNOTATION_NETWORK_STATUS]: status };
  return [[key, wep]];
}
