/**
 * Golden tests of Kubernetes NetworkPolicy → v1 policy (`libcalico`). Expected values written out
 * by hand from conversion.go (`K8sNetworkPolicyToCalico` and helpers), updateprocessors/rules.go
 * and networkpolicyprocessor.go, and selector/parser/ast.go for how re-parsed selectors print
 * (the v3 → v1 half is shared with Calico policies: test/upstream/libcalico-calico-policy.test.ts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/server/upstream/json.js';
import { convertNetworkPolicy } from '../../src/server/upstream/projections/libcalico-network-policy.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { fixturesDir } from '../support/fixtures.js';

const objectsDir = join(fixturesDir(), 'objects');
const load = (rel: string): KubeObject => parseJson(readFileSync(join(objectsDir, rel), 'utf8')) as KubeObject;
const ORCH = "projectcalico.org/orchestrator == 'k8s'";

function policy(spec: Record<string, unknown>, name = 'p', namespace = 'demo'): { key: string; value: Record<string, unknown> } {
  const out = convertNetworkPolicy({ kind: 'NetworkPolicy', metadata: { name, namespace }, spec });
  expect(out).toHaveLength(1);
  const [key, value] = out[0] as [string, Record<string, unknown>];
  return { key, value };
}

describe('libcalico Kubernetes NetworkPolicy → policy', () => {
  it('converts web-allow-frontend (pod + namespace selector peer, TCP 80) to the exact v1 policy', () => {
    const [[key, value]] = convertNetworkPolicy(load('k8s/networkpolicy-web-allow-frontend.constructed.json')) as [[string, unknown]];
    expect(key).toBe('/calico/v1/policy/tier/default/policy/demo%2fknp.default.web-allow-frontend');
    expect(value).toEqual({
      namespace: 'demo',
      order: 1000,
      inbound_rules: [
        {
          action: 'allow',
          protocol: 'tcp',
          src_selector: `(pcns.kubernetes.io/metadata.name == "frontend") && (${ORCH} && role == 'frontend')`,
          dst_ports: [80],
          orig_src_selector: `${ORCH} && role == 'frontend'`,
          orig_src_namespace_selector: "kubernetes.io/metadata.name == 'frontend'",
        },
      ],
      selector: `(${ORCH} && app == 'web') && projectcalico.org/namespace == 'demo'`,
      // apply_on_forward is false for namespaced policies since the 3.30 processors: left out.
      types: ['ingress'],
    });
  });

  it('converts the verbatim allow-all-egress policy: one rule with no match, egress only', () => {
    const [[key, value]] = convertNetworkPolicy(load('k8s/networkpolicy-default-allow-egress.kind-v1.24.json')) as [[string, unknown]];
    expect(key).toBe('/calico/v1/policy/tier/default/policy/policy1%2fknp.default.knp-default-allow-egress');
    expect(value).toEqual({
      namespace: 'policy1',
      order: 1000,
      outbound_rules: [{ action: 'allow' }],
      selector: `(${ORCH}) && projectcalico.org/namespace == 'policy1'`,
      types: ['egress'],
    });
  });

  it('converts every peer form: pod selector, namespace selector (all operators), empty namespace selector, both, ipBlock with excepts, none', () => {
    const { value } = policy({
      podSelector: {},
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { role: 'db', app: 'x' } } },
            {
              namespaceSelector: {
                matchLabels: { team: 'a' },
                matchExpressions: [
                  { key: 'env', operator: 'In', values: ['prod', 'dev'] },
                  { key: 'tier', operator: 'NotIn', values: ['x'] },
                  { key: 'owned', operator: 'Exists' },
                  { key: 'legacy', operator: 'DoesNotExist' },
                ],
              },
            },
            { namespaceSelector: {} },
            { namespaceSelector: { matchLabels: { team: 'b' } }, podSelector: { matchExpressions: [{ key: 'k', operator: 'Exists' }] } },
            { ipBlock: { cidr: '10.0.0.1/8', except: ['10.1.0.0/16', '10.2.3.4/24'] } },
          ],
        },
        { ports: [{ port: 443 }] },
      ],
    });
    const rules = value['inbound_rules'] as Record<string, unknown>[];
    expect(rules).toEqual([
      {
        action: 'allow',
        src_selector: `(projectcalico.org/namespace == 'demo') && (${ORCH} && app == 'x' && role == 'db')`,
        orig_src_selector: `${ORCH} && app == 'x' && role == 'db'`,
      },
      {
        action: 'allow',
        // Re-parsed and prefixed: double quotes, sorted sets, one AND node in parentheses.
        src_selector: `((pcns.team == "a" && pcns.env in {"dev", "prod"} && pcns.tier not in {"x"} && has(pcns.owned) && !has(pcns.legacy))) && (${ORCH})`,
        orig_src_selector: ORCH,
        orig_src_namespace_selector: "team == 'a' && env in { 'prod', 'dev' } && tier not in { 'x' } && has(owned) && ! has(legacy)",
      },
      {
        action: 'allow',
        src_selector: `(has(projectcalico.org/namespace)) && (${ORCH})`,
        orig_src_selector: ORCH,
        orig_src_namespace_selector: 'all()',
      },
      {
        action: 'allow',
        src_selector: `(pcns.team == "b") && (${ORCH} && has(k))`,
        orig_src_selector: `${ORCH} && has(k)`,
        orig_src_namespace_selector: "team == 'b'",
      },
      // Masked like Go's net.ParseCIDR; excepts become the negated nets.
      { action: 'allow', src_nets: ['10.0.0.0/8'], '!src_nets': ['10.1.0.0/16', '10.2.3.0/24'] },
      // No peers, one TCP port (protocol defaults to TCP).
      { action: 'allow', protocol: 'tcp', dst_ports: [443] },
    ]);
    expect(value['selector']).toBe(`(${ORCH}) && projectcalico.org/namespace == 'demo'`);
  });

  it('groups ports per protocol (sorted), merges numeric ports into ranges, passes named ports and endPort ranges', () => {
    const { value } = policy({
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          ports: [
            { protocol: 'TCP', port: 82 },
            { protocol: 'TCP', port: 'http' },
            { protocol: 'TCP', port: 80 },
            { protocol: 'TCP', port: 81 },
            { protocol: 'TCP', port: 9000, endPort: 9002 },
            { protocol: 'UDP', port: 53 },
            { protocol: 'SCTP' },
          ],
        },
      ],
      egress: [{ to: [{ ipBlock: { cidr: 'fd00:0:0:0::1/64' } }], ports: [{ protocol: 'UDP', port: 'dns' }] }],
    });
    expect(value['inbound_rules']).toEqual([
      // SCTP with no port: all SCTP ports.
      { action: 'allow', protocol: 'sctp' },
      { action: 'allow', protocol: 'tcp', dst_ports: ['http', '80:82', '9000:9002'] },
      { action: 'allow', protocol: 'udp', dst_ports: [53] },
    ]);
    expect(value['outbound_rules']).toEqual([{ action: 'allow', protocol: 'udp', dst_nets: ['fd00::/64'], dst_ports: ['dns'] }]);
    expect(value['types']).toEqual(['ingress', 'egress']);
  });

  it('merges unbounded port ranges as intervals, never port by port (a CRD-written endPort or string range)', () => {
    // StagedKubernetesNetworkPolicy's CRD bounds neither endPort (int32) nor a string port: expanded
    // port by port, this pushed 2^31 numbers, a fatal abort of every replica at every list.
    const { value } = policy({
      podSelector: {},
      ingress: [{
        ports: [
          { protocol: 'TCP', port: 1, endPort: 2_147_483_647 },
          { protocol: 'TCP', port: 2 },
          { protocol: 'UDP', port: '10:99999999999' },
          { protocol: 'UDP', port: 5 },
          { protocol: 'UDP', port: 7, endPort: 6 },
          { protocol: 'UDP', port: 6 },
          { protocol: 'UDP', port: 'dns' },
        ],
      }],
    });
    expect(value['inbound_rules']).toEqual([
      { action: 'allow', protocol: 'tcp', dst_ports: ['1:2147483647'] },
      // 5 and 6 merge, the reversed 7:6 covers nothing, 10:… stays apart from them.
      { action: 'allow', protocol: 'udp', dst_ports: ['dns', '5:6', '10:99999999999'] },
    ]);
  });

  it('a port list with an all-ports entry keeps all ports for that protocol', () => {
    const { value } = policy({ podSelector: {}, ingress: [{ ports: [{ protocol: 'TCP' }, { protocol: 'TCP', port: 80 }] }] });
    expect(value['inbound_rules']).toEqual([{ action: 'allow', protocol: 'tcp' }]);
  });

  it('egress peers go to dst_*; a policy with no policyTypes is ingress only', () => {
    const { value } = policy({
      podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] },
      egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
    });
    expect(value['outbound_rules']).toEqual([
      {
        action: 'allow',
        dst_selector: `(projectcalico.org/namespace == 'demo') && (${ORCH} && app == 'db')`,
        orig_dst_selector: `${ORCH} && app == 'db'`,
      },
    ]);
    expect(value['types']).toEqual(['ingress']);
    expect(value['selector']).toBe(`(${ORCH} && app in { 'a', 'b' }) && projectcalico.org/namespace == 'demo'`);
  });
});
