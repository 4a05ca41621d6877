import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';
import { isResourceVersion } from '../../proto/resource-version.js';

/** Splits `--endpoints a,b --endpoints c` into URLs (a flag may hold several, comma-separated). */
export function splitUrls(v: readonly string[]): string[] {
  return v.flatMap((e) => e.split(',')).map((e) => e.trim()).filter((e) => e !== '');
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** `cattail converge`: the fleet convergence barrier across replicas (src/cli/converge.ts). */
export const convergeOptions = {
  ...commonOptions,
  endpoints: opt.list({
    default: [],
    help: 'HTTP URL of each replica\'s ops port (where /metrics is served), repeated or comma-separated; every replica is asked, in parallel. Give this or --service.',
    check: (v) => {
      const urls = splitUrls(v);
      if (urls.length === 0) return 'expected at least one http:// or https:// URL';
      const bad = urls.find((u) => !isHttpUrl(u));
      return bad === undefined ? undefined : `expected http:// or https:// URLs, got ${JSON.stringify(bad)}`;
    },
  }),
  service: opt.string({
    default: undefined,
    help: 'NAMESPACE/NAME of the replicas\' Service: every endpoint of its EndpointSlices is asked (ready or not: a stale or draining replica still holds agents), on the port named --service-port-name. Added to --endpoints.',
  }),
  servicePortName: opt.string({
    default: 'metrics',
    help: 'Name of the ops port in the Service\'s EndpointSlices (deploy/ names it metrics).',
    check: (v) => (v === '' ? 'expected a port name' : undefined),
  }),
  serviceScheme: opt.enum({
    values: ['http', 'https'] as const,
    default: 'http',
    help: 'Scheme of the ops port found through --service: https for replicas run with --http-tls. Their certificate must be trusted here (system CAs, NODE_EXTRA_CA_CERTS) and name the pod address asked (an IP SAN); otherwise give --endpoints with a name it carries.',
  }),
  kubeconfig: opt.string({
    default: undefined,
    help: 'Kubeconfig for --service. Unset: KUBECONFIG, ~/.kube/config, then in-cluster config.',
  }),
  resource: opt.string({
    default: '',
    required: true,
    help: 'The resource: its id (networkpolicies.networking.k8s.io) or its plural alone when that is unambiguous (a Kubernetes built-in wins over a CRD, as in kubectl).',
    check: (v) => (v === '' ? 'expected a resource name' : undefined),
  }),
  resourceVersion: opt.string({
    default: '',
    required: true,
    help: 'The resourceVersion every agent must have applied, e.g. the metadata.resourceVersion a write returned.',
    check: (v) => (isResourceVersion(v) ? undefined : 'expected a decimal resourceVersion (1 to 64 digits)'),
  }),
  timeoutMs: opt.int({
    default: 30_000,
    unit: 'ms',
    min: 0,
    max: 300_000,
    help: 'How long each replica waits for its agents; 0 asks for the state now.',
  }),
  node: opt.list({
    default: [],
    help: 'Only these nodes (repeat the flag); each must be connected to some replica and have applied the resourceVersion. Unset: every connected agent.',
    check: (v) => (v.some((n) => n === '' || n.length > 253) ? 'expected node names of 1 to 253 characters' : v.length > 1_000 ? 'expected at most 1000 nodes' : undefined),
  }),
  json: opt.boolean({
    default: false,
    help: 'Print one JSON object (every replica\'s report and the verdict) instead of text.',
  }),
} as const;
