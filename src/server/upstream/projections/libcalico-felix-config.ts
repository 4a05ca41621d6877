import type { KubeObject } from '../types.js';
import { isRecord, stringRecord } from './encode.js';
import { configKeyFn, normalizeNet, type KV } from './calico-keys.js';
import { goDurationString, goFloatV, parseGoDuration } from './go-format.js';
import { v3Annotations } from './libcalico-resource.js';

/**
 * FelixConfiguration → one config key per set field, as Felix's syncer sends it. Public Calico
 * sources: `libcalico-go/lib/backend/syncersv1/updateprocessors/configurationprocessor.go` (the
 * generic processor) with felixconfigprocessor.go (its value converters), over
 * `api/pkg/apis/projectcalico/v3/felixconfig.go` `FelixConfigurationSpec` (Calico v3.31's fields:
 * the CRD in test/fixtures is the list; test/upstream/libcalico-felix-config.test.ts checks that
 * every property of it is in {@link FIELDS}).
 *
 * - Key: `/calico/v1/config/<Name>` for the resource `default`, `/calico/v1/host/<node>/config/<Name>`
 *   for `node.<node>`; `<Name>` is the field's `confignamev1` tag, else the Go field name
 *   (`ipipEnabled` → `IpInIpEnabled`, `reportingInterval` → `ReportingIntervalSecs`).
 * - Value: a string in Felix's config format — strings as they are, bools `true`/`false`, integers
 *   in decimal, durations in seconds (milliseconds for the `…Millis` field) printed as Go's `%v`
 *   of a float64 (`90`, `0.05`, `1e+06`), string lists comma-joined, ProtoPorts `tcp:22`,
 *   `udp:[fd00::/8]:53` or `none` for an empty list, route table ranges `1-250`, health timeout
 *   overrides `Name=20s,…` (Go's Duration.String), BPF conntrack timeouts `Field=value,…`.
 * - An unset field gives no key (the processor sends nil, a deletion; a view that held the key
 *   deletes it the same way). A non-pointer string field set to "" is unset; a pointer field
 *   (`healthHost`, the enum types) set to "" gives the key with the value "".
 * - Annotations `config.projectcalico.org/<Name>` (of the v3 object, i.e. in its metadata
 *   annotation) override the field of that name, unvalidated, and add keys for names the spec
 *   does not have (in name order here; Go's map order is random).
 * - Unknown spec properties are ignored (Go's JSON decoder drops them). A value of the wrong type
 *   or a duration Go cannot parse makes libcalico fail the whole resource: thrown here, so the
 *   object is counted and skipped (a relist keeps its previous keys).
 *
 * Where Go's output is not deterministic we choose one: `bpfLogFilters` (a map, printed `k=v,` per
 * entry in Go's random map order) is printed in key order.
 */

type Kind =
  | 'str' // string: "" is unset
  | 'ptr-str' // *string or a pointer to a named string type: "" is a value
  | 'bool'
  | 'int'
  | 'secs' // *metav1.Duration, configv1timescale seconds (the default)
  | 'millis' // *metav1.Duration, configv1timescale milliseconds
  | 'strings' // *[]string
  | 'map' // *map[string]string
  | 'proto-ports' // *[]ProtoPort
  | 'route-table-range' // *RouteTableRange
  | 'route-table-ranges' // *RouteTableRanges
  | 'health-timeouts' // []HealthTimeoutOverride
  | 'conntrack-timeouts' // *BPFConntrackTimeouts
  | 'port' // *numorstring.Port
  | 'ports'; // *[]numorstring.Port

/** [JSON name, v1 config name, kind], in the Go struct's field order. */
export const FIELDS: readonly (readonly [json: string, name: string, kind: Kind])[] = [
  ['useInternalDataplaneDriver', 'UseInternalDataplaneDriver', 'bool'],
  ['dataplaneDriver', 'DataplaneDriver', 'str'],
  ['dataplaneWatchdogTimeout', 'DataplaneWatchdogTimeout', 'secs'],
  ['ipv6Support', 'Ipv6Support', 'bool'],
  ['routeRefreshInterval', 'RouteRefreshInterval', 'secs'],
  ['interfaceRefreshInterval', 'InterfaceRefreshInterval', 'secs'],
  ['iptablesRefreshInterval', 'IptablesRefreshInterval', 'secs'],
  ['iptablesPostWriteCheckInterval', 'IptablesPostWriteCheckIntervalSecs', 'secs'],
  ['iptablesLockFilePath', 'IptablesLockFilePath', 'str'],
  ['iptablesLockTimeout', 'IptablesLockTimeoutSecs', 'secs'],
  ['iptablesLockProbeInterval', 'IptablesLockProbeIntervalMillis', 'millis'],
  ['featureDetectOverride', 'FeatureDetectOverride', 'str'],
  ['featureGates', 'FeatureGates', 'str'],
  ['ipsetsRefreshInterval', 'IpsetsRefreshInterval', 'secs'],
  ['maxIpsetSize', 'MaxIpsetSize', 'int'],
  ['iptablesBackend', 'IptablesBackend', 'ptr-str'],
  ['xdpRefreshInterval', 'XDPRefreshInterval', 'secs'],
  ['netlinkTimeout', 'NetlinkTimeoutSecs', 'secs'],
  ['metadataAddr', 'MetadataAddr', 'str'],
  ['metadataPort', 'MetadataPort', 'int'],
  ['openstackRegion', 'OpenstackRegion', 'str'],
  ['interfacePrefix', 'InterfacePrefix', 'str'],
  ['interfaceExclude', 'InterfaceExclude', 'str'],
  ['chainInsertMode', 'ChainInsertMode', 'str'],
  ['defaultEndpointToHostAction', 'DefaultEndpointToHostAction', 'str'],
  ['iptablesFilterAllowAction', 'IptablesFilterAllowAction', 'str'],
  ['iptablesMangleAllowAction', 'IptablesMangleAllowAction', 'str'],
  ['iptablesFilterDenyAction', 'IptablesFilterDenyAction', 'str'],
  ['logPrefix', 'LogPrefix', 'str'],
  ['logActionRateLimit', 'LogActionRateLimit', 'ptr-str'],
  ['logActionRateLimitBurst', 'LogActionRateLimitBurst', 'int'],
  ['logFilePath', 'LogFilePath', 'str'],
  ['logSeverityFile', 'LogSeverityFile', 'str'],
  ['logSeverityScreen', 'LogSeverityScreen', 'str'],
  ['logSeveritySys', 'LogSeveritySys', 'str'],
  ['logDebugFilenameRegex', 'LogDebugFilenameRegex', 'str'],
  ['ipipEnabled', 'IpInIpEnabled', 'bool'],
  ['ipipMTU', 'IpInIpMtu', 'int'],
  ['vxlanEnabled', 'VXLANEnabled', 'bool'],
  ['vxlanMTU', 'VXLANMTU', 'int'],
  ['vxlanMTUV6', 'VXLANMTUV6', 'int'],
  ['vxlanPort', 'VXLANPort', 'int'],
  ['vxlanVNI', 'VXLANVNI', 'int'],
  ['allowVXLANPacketsFromWorkloads', 'AllowVXLANPacketsFromWorkloads', 'bool'],
  ['allowIPIPPacketsFromWorkloads', 'AllowIPIPPacketsFromWorkloads', 'bool'],
  ['reportingInterval', 'ReportingIntervalSecs', 'secs'],
  ['reportingTTL', 'ReportingTTLSecs', 'secs'],
  ['endpointReportingEnabled', 'EndpointReportingEnabled', 'bool'],
  ['endpointReportingDelay', 'EndpointReportingDelaySecs', 'secs'],
  ['endpointStatusPathPrefix', 'EndpointStatusPathPrefix', 'str'],
  ['iptablesMarkMask', 'IptablesMarkMask', 'int'],
  ['disableConntrackInvalidCheck', 'DisableConntrackInvalidCheck', 'bool'],
  ['healthEnabled', 'HealthEnabled', 'bool'],
  ['healthHost', 'HealthHost', 'ptr-str'],
  ['healthPort', 'HealthPort', 'int'],
  ['healthTimeoutOverrides', 'HealthTimeoutOverrides', 'health-timeouts'],
  ['prometheusMetricsEnabled', 'PrometheusMetricsEnabled', 'bool'],
  ['prometheusMetricsHost', 'PrometheusMetricsHost', 'str'],
  ['prometheusMetricsPort', 'PrometheusMetricsPort', 'int'],
  ['prometheusGoMetricsEnabled', 'PrometheusGoMetricsEnabled', 'bool'],
  ['prometheusProcessMetricsEnabled', 'PrometheusProcessMetricsEnabled', 'bool'],
  ['prometheusWireGuardMetricsEnabled', 'PrometheusWireGuardMetricsEnabled', 'bool'],
  ['failsafeInboundHostPorts', 'FailsafeInboundHostPorts', 'proto-ports'],
  ['failsafeOutboundHostPorts', 'FailsafeOutboundHostPorts', 'proto-ports'],
  ['kubeNodePortRanges', 'KubeNodePortRanges', 'ports'],
  ['policySyncPathPrefix', 'PolicySyncPathPrefix', 'str'],
  ['usageReportingEnabled', 'UsageReportingEnabled', 'bool'],
  ['usageReportingInitialDelay', 'UsageReportingInitialDelaySecs', 'secs'],
  ['usageReportingInterval', 'UsageReportingIntervalSecs', 'secs'],
  ['natPortRange', 'NATPortRange', 'port'],
  ['natOutgoingAddress', 'NATOutgoingAddress', 'str'],
  ['natOutgoingExclusions', 'NATOutgoingExclusions', 'ptr-str'],
  ['deviceRouteSourceAddress', 'DeviceRouteSourceAddress', 'str'],
  ['deviceRouteSourceAddressIPv6', 'DeviceRouteSourceAddressIPv6', 'str'],
  ['deviceRouteProtocol', 'DeviceRouteProtocol', 'int'],
  ['removeExternalRoutes', 'RemoveExternalRoutes', 'bool'],
  ['programClusterRoutes', 'ProgramClusterRoutes', 'ptr-str'],
  ['ipForwarding', 'IPForwarding', 'str'],
  ['externalNodesList', 'ExternalNodesCIDRList', 'strings'],
  ['debugMemoryProfilePath', 'DebugMemoryProfilePath', 'str'],
  ['debugDisableLogDropping', 'DebugDisableLogDropping', 'bool'],
  ['debugSimulateCalcGraphHangAfter', 'DebugSimulateCalcGraphHangAfter', 'secs'],
  ['debugSimulateDataplaneHangAfter', 'DebugSimulateDataplaneHangAfter', 'secs'],
  ['debugSimulateDataplaneApplyDelay', 'DebugSimulateDataplaneApplyDelay', 'secs'],
  ['debugHost', 'DebugHost', 'ptr-str'],
  ['debugPort', 'DebugPort', 'int'],
  ['iptablesNATOutgoingInterfaceFilter', 'IptablesNATOutgoingInterfaceFilter', 'str'],
  ['sidecarAccelerationEnabled', 'SidecarAccelerationEnabled', 'bool'],
  ['xdpEnabled', 'XDPEnabled', 'bool'],
  ['genericXDPEnabled', 'GenericXDPEnabled', 'bool'],
  ['nftablesMode', 'NFTablesMode', 'ptr-str'],
  ['nftablesRefreshInterval', 'NftablesRefreshInterval', 'secs'],
  ['nftablesFilterAllowAction', 'NftablesFilterAllowAction', 'str'],
  ['nftablesMangleAllowAction', 'NftablesMangleAllowAction', 'str'],
  ['nftablesFilterDenyAction', 'NftablesFilterDenyAction', 'str'],
  ['nftablesMarkMask', 'NftablesMarkMask', 'int'],
  ['bpfEnabled', 'BPFEnabled', 'bool'],
  ['bpfDisableUnprivileged', 'BPFDisableUnprivileged', 'bool'],
  ['bpfLogLevel', 'BPFLogLevel', 'str'],
  ['bpfConntrackLogLevel', 'BPFConntrackLogLevel', 'str'],
  ['bpfConntrackMode', 'BPFConntrackCleanupMode', 'ptr-str'],
  ['bpfConntrackTimeouts', 'BPFConntrackTimeouts', 'conntrack-timeouts'],
  ['bpfLogFilters', 'BPFLogFilters', 'map'],
  ['bpfCTLBLogFilter', 'BPFCTLBLogFilter', 'str'],
  ['bpfDataIfacePattern', 'BPFDataIfacePattern', 'str'],
  ['bpfL3IfacePattern', 'BPFL3IfacePattern', 'str'],
  ['bpfConnectTimeLoadBalancingEnabled', 'BPFConnectTimeLoadBalancingEnabled', 'bool'],
  ['bpfConnectTimeLoadBalancing', 'BPFConnectTimeLoadBalancing', 'ptr-str'],
  ['bpfHostNetworkedNATWithoutCTLB', 'BPFHostNetworkedNATWithoutCTLB', 'ptr-str'],
  ['bpfExternalServiceMode', 'BPFExternalServiceMode', 'str'],
  ['bpfDSROptoutCIDRs', 'BPFDSROptoutCIDRs', 'strings'],
  ['bpfExtToServiceConnmark', 'BPFExtToServiceConnmark', 'int'],
  ['bpfKubeProxyIptablesCleanupEnabled', 'BPFKubeProxyIptablesCleanupEnabled', 'bool'],
  ['bpfKubeProxyMinSyncPeriod', 'BPFKubeProxyMinSyncPeriod', 'secs'],
  ['bpfKubeProxyHealthzPort', 'BPFKubeProxyHealthzPort', 'int'],
  ['bpfKubeProxyEndpointSlicesEnabled', 'BPFKubeProxyEndpointSlicesEnabled', 'bool'],
  ['bpfPSNATPorts', 'BPFPSNATPorts', 'port'],
  ['bpfMapSizeNATFrontend', 'BPFMapSizeNATFrontend', 'int'],
  ['bpfMapSizeNATBackend', 'BPFMapSizeNATBackend', 'int'],
  ['bpfMapSizeNATAffinity', 'BPFMapSizeNATAffinity', 'int'],
  ['bpfMapSizeRoute', 'BPFMapSizeRoute', 'int'],
  ['bpfMapSizeConntrack', 'BPFMapSizeConntrack', 'int'],
  ['bpfMapSizePerCpuConntrack', 'BPFMapSizePerCPUConntrack', 'int'],
  ['bpfMapSizeConntrackScaling', 'BPFMapSizeConntrackScaling', 'str'],
  ['bpfMapSizeConntrackCleanupQueue', 'BPFMapSizeConntrackCleanupQueue', 'int'],
  ['bpfMapSizeIPSets', 'BPFMapSizeIPSets', 'int'],
  ['bpfMapSizeIfState', 'BPFMapSizeIfState', 'int'],
  ['bpfHostConntrackBypass', 'BPFHostConntrackBypass', 'bool'],
  ['bpfEnforceRPF', 'BPFEnforceRPF', 'str'],
  ['bpfPolicyDebugEnabled', 'BPFPolicyDebugEnabled', 'bool'],
  ['bpfForceTrackPacketsFromIfaces', 'BPFForceTrackPacketsFromIfaces', 'strings'],
  ['bpfDisableGROForIfaces', 'BPFDisableGROForIfaces', 'str'],
  ['bpfExcludeCIDRsFromNAT', 'BPFExcludeCIDRsFromNAT', 'strings'],
  ['bpfExportBufferSizeMB', 'BPFExportBufferSizeMB', 'int'],
  ['bpfAttachType', 'BPFAttachType', 'ptr-str'],
  ['bpfJITHardening', 'BPFJITHardening', 'ptr-str'],
  ['flowLogsPolicyEvaluationMode', 'FlowLogsPolicyEvaluationMode', 'ptr-str'],
  ['bpfRedirectToPeer', 'BPFRedirectToPeer', 'str'],
  ['flowLogsFlushInterval', 'FlowLogsFlushInterval', 'secs'],
  ['flowLogsCollectorDebugTrace', 'FlowLogsCollectorDebugTrace', 'bool'],
  ['flowLogsGoldmaneServer', 'FlowLogsGoldmaneServer', 'ptr-str'],
  ['flowLogsLocalReporter', 'FlowLogsLocalReporter', 'ptr-str'],
  ['bpfProfiling', 'BPFProfiling', 'str'],
  ['routeSource', 'RouteSource', 'str'],
  ['routeTableRanges', 'RouteTableRanges', 'route-table-ranges'],
  ['routeTableRange', 'RouteTableRange', 'route-table-range'],
  ['routeSyncDisabled', 'RouteSyncDisabled', 'bool'],
  ['wireguardEnabled', 'WireguardEnabled', 'bool'],
  ['wireguardEnabledV6', 'WireguardEnabledV6', 'bool'],
  ['wireguardThreadingEnabled', 'WireguardThreadingEnabled', 'bool'],
  ['wireguardListeningPort', 'WireguardListeningPort', 'int'],
  ['wireguardListeningPortV6', 'WireguardListeningPortV6', 'int'],
  ['wireguardRoutingRulePriority', 'WireguardRoutingRulePriority', 'int'],
  ['wireguardInterfaceName', 'WireguardInterfaceName', 'str'],
  ['wireguardInterfaceNameV6', 'WireguardInterfaceNameV6', 'str'],
  ['wireguardMTU', 'WireguardMTU', 'int'],
  ['wireguardMTUV6', 'WireguardMTUV6', 'int'],
  ['wireguardHostEncryptionEnabled', 'WireguardHostEncryptionEnabled', 'bool'],
  // No timescale tag: seconds. The v1 name is the Go field's, not the JSON one.
  ['wireguardKeepAlive', 'WireguardPersistentKeepAlive', 'secs'],
  ['awsSrcDstCheck', 'AWSSrcDstCheck', 'ptr-str'],
  ['serviceLoopPrevention', 'ServiceLoopPrevention', 'str'],
  ['workloadSourceSpoofing', 'WorkloadSourceSpoofing', 'str'],
  ['mtuIfacePattern', 'MTUIfacePattern', 'str'],
  ['floatingIPs', 'FloatingIPs', 'ptr-str'],
  ['windowsManageFirewallRules', 'WindowsManageFirewallRules', 'ptr-str'],
  ['goGCThreshold', 'GoGCThreshold', 'int'],
  ['goMemoryLimitMB', 'GoMemoryLimitMB', 'int'],
  ['goMaxProcs', 'GoMaxProcs', 'int'],
  ['requireMTUFile', 'RequireMTUFile', 'bool'],
  ['cgroupV2Path', 'CgroupV2Path', 'str'],
];

/** BPFConntrackTimeouts' fields in struct order: [JSON name, Go field name]. */
const CONNTRACK_TIMEOUTS: readonly (readonly [string, string])[] = [
  ['creationGracePeriod', 'CreationGracePeriod'],
  ['tcpSynSent', 'TCPSynSent'],
  ['tcpEstablished', 'TCPEstablished'],
  ['tcpFinsSeen', 'TCPFinsSeen'],
  ['tcpResetSeen', 'TCPResetSeen'],
  ['udpTimeout', 'UDPTimeout'],
  ['genericTimeout', 'GenericTimeout'],
  ['icmpTimeout', 'ICMPTimeout'],
];

const OVERRIDE_PREFIX = 'config.projectcalico.org/';

function bad(field: string, why: string): TypeError {
  return new TypeError(`FelixConfiguration spec.${field}: ${why}`);
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string') throw bad(field, 'not a string');
  return v;
}

/** An integer as our JSON parser gives it: a safe number, or an exact decimal string beyond 2^53. */
function int(v: unknown, field: string): string {
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return v;
  throw bad(field, 'not an integer');
}

function duration(v: unknown, field: string): bigint {
  const ns = parseGoDuration(str(v, field));
  if (ns === undefined) throw bad(field, `invalid duration ${JSON.stringify(v)}`);
  return ns;
}

function list(v: unknown, field: string): unknown[] {
  if (!Array.isArray(v)) throw bad(field, 'not a list');
  return v;
}

function record(v: unknown, field: string): Record<string, unknown> {
  if (!isRecord(v)) throw bad(field, 'not an object');
  return v;
}

/** numorstring.Port from JSON (a number, `"80"`, `"a:b"` or a name) printed by its String(). */
function port(v: unknown, field: string): string {
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  const s = str(v, field);
  const range = /^(\d+):(\d+)$/.exec(s);
  if (range) return range[1] === range[2] ? String(Number(range[1])) : `${Number(range[1])}:${Number(range[2])}`;
  return /^\d+$/.test(s) ? String(Number(s)) : s;
}

/** felixconfigprocessor.go protoPortSliceToString. */
function protoPorts(v: unknown, field: string): string {
  const items = list(v, field);
  if (items.length === 0) return 'none';
  return items
    .map((item) => {
      const pp = record(item, field);
      const protocol = (pp['protocol'] === undefined ? '' : str(pp['protocol'], field)).toLowerCase();
      const p = pp['port'] === undefined ? '0' : int(pp['port'], field);
      const net = pp['net'] === undefined ? '' : str(pp['net'], field);
      if (net === '') return `${protocol}:${p}`;
      // Go decides by the parsed address family; an unparsable net (logged there) prints as v4.
      const v6 = normalizeNet(net)?.includes(':') ?? false;
      return v6 ? `${protocol}:[${net}]:${p}` : `${protocol}:${net}:${p}`;
    })
    .join(',');
}

function tableRange(v: unknown, field: string): string {
  const r = record(v, field);
  return `${int(r['min'] ?? 0, field)}-${int(r['max'] ?? 0, field)}`;
}

/**
 * One field's v1 value, or undefined for "no key". `v` is the JSON value present under the
 * field's name (never undefined).
 */
function fieldValue(kind: Kind, v: unknown, field: string, name: string): string | undefined {
  if (v === null) return undefined; // JSON null leaves a Go pointer nil (or a string empty)
  switch (kind) {
    case 'str': {
      const s = str(v, field);
      return s === '' ? undefined : s;
    }
    case 'ptr-str':
      return str(v, field);
    case 'bool':
      if (typeof v !== 'boolean') throw bad(field, 'not a boolean');
      return v ? 'true' : 'false';
    case 'int':
      return int(v, field);
    case 'secs': {
      const ns = duration(v, field);
      const sec = ns / 1_000_000_000n;
      return goFloatV(Number(sec) + Number(ns - sec * 1_000_000_000n) / 1e9);
    }
    case 'millis': {
      const ns = duration(v, field);
      const ms = ns / 1_000_000n;
      return goFloatV(Number(ms) + Number(ns - ms * 1_000_000n) / 1e6);
    }
    case 'strings':
      return list(v, field).map((s) => str(s, field)).join(',');
    case 'map':
      return Object.entries(record(v, field))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, s]) => `${k}=${str(s, field)},`)
        .join('');
    case 'proto-ports':
      return protoPorts(v, field);
    case 'route-table-range':
      return tableRange(v, field);
    case 'route-table-ranges':
      return list(v, field).map((r) => tableRange(r, field)).join(',');
    case 'health-timeouts': {
      const items = list(v, field);
      if (items.length === 0) return undefined;
      return items
        .map((item) => {
          const h = record(item, field);
          return `${h['name'] === undefined ? '' : str(h['name'], field)}=${goDurationString(duration(h['timeout'] ?? '0', field))}`;
        })
        .join(',');
    }
    case 'conntrack-timeouts': {
      const t = record(v, field);
      const parts: string[] = [];
      for (const [json, goName] of CONNTRACK_TIMEOUTS) {
        if (t[json] !== undefined && t[json] !== null) parts.push(`${goName}=${str(t[json], `${field}.${json}`)}`);
      }
      return parts.join(',');
    }
    case 'port':
      return port(v, field);
    case 'ports':
      // Go's %v of a []numorstring.Port: each element by its String(), space-separated, in brackets.
      return `[${list(v, field).map((p) => port(p, field)).join(' ')}]`;
    default:
      throw bad(field, `no rule for ${name}`);
  }
}

export function convertFelixConfiguration(fc: KubeObject): KV[] {
  const key = configKeyFn('FelixConfiguration', fc.metadata?.name ?? '');
  const spec = isRecord(fc['spec']) ? fc['spec'] : {};
  const overrides = new Map<string, string>();
  for (const [k, v] of Object.entries(stringRecord(v3Annotations(fc)))) {
    if (k.startsWith(OVERRIDE_PREFIX)) overrides.set(k.slice(OVERRIDE_PREFIX.length), v);
  }
  const out: KV[] = [];
  for (const [json, name, kind] of FIELDS) {
    const override = overrides.get(name);
    if (override !== undefined) {
      out.push([key(name), override]);
      overrides.delete(name);
      continue;
    }
    const raw = spec[json];
    if (raw === undefined) continue;
    const value = fieldValue(kind, raw, json, name);
    if (value !== undefined) out.push([key(name), value]);
  }
  for (const name of [...overrides.keys()].sort()) out.push([key(name), overrides.get(name) as string]);
  return out;
}
