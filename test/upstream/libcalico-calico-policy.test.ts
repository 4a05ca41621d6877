/**
 * Golden tests of Calico NetworkPolicy / GlobalNetworkPolicy / staged policies → v1 policies
 * (`libcalico`). Expected values written out by hand from libcalico-go's update processors
 * (networkpolicyprocessor.go, globalnetworkpolicyprocessor.go, staged*processor.go, rules.go,
 * selectors.go), model/policy.go and model/rule.go, and the selector parser's printed form.
 */
import { describe, expect, it } from 'vitest';
import { resource } from '../../src/registry.js';
import { entryProjector } from '../../src/server/upstream/projections/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { libcalicoViewHarness, loadFixture } from './helpers.js';

const NP = 'networkpolicies.crd.projectcalico.org';
const GNP = 'globalnetworkpolicies.crd.projectcalico.org';
const SNP = 'stagednetworkpolicies.crd.projectcalico.org';
const SGNP = 'stagedglobalnetworkpolicies.crd.projectcalico.org';
const SKNP = 'stagedkubernetesnetworkpolicies.crd.projectcalico.org';

const project = (id: string, obj: KubeObject): [string, unknown][] => entryProjector(resource(id), 'libcalico').entries(obj, 'unused').map(([k, v]) => [k, v]);

function one(id: string, obj: KubeObject): { key: string; value: Record<string, unknown> } {
  const out = project(id, obj);
  expect(out).toHaveLength(1);
  const [key, value] = out[0] as [string, Record<string, unknown>];
  return { key, value };
}

/** A CR as 3.31 stores it: tier-prefixed CR name, v3 name in the metadata annotation. */
function cr(kind: string, name: string, spec: Record<string, unknown>, namespace?: string): KubeObject {
  const tier = typeof spec['tier'] === 'string' ? spec['tier'] : 'default';
  const metadata: Record<string, unknown> = { name: `${tier}.${name}`, annotations: { 'projectcalico.org/metadata': JSON.stringify({ name }) } };
  if (namespace !== undefined) metadata['namespace'] = namespace;
  return { kind, metadata, spec } as KubeObject;
}

const np = (spec: Record<string, unknown>, name = 'p', ns = 'demo'): KubeObject => cr('NetworkPolicy', name, spec, ns);
const gnp = (spec: Record<string, unknown>, name = 'g'): KubeObject => cr('GlobalNetworkPolicy', name, spec);
const NS_DEMO = "projectcalico.org/namespace == 'demo'";

describe('libcalico Calico NetworkPolicy → v1 policy', () => {
  it('the docs sample (production/allow-tcp-6379) → the exact v1 policy under tier default', () => {
    const { key, value } = one(NP, loadFixture('calico/networkpolicy-production.default.allow-tcp-6379.constructed.json'));
    expect(key).toBe('/calico/v1/policy/tier/default/policy/production%2fallow-tcp-6379');
    expect(value).toEqual({
      namespace: 'production',
      inbound_rules: [
        {
          action: 'allow',
          protocol: 'tcp',
          src_selector: "(projectcalico.org/namespace == 'production') && (role == 'frontend')",
          dst_ports: [6379],
          orig_src_selector: "role == 'frontend'",
          metadata: { annotations: { from: 'frontend', to: 'database' } },
        },
      ],
      outbound_rules: [{ action: 'allow' }],
      selector: "(role == 'database') && projectcalico.org/namespace == 'production'",
      types: ['ingress', 'egress'],
    });
    // Struct order of model.Policy / model.Rule, so equal policies are equal bytes.
    expect(Object.keys(value)).toEqual(['namespace', 'inbound_rules', 'outbound_rules', 'selector', 'types']);
  });

  it('empty selector → the namespace term alone; no types → no types (the processor does not default them)', () => {
    const { value } = one(NP, np({ order: 100.5 }));
    expect(value).toEqual({ namespace: 'demo', order: 100.5, selector: NS_DEMO });
  });

  it('serviceAccountSelector → pcsa. labels AND-ed after the namespaced selector, all() kept', () => {
    expect(one(NP, np({ selector: "app == 'web'", serviceAccountSelector: "role == 'api' || role == 'admin'" })).value['selector']).toBe(
      `((app == 'web') && ${NS_DEMO}) && (pcsa.role == "api" || pcsa.role == "admin")`,
    );
    expect(one(NP, np({ serviceAccountSelector: 'all()' })).value['selector']).toBe(`(${NS_DEMO}) && all()`);
    // A selector the parser refuses is dropped, as libcalico-go drops it.
    expect(one(NP, np({ serviceAccountSelector: 'role ==' })).value['selector']).toBe(NS_DEMO);
  });

  it('rule peers: namespaceSelector (pcns., all(), global()), notSelector alone, serviceAccounts, nothing', () => {
    const rule = (source: Record<string, unknown>): Record<string, unknown> =>
      (one(NP, np({ ingress: [{ action: 'Allow', source }] })).value['inbound_rules'] as Record<string, unknown>[])[0] as Record<string, unknown>;
    expect(rule({ namespaceSelector: "team in {'b', 'a', 'a'}", selector: "app == 'x'" })).toEqual({
      action: 'allow',
      src_selector: `(pcns.team in {"a", "b"}) && (app == 'x')`,
      orig_src_selector: "app == 'x'",
      orig_src_namespace_selector: "team in {'b', 'a', 'a'}",
    });
    expect(rule({ namespaceSelector: "a == 'x' && b == 'y'" })['src_selector']).toBe('(pcns.a == "x" && pcns.b == "y")');
    expect(rule({ namespaceSelector: 'all()' })['src_selector']).toBe('has(projectcalico.org/namespace)');
    expect(rule({ namespaceSelector: 'global()', selector: 'has(x)' })['src_selector']).toBe('(!has(projectcalico.org/namespace)) && (has(x))');
    expect(rule({ notSelector: "app == 'bad'" })).toEqual({
      action: 'allow',
      src_selector: NS_DEMO,
      '!src_selector': "app == 'bad'",
      '!orig_src_selector': "app == 'bad'",
    });
    expect(rule({ serviceAccounts: { names: ['sa2', 'sa1'], selector: "role == 'admin'" }, selector: "app == 'x'" })).toEqual({
      action: 'allow',
      src_selector: `(${NS_DEMO}) && (((pcsa.role == "admin") && (projectcalico.org/serviceaccount in {"sa1", "sa2"})) && (app == 'x'))`,
      orig_src_selector: "app == 'x'",
      orig_src_service_acct_names: ['sa2', 'sa1'],
      orig_src_service_acct_selector: "role == 'admin'",
    });
    expect(rule({ serviceAccounts: { names: ['web'] } })['src_selector']).toBe(`(${NS_DEMO}) && (projectcalico.org/serviceaccount in {"web"})`);
    expect(rule({})).toEqual({ action: 'allow' });
  });

  it('every other rule field: actions, protocols, ICMP, nets (masked; bad ones dropped or nil), ports, services, HTTP', () => {
    const { value } = one(
      NP,
      np({
        egress: [
          {
            action: 'Pass',
            ipVersion: 4,
            protocol: 'UDP',
            notProtocol: 6,
            icmp: { type: 0, code: 0 },
            notICMP: { type: 8 },
            source: { nets: ['10.0.0.1/24', 'bad'], notNets: ['10.9.0.0/16'], ports: [53, '8080:8081', 'dns', '443:443', '22'], notPorts: [1] },
            destination: {
              nets: ['10.1.2.3', 'bad', 'fd00::1/64'],
              notNets: ['10.2.0.0/16'],
              ports: [80],
              notPorts: ['9000:9001'],
              services: { name: 'kubernetes', namespace: 'default' },
            },
            http: { methods: ['GET'], paths: [{ exact: '/a' }, { prefix: '/b' }] },
          },
          { action: 'Deny', source: { services: { name: 'db', namespace: 'data' } } },
          { action: 'Log' },
        ],
      }),
    );
    expect(value['outbound_rules']).toEqual([
      {
        action: 'next-tier',
        ip_version: 4,
        protocol: 'udp',
        '!protocol': 6,
        icmp_type: 0,
        icmp_code: 0,
        '!icmp_type': 8,
        src_nets: ['10.0.0.0/24'],
        src_ports: [53, '8080:8081', 'dns', 443, 22],
        dst_nets: ['10.1.2.3/32', null, 'fd00::/64'],
        dst_ports: [80],
        dst_service: 'kubernetes',
        dst_service_ns: 'default',
        '!src_nets': ['10.9.0.0/16'],
        '!src_ports': [1],
        '!dst_nets': ['10.2.0.0/16'],
        '!dst_ports': ['9000:9001'],
        http: { methods: ['GET'], paths: [{ exact: '/a' }, { prefix: '/b' }] },
      },
      { action: 'deny', src_service: 'db', src_service_ns: 'data' },
      { action: 'log' },
    ]);
  });

  it('a non-default tier (spec.tier) names the key; performance hints pass through', () => {
    const { key, value } = one(NP, np({ tier: 'security', order: 10, selector: 'all()', performanceHints: ['AssumeNeededOnEveryNode'] }, 'block'));
    expect(key).toBe('/calico/v1/policy/tier/security/policy/demo%2fblock');
    expect(value).toEqual({ namespace: 'demo', order: 10, selector: `(all()) && ${NS_DEMO}`, performance_hints: ['AssumeNeededOnEveryNode'] });
  });
});

describe('libcalico GlobalNetworkPolicy → v1 policy', () => {
  it('the docs sample (allow-tcp-6379) → selectors as written, no namespace', () => {
    const { key, value } = one(GNP, loadFixture('calico/globalnetworkpolicy-default.allow-tcp-6379.constructed.json'));
    expect(key).toBe('/calico/v1/policy/tier/default/policy/allow-tcp-6379');
    expect(value).toEqual({
      inbound_rules: [
        {
          action: 'allow',
          protocol: 'tcp',
          src_selector: "role == 'frontend'",
          dst_ports: [6379],
          orig_src_selector: "role == 'frontend'",
          metadata: { annotations: { from: 'frontend', to: 'database' } },
        },
      ],
      outbound_rules: [{ action: 'allow' }],
      selector: "role == 'database'",
      types: ['ingress', 'egress'],
    });
  });

  it('namespaceSelector and serviceAccountSelector are prefixed and AND-ed; all() becomes has(...) everywhere', () => {
    expect(one(GNP, gnp({ selector: "app == 'x'", namespaceSelector: "team == 'a'" })).value['selector']).toBe(`(app == 'x') && pcns.team == "a"`);
    expect(one(GNP, gnp({ namespaceSelector: 'all()' })).value['selector']).toBe('has(projectcalico.org/namespace)');
    expect(one(GNP, gnp({ selector: 'all()', namespaceSelector: "team == 'a'" })).value['selector']).toBe('(has(projectcalico.org/namespace)) && pcns.team == "a"');
    expect(one(GNP, gnp({ serviceAccountSelector: 'all()' })).value['selector']).toBe('has(projectcalico.org/serviceaccount)');
    expect(one(GNP, gnp({ selector: "a == 'b'", namespaceSelector: "n == 'x'", serviceAccountSelector: "s == 'y'" })).value['selector']).toBe(
      `((a == 'b') && pcns.n == "x") && pcsa.s == "y"`,
    );
  });

  it('empty selector is sent as ""; untracked, pre-DNAT and apply-on-forward from the spec; rule peers keep their own selectors', () => {
    const { value } = one(
      GNP,
      gnp({ doNotTrack: true, preDNAT: true, applyOnForward: true, types: ['Ingress'], ingress: [{ action: 'Allow', source: { selector: "a == 'b'", notSelector: 'has(c)' } }] }),
    );
    expect(value).toEqual({
      inbound_rules: [{ action: 'allow', src_selector: "a == 'b'", '!src_selector': 'has(c)', orig_src_selector: "a == 'b'", '!orig_src_selector': 'has(c)' }],
      selector: '',
      untracked: true,
      pre_dnat: true,
      apply_on_forward: true,
      types: ['ingress'],
    });
  });
});

describe('libcalico staged policies', () => {
  it('staged: names, the enforced form plus staged_action; Delete gives no key', () => {
    const snp = cr('StagedNetworkPolicy', 'p', { stagedAction: 'Set', selector: "a == 'b'", types: ['Egress'] }, 'demo');
    expect(one(SNP, snp)).toEqual({
      key: '/calico/v1/policy/tier/default/policy/demo%2fstaged:p',
      value: { namespace: 'demo', selector: `(a == 'b') && ${NS_DEMO}`, types: ['egress'], staged_action: 'Set' },
    });
    const sgnp = cr('StagedGlobalNetworkPolicy', 'g', { tier: 'security', namespaceSelector: 'all()' });
    expect(one(SGNP, sgnp)).toEqual({ key: '/calico/v1/policy/tier/security/policy/staged:g', value: { selector: 'has(projectcalico.org/namespace)' } });
    expect(project(SGNP, cr('StagedGlobalNetworkPolicy', 'g', { stagedAction: 'Delete' }))).toEqual([]);
  });

  it('in a view: a staged policy switched to Delete loses its key; deleting a policy deletes it', () => {
    const { view, state } = libcalicoViewHarness(SNP);
    view.upsert(cr('StagedNetworkPolicy', 'p', { stagedAction: 'Set' }, 'demo'));
    expect([...state.keys()]).toEqual(['/calico/v1/policy/tier/default/policy/demo%2fstaged:p']);
    view.upsert(cr('StagedNetworkPolicy', 'p', { stagedAction: 'Delete' }, 'demo'));
    expect(state.size).toBe(0);
    const gnps = libcalicoViewHarness(GNP);
    gnps.view.upsert(gnp({ selector: "a == 'b'" }));
    expect(gnps.state.size).toBe(1);
    gnps.view.delete(gnp({}));
    expect(gnps.state.size).toBe(0);
  });

  it('StagedKubernetesNetworkPolicy: the Kubernetes conversion named staged:knp.default.<name>, plus staged_action', () => {
    const k8sSpec = { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 80 }] }] };
    const enforced = one('networkpolicies.networking.k8s.io', { kind: 'NetworkPolicy', metadata: { name: 'web', namespace: 'demo' }, spec: k8sSpec } as KubeObject);
    const staged = one(SKNP, { kind: 'StagedKubernetesNetworkPolicy', metadata: { name: 'web', namespace: 'demo' }, spec: { ...k8sSpec, stagedAction: 'Learn' } } as KubeObject);
    expect(staged.key).toBe('/calico/v1/policy/tier/default/policy/demo%2fstaged:knp.default.web');
    expect(staged.value).toEqual({ ...enforced.value, staged_action: 'Learn' });
    expect(enforced.value['inbound_rules']).toEqual([
      {
        action: 'allow',
        protocol: 'tcp',
        src_selector: "(has(projectcalico.org/namespace)) && (projectcalico.org/orchestrator == 'k8s')",
        dst_ports: [80],
        orig_src_selector: "projectcalico.org/orchestrator == 'k8s'",
        orig_src_namespace_selector: 'all()',
      },
    ]);
    expect(project(SKNP, { kind: 'StagedKubernetesNetworkPolicy', metadata: { name: 'web', namespace: 'demo' }, spec: { ...k8sSpec, stagedAction: 'Delete' } } as KubeObject)).toEqual([]);
  });

  it('a namespaced policy without a namespace is an error (object counted and skipped)', () => {
    expect(() => project(NP, { kind: 'NetworkPolicy', metadata: { name: 'x' }, spec: {} } as KubeObject)).toThrow(/missing name or namespace/);
  });
});
