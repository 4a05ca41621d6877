/**
 * Projections: pure functions from a parsed Kubernetes object to the value a feed stores (or null
 * for "no entry", which a watch turns into a deletion). Values are encoded once, to plain msgpack.
 */
import type { ResourceDef } from '../../../registry.js';
import type { KubeObject, ProjectionKind } from '../types.js';
import { projectNode } from './node.js';
import { projectNamespace, projectServiceAccount } from './profile.js';
import { rawObject, stripObject } from './strip.js';
import { projectPod } from './workload-endpoint.js';

export { encodeValue } from './encode.js';
export { interfaceName, projectPod, workloadEndpointName } from './workload-endpoint.js';
export { projectNode } from './node.js';
export { projectNamespace, projectServiceAccount } from './profile.js';
export { stripObject } from './strip.js';

/**
 * Bump when any projection's output changes shape: it is part of every feed's projectionVersion
 * and so of resume tokens (an agent holding values of the old shape must resync).
 */
export const PROJECTION_VERSION = 1;

export type Projector = (obj: KubeObject) => unknown;

/** Resources whose status Calico reads (the node-status feed is all status; LB IPs; migrations). */
const CALICO_KEEPS_STATUS = new Set([
  'caliconodestatuses.crd.projectcalico.org',
  'services',
  'virtualmachineinstancemigrations.kubevirt.io',
]);

export function projector(def: ResourceDef, kind: ProjectionKind): Projector {
  if (kind === 'raw') return (obj) => rawObject(obj, def);
  if (kind === 'strip') return (obj) => stripObject(obj, false);
  switch (def.id) {
    case 'pods':
      return projectPod;
    case 'nodes':
      return projectNode;
    case 'namespaces':
      return projectNamespace;
    case 'serviceaccounts':
      return projectServiceAccount;
    default: {
      const keepStatus = CALICO_KEEPS_STATUS.has(def.id);
      return (obj) => stripObject(obj, keepStatus);
    }
  }
}
