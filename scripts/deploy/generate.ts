/**
 * Generated deployment files: the ClusterRole comes from the resource registry, so the RBAC a
 * replica is granted is exactly what its feeds list and watch. `npm run deploy:generate` writes
 * them; test/deploy/manifests.test.ts fails when they drift.
 */
import { stringify } from 'yaml';
import { SYNCER_FEEDS, rbacRules } from '../../src/registry.js';

/**
 * The ClusterRole for the built-in feeds, plus get/list/watch on EndpointSlices: a replica reads
 * its own Service's slices to learn its peers (redirect hints and the share of connections); and
 * list on CustomResourceDefinitions: when an optional resource answers 404, the replica lists its
 * CRD to learn the resourceVersion at which it was absent, which agents need to accept the empty
 * resource (src/server/upstream/not-served.ts); and get on the kube-system namespace, whose UID
 * names the cluster for agents (src/server/upstream/cluster-name.ts).
 */
export function clusterRole(): string {
  const rules = rbacRules(Object.values(SYNCER_FEEDS).flat());
  rules.push({ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] });
  rules.push({ apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: ['list'] });
  rules.push({ apiGroups: [''], resources: ['namespaces'], resourceNames: ['kube-system'], verbs: ['get'] });
  const role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'cattail', labels: { 'app.kubernetes.io/name': 'cattail' } },
    rules,
  };
  return `# Generated from src/registry.ts by \`npm run deploy:generate\`; do not edit.\n${stringify(role)}`;
}

/** Every generated file, by path relative to the repository root. */
export function generatedDeployFiles(): Record<string, string> {
  return { 'deploy/base/clusterrole.yaml': clusterRole() };
}
