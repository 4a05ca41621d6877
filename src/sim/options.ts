import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';

/** `cattail sim`: the simulated Kubernetes API server. */
export const simOptions = {
  ...commonOptions,
  port: opt.int({
    default: 0,
    min: 0,
    max: 65_535,
    help: 'TCP port on 127.0.0.1 (0 picks a free one). The simulator only ever binds loopback.',
  }),
  nodes: opt.int({ default: 100, unit: 'count', min: 0, help: 'Nodes in the generated cluster.' }),
  podsPerNode: opt.int({ default: 30, unit: 'count', min: 0, help: 'Pods per node in the generated cluster.' }),
  churn: opt.number({ default: 0, unit: 'changes per second', min: 0, help: 'Rate of generated changes (pod create/delete, status-only updates, label flips, node heartbeats).' }),
  seed: opt.int({ default: 1, min: 0, help: 'Seed of the cluster generator and churn driver; the same seed gives the same cluster and changes.' }),
  kubeconfig: opt.string({ default: undefined, help: 'After binding, write a kubeconfig for the simulator to this file (atomically).' }),
} as const;
