/**
 * Golden tests of FelixConfiguration → per-field config keys (`libcalico`), and of the Go text
 * forms those values use. Expected values written out by hand from libcalico-go's
 * configurationprocessor.go and felixconfigprocessor.go (and their tests), the Go struct
 * `FelixConfigurationSpec`, and Go's time/strconv formatting rules.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { entryProjector } from '../../src/server/upstream/projections/index.js';
import { resource } from '../../src/registry.js';
import { FIELDS, convertFelixConfiguration } from '../../src/server/upstream/projections/libcalico-felix-config.js';
import { goDurationString, goFloatV, parseGoDuration } from '../../src/server/upstream/projections/go-format.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { fixturesDir } from '../support/fixtures.js';
import { libcalicoViewHarness, loadFixture } from './helpers.js';

const FC = 'felixconfigurations.crd.projectcalico.org';

function fc(name: string, spec: Record<string, unknown>, annotations?: Record<string, string>): KubeObject {
  const metadata: Record<string, unknown> = { name };
  if (annotations) metadata['annotations'] = { 'projectcalico.org/metadata': JSON.stringify({ annotations }) };
  return { kind: 'FelixConfiguration', metadata, spec } as KubeObject;
}

const entries = (o: KubeObject): [string, unknown][] => convertFelixConfiguration(o).map(([k, v]) => [k, v]);

describe('libcalico FelixConfiguration → config keys', () => {
  it('the default resource created at calico-node start → one global key per set field, in struct order', () => {
    const out = entryProjector(resource(FC), 'libcalico').entries(loadFixture('calico/felixconfiguration-default.constructed.json'), 'unused');
    expect(out).toEqual([
      ['/calico/v1/config/LogSeverityScreen', 'Info'],
      ['/calico/v1/config/ReportingIntervalSecs', '0'],
      ['/calico/v1/config/BPFConnectTimeLoadBalancing', 'TCP'],
      ['/calico/v1/config/BPFHostNetworkedNATWithoutCTLB', 'Enabled'],
      ['/calico/v1/config/FloatingIPs', 'Disabled'],
    ]);
  });

  it('node.<name> → host config keys; field types stringified as the processor does (its own test case)', () => {
    const out = entries(
      fc('node.mynode', {
        routeRefreshInterval: '12.345s',
        iptablesLockProbeInterval: '54.321ms',
        endpointReportingDelay: '0s',
        ipsetsRefreshInterval: '100ms',
        interfacePrefix: 'califoobar',
        ipipEnabled: false,
        iptablesMarkMask: 1313,
        failsafeInboundHostPorts: [],
        failsafeOutboundHostPorts: [
          { protocol: 'TCP', port: 1234, net: '0.0.0.0/0' },
          { protocol: 'UDP', port: 22, net: '0.0.0.0/0' },
          { protocol: 'TCP', port: 65535, net: '0.0.0.0/0' },
        ],
        externalNodesList: ['1.1.1.1', '2.2.2.2'],
        iptablesNATOutgoingInterfaceFilter: 'cali-123',
        routeTableRanges: [{ min: 43, max: 211 }],
        nftablesMarkMask: 1313,
        nftablesRefreshInterval: '100ms',
        nftablesFilterDenyAction: 'Accept',
        nftablesFilterAllowAction: 'Drop',
        nftablesMangleAllowAction: 'Accept',
      }),
    );
    const h = '/calico/v1/host/mynode/config/';
    expect(new Map(out)).toEqual(
      new Map([
        [`${h}RouteRefreshInterval`, '12.345'],
        [`${h}IptablesLockProbeIntervalMillis`, '54.321'],
        [`${h}EndpointReportingDelaySecs`, '0'],
        [`${h}IpsetsRefreshInterval`, '0.1'],
        [`${h}InterfacePrefix`, 'califoobar'],
        [`${h}IpInIpEnabled`, 'false'],
        [`${h}IptablesMarkMask`, '1313'],
        [`${h}FailsafeInboundHostPorts`, 'none'],
        [`${h}FailsafeOutboundHostPorts`, 'tcp:0.0.0.0/0:1234,udp:0.0.0.0/0:22,tcp:0.0.0.0/0:65535'],
        [`${h}ExternalNodesCIDRList`, '1.1.1.1,2.2.2.2'],
        [`${h}IptablesNATOutgoingInterfaceFilter`, 'cali-123'],
        [`${h}RouteTableRanges`, '43-211'],
        [`${h}NftablesRefreshInterval`, '0.1'],
        [`${h}NftablesMarkMask`, '1313'],
        [`${h}NftablesFilterDenyAction`, 'Accept'],
        [`${h}NftablesFilterAllowAction`, 'Drop'],
        [`${h}NftablesMangleAllowAction`, 'Accept'],
      ]),
    );
  });

  it('structured fields: health timeouts, conntrack timeouts, log filters, ports, IPv6 failsafe nets, route table range', () => {
    const out = new Map(
      entries(
        fc('default', {
          healthTimeoutOverrides: [
            { name: 'Foo', timeout: '20s' },
            { name: 'Bar', timeout: '1m30s' },
            { name: 'Baz', timeout: '1500ms' },
            { name: 'Qux', timeout: '1h' },
          ],
          bpfConntrackTimeouts: { udpTimeout: '60s', creationGracePeriod: '10s', tcpFinsSeen: 'Auto' },
          bpfLogFilters: { weps: 'tcp', all: 'host 10.0.0.1' },
          kubeNodePortRanges: [30000, '30000:32767', '8080'],
          natPortRange: '32768:65535',
          bpfPSNATPorts: 20000,
          failsafeInboundHostPorts: [{ protocol: 'UDP', port: 53, net: 'fd00::/8' }, { protocol: 'TCP', port: 22 }],
          routeTableRange: { min: 1, max: 250 },
          wireguardKeepAlive: '25s',
          usageReportingInterval: '86400s',
          usageReportingInitialDelay: '277h46m40s',
        }),
      ),
    );
    const g = '/calico/v1/config/';
    expect(out.get(`${g}HealthTimeoutOverrides`)).toBe('Foo=20s,Bar=1m30s,Baz=1.5s,Qux=1h0m0s');
    expect(out.get(`${g}BPFConntrackTimeouts`)).toBe('CreationGracePeriod=10s,TCPFinsSeen=Auto,UDPTimeout=60s');
    expect(out.get(`${g}BPFLogFilters`)).toBe('all=host 10.0.0.1,weps=tcp,');
    expect(out.get(`${g}KubeNodePortRanges`)).toBe('[30000 30000:32767 8080]');
    expect(out.get(`${g}NATPortRange`)).toBe('32768:65535');
    expect(out.get(`${g}BPFPSNATPorts`)).toBe('20000');
    expect(out.get(`${g}FailsafeInboundHostPorts`)).toBe('udp:[fd00::/8]:53,tcp:22');
    expect(out.get(`${g}RouteTableRange`)).toBe('1-250');
    expect(out.get(`${g}WireguardPersistentKeepAlive`)).toBe('25');
    expect(out.get(`${g}UsageReportingIntervalSecs`)).toBe('86400');
    // 1,000,000 s: Go's %v of a float64 switches to exponent form at 1e6.
    expect(out.get(`${g}UsageReportingInitialDelaySecs`)).toBe('1e+06');
  });

  it('unset, empty and null fields: no key for "" strings and nulls, a key with "" for pointer strings', () => {
    const out = entries(fc('default', { dataplaneDriver: '', healthHost: '', debugHost: null, healthTimeoutOverrides: [], logPrefix: 'calico-drop' }));
    expect(out).toEqual([
      ['/calico/v1/config/LogPrefix', 'calico-drop'],
      ['/calico/v1/config/HealthHost', ''],
    ]);
    expect(entries(fc('default', {}))).toEqual([]);
  });

  it('unknown spec fields are ignored, as Go decoding drops them', () => {
    expect(entries(fc('default', { notAFelixField: 'x', logSeverityScreen: 'Warning' }))).toEqual([['/calico/v1/config/LogSeverityScreen', 'Warning']]);
  });

  it('config.projectcalico.org/ annotations of the v3 object override fields and add names, unvalidated', () => {
    const out = entries(
      fc('node.worker-1', { logSeverityScreen: 'Info', ipipMTU: 1440 }, { 'config.projectcalico.org/LogSeverityScreen': 'Debug', 'config.projectcalico.org/ZNew': 'z', 'config.projectcalico.org/ANew': 'a', other: 'ignored' }),
    );
    expect(out).toEqual([
      ['/calico/v1/host/worker-1/config/LogSeverityScreen', 'Debug'],
      ['/calico/v1/host/worker-1/config/IpInIpMtu', '1440'],
      ['/calico/v1/host/worker-1/config/ANew', 'a'],
      ['/calico/v1/host/worker-1/config/ZNew', 'z'],
    ]);
  });

  it('names other than default / node.<name> and values Go cannot decode are errors (object counted and skipped)', () => {
    expect(() => convertFelixConfiguration(fc('foobar', {}))).toThrow(/only "default" or "node.<name>"/);
    expect(() => convertFelixConfiguration(fc('default', { ipipEnabled: 'yes' }))).toThrow(/ipipEnabled: not a boolean/);
    expect(() => convertFelixConfiguration(fc('default', { reportingInterval: '30' }))).toThrow(/invalid duration/);
    expect(() => convertFelixConfiguration(fc('default', { metadataPort: 80.5 }))).toThrow(/not an integer/);
    // `node.` alone has an empty node name, which the processor takes for global config.
    expect(entries(fc('node.', { logPrefix: 'x' }))).toEqual([['/calico/v1/config/LogPrefix', 'x']]);
  });

  it('covers every property of the v3.31 FelixConfiguration CRD, each with its own v1 name', () => {
    const crd = parse(readFileSync(join(fixturesDir(), 'calico-crds', 'crd.projectcalico.org_felixconfigurations.yaml'), 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, unknown> } } } } }[] };
    };
    const props = Object.keys(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties).sort();
    expect(FIELDS.map(([json]) => json).sort()).toEqual(props);
    expect(new Set(FIELDS.map(([, name]) => name)).size).toBe(FIELDS.length);
  });

  it('in a view: a field removed is its key deleted, the resource deleted is every key deleted', () => {
    const { view, state } = libcalicoViewHarness(FC);
    const obj = fc('default', { logSeverityScreen: 'Info', ipipEnabled: true, reportingInterval: '30s' });
    view.upsert(obj);
    expect([...state.keys()]).toEqual(['/calico/v1/config/LogSeverityScreen', '/calico/v1/config/IpInIpEnabled', '/calico/v1/config/ReportingIntervalSecs']);
    view.upsert(fc('default', { logSeverityScreen: 'Info', reportingInterval: '30s' }));
    expect(state.has('/calico/v1/config/IpInIpEnabled')).toBe(false);
    expect(state.size).toBe(2);
    view.upsert(fc('node.worker-1', { ipipEnabled: false }));
    expect(state.get('/calico/v1/host/worker-1/config/IpInIpEnabled')?.length).toBeGreaterThan(0);
    view.delete(fc('default', {}));
    expect([...state.keys()]).toEqual(['/calico/v1/host/worker-1/config/IpInIpEnabled']);
    expect(view.size).toBe(1);
  });
});

describe('Go text forms', () => {
  it('time.ParseDuration', () => {
    const s = 1_000_000_000n;
    expect(parseGoDuration('90s')).toBe(90n * s);
    expect(parseGoDuration('1h30m')).toBe(5400n * s);
    expect(parseGoDuration('1.5s')).toBe(1_500_000_000n);
    expect(parseGoDuration('.5s')).toBe(500_000_000n);
    expect(parseGoDuration('1.s')).toBe(s);
    expect(parseGoDuration('-2m')).toBe(-120n * s);
    expect(parseGoDuration('0')).toBe(0n);
    expect(parseGoDuration('300ms')).toBe(300_000_000n);
    expect(parseGoDuration('2us')).toBe(2000n);
    expect(parseGoDuration('2µs')).toBe(2000n);
    for (const bad of ['', '5', '1x', '.s', 's', '1h-2m', '9999999999h']) expect(parseGoDuration(bad), bad).toBeUndefined();
  });

  it('time.Duration.String', () => {
    expect(goDurationString(0n)).toBe('0s');
    expect(goDurationString(999n)).toBe('999ns');
    expect(goDurationString(1500n)).toBe('1.5µs');
    expect(goDurationString(100_000_000n)).toBe('100ms');
    expect(goDurationString(1_500_000_000n)).toBe('1.5s');
    expect(goDurationString(90_000_000_000n)).toBe('1m30s');
    expect(goDurationString(3_600_000_000_000n)).toBe('1h0m0s');
    expect(goDurationString(-5_000_000_000n)).toBe('-5s');
  });

  it('fmt %v of a float64', () => {
    expect(goFloatV(90)).toBe('90');
    expect(goFloatV(0.05)).toBe('0.05');
    expect(goFloatV(123456)).toBe('123456');
    expect(goFloatV(1e6)).toBe('1e+06');
    expect(goFloatV(1234567)).toBe('1.234567e+06');
    expect(goFloatV(0.0001)).toBe('0.0001');
    expect(goFloatV(0.00001)).toBe('1e-05');
    expect(goFloatV(12.345)).toBe('12.345');
    expect(goFloatV(-2.5)).toBe('-2.5');
    expect(goFloatV(0)).toBe('0');
  });
});
