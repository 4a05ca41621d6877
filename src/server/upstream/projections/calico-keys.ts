/**
 * libcalico-go key paths and the small value helpers every `libcalico` conversion shares. Pure.
 *
 * Key paths are libcalico-go's "default paths" (the etcdv3 key layout, which Typha's syncers also
 * use as the string form of every key), from `libcalico-go/lib/backend/model/*.go`:
 * - workloadendpoint.go `WorkloadEndpointKey`: `/calico/v1/host/<node>/workload/<orch>/<workload>/endpoint/<ep>`,
 *   orchestrator, workload and endpoint escaped (`escapeName` in keys.go: `/` → `%2f`), the host not;
 * - profile.go `ProfileRulesKey` / `ProfileLabelsKey`: `/calico/v1/policy/profile/<name>/rules|labels`;
 * - policy.go `PolicyKey{Tier, Name}`: `/calico/v1/policy/tier/<tier>/policy/<name>` (namespaced
 *   policies are named `<ns>/<name>`, escaped). Calico master dropped this path (its PolicyKey now
 *   carries Name/Namespace/Kind and has no path); we keep the v3.2x–3.30 form, which still names
 *   every policy uniquely;
 * - tier.go `TierKey{Name}`: `/calico/v1/policy/tier/<name>/metadata` (the name as it is);
 * - hostconfig `HostConfigKey`: `/calico/v1/host/<node>/config/<name>`; globalconfig.go
 *   `GlobalConfigKey`: `/calico/v1/config/<name>`; wireguard `WireguardKey`:
 *   `/calico/v1/host/<node>/wireguard`;
 * - networkset.go `NetworkSetKey`: `/calico/v1/netset/<name>` (namespaced sets `<ns>/<name>`, escaped);
 * - hostendpoint.go `HostEndpointKey`: `/calico/v1/host/<node>/endpoint/<name>` (name escaped);
 * - ippool.go `IPPoolKey`: `/calico/v1/ipam/v<4|6>/pool/<cidr with / as ->`;
 * - block.go `BlockKey`: `/calico/ipam/v2/assignment/ipv<4|6>/block/<cidr with / as ->`;
 * - resource.go `ResourceKey`: `/calico/resources/v3/projectcalico.org/<plural>[/<namespace>]/<name>`,
 *   plurals from its `registerResourceInfo` table (note `kubernetesservice`, singular, as there).
 */

export function escapeName(name: string): string {
  return name.replace(/\//g, '%2f');
}

export function workloadEndpointKey(node: string, namespace: string, pod: string, endpoint = 'eth0'): string {
  return `/calico/v1/host/${node}/workload/k8s/${escapeName(`${namespace}/${pod}`)}/endpoint/${escapeName(endpoint)}`;
}

export function profileRulesKey(name: string): string {
  return `/calico/v1/policy/profile/${escapeName(name)}/rules`;
}

export function profileLabelsKey(name: string): string {
  return `/calico/v1/policy/profile/${escapeName(name)}/labels`;
}

export function policyKey(tier: string, name: string): string {
  return `/calico/v1/policy/tier/${tier}/policy/${escapeName(name)}`;
}

export function tierKey(name: string): string {
  return `/calico/v1/policy/tier/${name}/metadata`;
}

export function networkSetKey(name: string): string {
  return `/calico/v1/netset/${escapeName(name)}`;
}

export function hostEndpointKey(node: string, name: string): string {
  return `/calico/v1/host/${node}/endpoint/${escapeName(name)}`;
}

export function hostConfigKey(node: string, name: string): string {
  return `/calico/v1/host/${node}/config/${name}`;
}

export function globalConfigKey(name: string): string {
  return `/calico/v1/config/${name}`;
}

/**
 * The config key of a configuration resource's field: configurationprocessor.go names the resource
 * `default` (global, GlobalConfigKey) or `node.<node>` (HostConfigKey); any other name is an error
 * there (`ErrorParsingDatastoreEntry`), thrown here so the object is counted and skipped.
 */
export function configKeyFn(kind: string, resourceName: string): (field: string) => string {
  if (resourceName === 'default') return globalConfigKey;
  if (resourceName.startsWith('node.')) {
    const node = resourceName.slice('node.'.length);
    // `node.` alone leaves an empty node name, which createV1Key takes for global config.
    return node === '' ? globalConfigKey : (field) => hostConfigKey(node, field);
  }
  throw new TypeError(`${kind} ${JSON.stringify(resourceName)}: only "default" or "node.<name>" are config resources`);
}

export function wireguardKey(node: string): string {
  return `/calico/v1/host/${node}/wireguard`;
}

export function ipPoolKey(cidr: string): string {
  return `/calico/v1/ipam/v${cidr.includes(':') ? 6 : 4}/pool/${cidr.replace('/', '-')}`;
}

export function blockKey(cidr: string): string {
  return `/calico/ipam/v2/assignment/ipv${cidr.includes(':') ? 6 : 4}/block/${cidr.replace('/', '-')}`;
}

export function resourceKey(plural: string, name: string, namespace?: string): string {
  return namespace !== undefined && namespace !== ''
    ? `/calico/resources/v3/projectcalico.org/${plural}/${namespace}/${name}`
    : `/calico/resources/v3/projectcalico.org/${plural}/${name}`;
}

/** One key/value pair of a conversion (the value never null: absence is "no entry"). */
export type KV = readonly [key: string, value: unknown];

// ---- IP networks, printed as Go's net.IPNet.String() prints them (masked, RFC 5952 for IPv6) ----

function parseV4(ip: string): number[] | undefined {
  const parts = ip.split('.');
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : undefined;
}

/** The 16 bytes of an IPv6 address, or undefined. URL's host parser does the RFC 4291 parsing. */
function parseV6(ip: string): number[] | undefined {
  let host: string;
  try {
    host = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const halves = host.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0] ?? '');
  const tail = halves.length > 1 ? groups(halves[1] ?? '') : [];
  const all = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  return all.flatMap((g) => {
    const n = parseInt(g, 16);
    return [n >> 8, n & 0xff];
  });
}

function formatV6(bytes: number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // URL serialises IPv6 the RFC 5952 way, as Go's net.IP.String() does.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * `ip` or `ip/len` → the masked network `a.b.c.d/len` (a bare IP gets /32 or /128), as libcalico's
 * `cnet.ParseCIDROrIP(...).Network()` yields; undefined when it does not parse (libcalico errors).
 */
export function normalizeNet(text: string): string | undefined {
  const [ip = '', len, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const v4 = parseV4(ip);
  const bytes = v4 ?? (ip.includes(':') ? parseV6(ip) : undefined);
  if (bytes === undefined) return undefined;
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  const masked = bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
  return `${v4 ? masked.join('.') : formatV6(masked)}/${prefix}`;
}

/** The address without its prefix, as Go prints a parsed IP (IPv6 compressed). */
export function normalizeIp(text: string): string | undefined {
  const t = text.trim();
  if (t.includes('/')) return undefined;
  const net = normalizeNet(t);
  return net === undefined ? undefined : net.slice(0, net.lastIndexOf('/'));
}

export function isV6(net: string): boolean {
  return net.includes(':');
}

// ---- v3 metadata -------------------------------------------------------------------------------

/**
 * libcalico-go's `conversion.ConvertUID`: derived resources (profiles from namespaces and service
 * accounts) get the source UID with the bits of every byte reversed, except the version byte (6)
 * and the variant byte (8), so the two never collide in Kubernetes' garbage collector.
 */
export function convertUid(uid: string): string | undefined {
  const hex = uid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined;
  const bytes = Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
  const rev = (b: number): number => {
    let r = 0;
    for (let i = 0; i < 8; i++) r |= ((b >> i) & 1) << (7 - i);
    return r;
  };
  const out = bytes.map((b, i) => (i === 6 || i === 8 ? b : rev(b)));
  const h = out.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
