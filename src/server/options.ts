import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';

/**
 * `cattail serve`: the fan-out server (a Deployment replica in calico-system).
 * Defaults follow Typha's where Typha has one (see ../shared/reference/typha.md §3).
 */
export const serveOptions = {
  ...commonOptions,
  kubeconfig: opt.string({
    default: undefined,
    help: 'Kubeconfig file for the upstream API server. Unset: KUBECONFIG, then in-cluster config; with neither, serve exits with a coded error (it never simulates silently).',
  }),
  embeddedSim: opt.boolean({
    default: false,
    help: 'Run against an in-process simulated API server with a small generated cluster (what `npm start` does). Never use in production.',
  }),
  listen: opt.string({
    default: '127.0.0.1:5473',
    help: 'HOST:PORT for agent WebSocket connections (5473 is Typha\'s port).',
  }),
  httpListen: opt.string({
    default: '127.0.0.1:9093',
    help: 'HOST:PORT for /metrics, /livez and /readyz.',
  }),
  pingIntervalMs: opt.int({
    default: 10_000,
    unit: 'ms',
    min: 100,
    help: 'Interval between protocol pings to each agent.',
  }),
  maxFallBehindMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 1_000,
    help: 'An agent whose applied state is older than this (after its post-snapshot grace period) is disconnected.',
  }),
} as const;
