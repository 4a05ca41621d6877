import { describe, expect, it } from 'vitest';
import { measure } from '../support/model-bytes.js';

// The sizes docs/data-model.md records (scripts/measure-model.ts prints the table). Typha's
// WorkloadEndpoint is about 12x smaller than its pod; ours must be of that order too.
describe('libcalico.v3 projected bytes', () => {
  const rows = measure();
  const row = (file: string) => rows.find((r) => r.file === file)!;

  it('a running pod projects to an endpoint 12x smaller than the pod, a node to 9x smaller', () => {
    const pod = row('k8s/pod-deployment-running.constructed.json');
    expect(pod.keys).toBe(1);
    expect(pod.k8sBytes / pod.projectedBytes).toBeGreaterThan(12);
    const node = row('k8s/node-worker-1.constructed.json');
    expect(node.k8sBytes / node.projectedBytes).toBeGreaterThan(9);
  });

  it('host-network and finished pods cost nothing; every other object projects smaller than itself but a namespace (three keys)', () => {
    expect(row('k8s/pod-hostnetwork-calico-node.constructed.json').projectedBytes).toBe(0);
    expect(row('k8s/pod-succeeded.kind-v1.26.json').projectedBytes).toBe(0);
    for (const r of rows) if (r.kind !== 'Namespace') expect(r.projectedBytes, r.file).toBeLessThan(r.k8sBytes);
    expect(rows.length).toBeGreaterThan(30);
  });
});
