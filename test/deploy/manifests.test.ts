/**
 * The deployment manifests, checked offline: every object against the Kubernetes OpenAPI schemas
 * (kubernetes-models bundles them, with ajv validators), the generated ClusterRole against the
 * registry, the Deployment's flags against the serve option table, and the dashboard's queries
 * against the metrics the server really exports. Where `kubectl` is installed, the kustomizations
 * are also built (`kubectl kustomize` runs offline) and the built output validated.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { resolveConfig } from '../../src/config/load.js';
import { FanOutStats } from '../../src/server/fanout/stats.js';
import { createMetrics, registerStateGauges } from '../../src/server/ops/metrics.js';
import { serveOptions } from '../../src/server/options.js';
import { tlsSettingsOf } from '../../src/server/transport/tls/options.js';
import { UpstreamMetrics } from '../../src/server/upstream/metrics.js';
import { generatedDeployFiles } from '../../scripts/deploy/generate.js';

const repo = join(import.meta.dirname, '..', '..');
const deployDir = join(repo, 'deploy');

type K8sObject = { apiVersion: string; kind: string; metadata?: { name?: string }; [k: string]: unknown };

/** A validator per apiVersion/kind this project ships; an unknown kind is a test failure, not a pass. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

function validate(obj: K8sObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (Model === undefined) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj as never).validate();
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(n) ? [p] : [];
  });
}

function docs(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter((d) => d !== null);
}

const manifests = yamlFiles(deployDir).filter((f) => !f.endsWith('kustomization.yaml'));
const objects = manifests.flatMap((f) => docs(readFileSync(f, 'utf8')).map((o) => ({ file: relative(repo, f), o })));
const deployment = objects.find((x) => x.o.kind === 'Deployment')?.o as unknown as {
  spec: { template: { spec: { hostNetwork: boolean; terminationGracePeriodSeconds: number; volumes: { name: string; emptyDir?: object }[]; containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[]; ports: { name: string; containerPort: number }[]; readinessProbe: { httpGet: { host?: string; path: string; port: string } }; livenessProbe: { httpGet: { host?: string; path: string; port: string } } }[] } } };
};

describe('deploy/ manifests', () => {
  it('every object validates against the Kubernetes OpenAPI schema of its kind', () => {
    expect(objects.length).toBeGreaterThanOrEqual(7);
    for (const { file, o } of objects) expect(() => validate(o), `${file}: ${o.kind}`).not.toThrow();
  });

  it('the schema check rejects a broken object (it is not a pass-through)', () => {
    const broken = structuredClone(objects.find((x) => x.o.kind === 'Deployment')?.o) as K8sObject & { spec: { replicas: unknown } };
    broken.spec.replicas = 'three';
    expect(() => validate(broken)).toThrow(/replicas/);
  });

  it('every kustomization lists files that exist', () => {
    for (const f of yamlFiles(deployDir).filter((x) => x.endsWith('kustomization.yaml'))) {
      const k = docs(readFileSync(f, 'utf8'))[0] as unknown as { resources?: string[]; components?: string[] };
      for (const r of [...(k.resources ?? []), ...(k.components ?? [])]) expect(() => statSync(join(f, '..', r)), `${relative(repo, f)}: ${r}`).not.toThrow();
    }
  });

  it('the ClusterRole is the one generated from the registry (run `npm run deploy:generate`)', () => {
    for (const [file, content] of Object.entries(generatedDeployFiles())) {
      expect(readFileSync(join(repo, file), 'utf8'), file).toBe(content);
    }
  });

  it('the Deployment passes only flags cattail serve knows, and its ports and probes agree with them', () => {
    const c = deployment.spec.template.spec.containers[0];
    if (c === undefined) throw new Error('no container');
    const { config } = resolveConfig(serveOptions, { argv: c.args });
    const port = (name: string): number | undefined => c.ports.find((p) => p.name === name)?.containerPort;
    // Every address (empty host): an IPv6-only cluster's pod IP is IPv6; 0.0.0.0 served none of it.
    expect(config.listen).toBe(`:${port('agents')}`);
    expect(config.httpListen).toBe(`:${port('metrics')}`);
    // The probes go to the health port (loopback, its own connection bound), not to the HTTP port
    // that anyone reaching the node can fill; the kubelet reaches loopback as the pod is on the
    // host network.
    expect(config.healthListen).toBe(`127.0.0.1:${port('health')}`);
    expect(deployment.spec.template.spec.hostNetwork).toBe(true);
    expect(c.readinessProbe.httpGet).toEqual({ host: '127.0.0.1', path: '/readyz', port: 'health' });
    expect(c.livenessProbe.httpGet).toEqual({ host: '127.0.0.1', path: '/livez', port: 'health' });
    // The kubelet's grace must cover the paced drain, or agents are cut off all at once at its
    // end, and the final checkpoint written before it (30 s of room).
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(config.shutdownTimeoutMs + 30_000);
    // The checkpoint directory is a writable volume (the root filesystem is read-only).
    const state = c.volumeMounts.find((m) => m.mountPath === config.stateDir);
    expect(state, 'a volume mounted at --state-dir').toBeDefined();
    const dir = deployment.spec.template.spec.volumes.find((v) => v.name === state?.name)?.emptyDir as { sizeLimit?: string } | undefined;
    expect(dir).toBeDefined();
    // A checkpoint write holds the old file and the new one: both fit under the volume's limit.
    const limit = ((m) => (m === null ? NaN : Number(m[1]) * (m[2] === 'Gi' ? 2 ** 30 : 2 ** 20)))(/^(\d+)(Gi|Mi)$/.exec(dir?.sizeLimit ?? ''));
    expect(2 * config.stateMaxBytes).toBeLessThanOrEqual(limit);
  });

  it('rolls one replica at a time in place, the next only after the previous one\'s drain can have ended', () => {
    const d = deployment as unknown as { spec: { minReadySeconds?: number; strategy: { rollingUpdate: { maxSurge: number; maxUnavailable: number } }; template: { spec: { terminationGracePeriodSeconds: number } } } };
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    // The replacement is created while the old replica drains (a terminating pod is not counted),
    // and the next old replica is terminated once the replacement is available: ready plus
    // minReadySeconds. Below the grace period, the next drain began while the previous one ran.
    expect(d.spec.minReadySeconds ?? 0).toBeGreaterThanOrEqual(d.spec.template.spec.terminationGracePeriodSeconds);
  });

  it('takes the API server\'s own address from kubernetes-services-endpoint when it exists (eBPF without kube-proxy)', () => {
    const c = deployment.spec.template.spec.containers[0] as unknown as { envFrom?: { configMapRef?: { name: string; optional?: boolean } }[]; env: { name: string }[] };
    // Optional: a cluster without the ConfigMap must still start the pod (on the ClusterIP).
    expect(c.envFrom).toContainEqual({ configMapRef: { name: 'kubernetes-services-endpoint', optional: true } });
    // An `env` entry would override the ConfigMap's value (env wins over envFrom).
    expect(c.env.map((e) => e.name)).not.toContain('KUBERNETES_SERVICE_HOST');
  });

  it('caps V8\'s old space at no more than half the memory limit, leaving the rest for Buffers and native memory', () => {
    const c = deployment.spec.template.spec.containers[0] as unknown as { env: { name: string; value?: string }[]; resources: { limits: { memory: string } } };
    const opts = c.env.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
    const cap = /--max-old-space-size=(\d+)/.exec(opts);
    expect(cap, 'NODE_OPTIONS sets --max-old-space-size').not.toBeNull();
    const limitMiB = ((m) => (m === null ? NaN : Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1)))(/^(\d+)(Gi|Mi)$/.exec(c.resources.limits.memory));
    // Half: what Node 20 picks by itself under a cgroup limit (measured); more would raise its ceiling.
    expect(Number(cap?.[1])).toBeLessThanOrEqual(limitMiB / 2);
    // And not so low that the measured live heap (290 MB at 150,000 pods) would be near it.
    expect(Number(cap?.[1])).toBeGreaterThanOrEqual(3 * 290);
  });

  it('the dashboard queries only metrics the server exports', async () => {
    const exported = await exportedMetrics();
    const dash = JSON.parse(readFileSync(join(deployDir, 'dashboards', 'cattail.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    expect(dash.panels.length).toBeGreaterThan(0);
    for (const p of dash.panels) {
      for (const t of p.targets) {
        const names = t.expr.match(/\bcattail_[a-z_]+/g) ?? [];
        expect(names.length, p.title).toBeGreaterThan(0);
        for (const n of names) expect(exported.has(n.replace(/_(bucket|sum|count)$/, '')), `${p.title}: ${n}`).toBe(true);
      }
    }
  });
});

/** The metric names `cattail serve` exports, with the gauges computed at scrape time (ws transport). */
async function exportedMetrics(): Promise<Set<string>> {
  const server = createMetrics(new FanOutStats());
  registerStateGauges(server, {
    connections: () => [], serviceQueueLength: () => 0, catchUpCache: () => ({ entries: 0, bytes: 0 }), handshakeQueueLength: () => 0, snapshotCache: () => ({ builds: 0, bytes: 0 }),
    snapshotPinned: () => ({ builds: 0, bytes: 0 }), transportWaiting: () => 0, inbound: () => ({ heldBytes: 0, holding: 0 }), feeds: [],
  });
  const registry = Registry.merge([server.registry, new UpstreamMetrics().registry]);
  return new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
}

describe('deploy/ alerts', () => {
  it('every alert queries only metrics the server exports, with a severity, a summary and a description', async () => {
    const exported = await exportedMetrics();
    const rule = objects.find((x) => x.o.kind === 'PrometheusRule')?.o as unknown as { spec: { groups: { rules: { alert: string; expr: string; labels: { severity: string }; annotations: { summary: string; description: string } }[] }[] } };
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(5);
    for (const r of rules) {
      const names = r.expr.match(/\bcattail_[a-z_]+/g) ?? [];
      // Prometheus's own `up` of the ServiceMonitor's targets, or the server's metrics.
      expect(names.length > 0 || r.expr.startsWith('up{job="cattail"'), r.alert).toBe(true);
      for (const n of names) expect(exported.has(n), `${r.alert}: ${n}`).toBe(true);
      expect(['warning', 'critical'], r.alert).toContain(r.labels.severity);
      expect(r.annotations.summary, r.alert).not.toBe('');
      expect(r.annotations.description, r.alert).not.toBe('');
    }
  });
});

const kubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Every directory `kubectl apply -k` is documented for: the base and each overlay. */
const BUILDS = ['base', 'overlays/servicemonitor', 'overlays/mtls', 'overlays/mtls-servicemonitor'];
/** The overlays with mutual TLS, and those with the ServiceMonitor component. */
const MTLS = ['overlays/mtls', 'overlays/mtls-servicemonitor'];
const SERVICE_MONITOR = ['overlays/servicemonitor', 'overlays/mtls-servicemonitor'];

function build(dir: string): K8sObject[] {
  return docs(execFileSync('kubectl', ['kustomize', join(deployDir, dir)], { encoding: 'utf8' }));
}

describe('deploy/ overlays', () => {
  it('every overlay under deploy/overlays is among the builds checked below', () => {
    const overlays = readdirSync(join(deployDir, 'overlays')).map((n) => `overlays/${n}`);
    expect(BUILDS.filter((b) => b !== 'base').sort()).toEqual(overlays.sort());
  });
});

describe.skipIf(!kubectl)('deploy/ kustomize builds (kubectl kustomize, offline)', () => {
  it.each(BUILDS)('%s builds and every built object validates', (dir) => {
    const built = build(dir);
    expect(built.length).toBeGreaterThanOrEqual(6);
    for (const o of built) expect(() => validate(o), `${dir}: ${o.kind}`).not.toThrow();
    const dep = built.find((o) => o.kind === 'Deployment') as unknown as { metadata: { namespace: string }; spec: { template: { spec: { containers: { image: string }[] } } } };
    expect(dep.metadata.namespace).toBe('calico-system');
    expect(dep.spec.template.spec.containers[0]?.image).toMatch(/^cattail:\d/);
  });
  it.each(MTLS)('%s passes a complete TLS flag set whose files are in a whole-Secret mount (no subPath: rotation must reach the pod)', (dir) => {
    const built = build(dir);
    const dep = built.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { volumes: { name: string; secret?: { secretName: string } }[]; containers: { args: string[]; volumeMounts: { name: string; mountPath: string; subPath?: string }[]; ports: { name: string; containerPort: number }[]; readinessProbe: { httpGet: { host?: string; port: string; scheme?: string } } }[] } } };
    };
    const c = dep.spec.template.spec.containers[0];
    if (c === undefined) throw new Error('no container');
    const { config } = resolveConfig(serveOptions, { argv: c.args });
    const tls = tlsSettingsOf(config, `deploy/${dir}`);
    expect(tls?.allow).toEqual({ cn: 'typha-client', uriSan: undefined });
    // The probes stay on the plaintext loopback health port, whatever the TLS flags.
    const probe = c.readinessProbe.httpGet;
    expect(`${probe.host ?? ''}:${c.ports.find((p) => p.name === probe.port)?.containerPort ?? ''}`).toBe(config.healthListen);
    expect(probe.scheme).toBeUndefined();
    for (const file of [tls?.files.certFile, tls?.files.keyFile, tls?.files.caFile]) {
      const mount = c.volumeMounts.find((m) => file?.startsWith(`${m.mountPath}/`));
      expect(mount, file).toBeDefined();
      expect(mount?.subPath).toBeUndefined();
      expect(dep.spec.template.spec.volumes.find((v) => v.name === mount?.name)?.secret?.secretName).toBe('cattail-tls');
    }
  });

  it.each(BUILDS)('%s has a ServiceMonitor exactly when it includes the component, scraping the Service\'s metrics port', (dir) => {
    const built = build(dir);
    const monitors = built.filter((o) => o.kind === 'ServiceMonitor') as unknown as { metadata: { namespace: string }; spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] } }[];
    expect(monitors.length).toBe(SERVICE_MONITOR.includes(dir) ? 1 : 0);
    const m = monitors[0];
    if (m === undefined) return;
    const svc = built.find((o) => o.kind === 'Service') as unknown as { metadata: { namespace: string; labels: Record<string, string> }; spec: { ports: { name: string }[] } };
    expect(m.metadata.namespace).toBe(svc.metadata.namespace);
    for (const [k, v] of Object.entries(m.spec.selector.matchLabels)) expect(svc.metadata.labels[k], k).toBe(v);
    expect(svc.spec.ports.map((p) => p.name)).toContain(m.spec.endpoints[0]?.port);
    expect(m.spec.endpoints[0]?.path).toBe('/metrics');
  });
});
