import { commonOptions } from '../config/common.js';
import { opt, withDefault } from '../config/options.js';
import { connectOptions, tlsOptions } from './connect-options.js';

/**
 * `cattail agent`: a node agent built on the client library. The options it hands to `connect`
 * use the library's specs, so a bad `--server` reads as a bad `endpoints` would.
 */
export const agentOptions = {
  ...commonOptions,
  server: connectOptions.endpoints,
  service: connectOptions.service,
  servicePortName: connectOptions.servicePortName,
  kubeconfig: connectOptions.kubeconfig,
  stateDir: connectOptions.stateDir,
  checkpointIntervalMs: connectOptions.checkpointIntervalMs,
  checkpointIoMaxMs: connectOptions.checkpointIoMaxMs,
  feed: withDefault(connectOptions.feeds, ['felix']),
  node: connectOptions.node,
  once: opt.boolean({
    default: false,
    help: 'Exit 0 as soon as every requested feed is in sync.',
  }),
  timeoutMs: opt.int({
    default: 60_000,
    unit: 'ms',
    min: 1,
    help: 'With --once: give up (non-zero exit, coded message) after this long.',
  }),
  dump: opt.string({
    default: undefined,
    help: 'Write the state as JSON lines {"feed","key","value"} to this file once in sync (see --dump-format).',
  }),
  dumpFormat: opt.enum({
    values: ['state', 'syncer'] as const,
    default: 'state',
    help: 'state: the held state, written once in sync (renamed into place). syncer: what Felix\'s syncer callbacks see, appended as it happens: {"feed","key","value","updateType":"new|updated|deleted"} per KV and {"status":"wait-for-datastore|resync|in-sync"} per status edge.',
  }),
  json: opt.boolean({
    default: false,
    help: 'Print machine-readable JSON status lines instead of the human one-liner.',
  }),
  statusIntervalMs: opt.int({
    default: 1_000,
    unit: 'ms',
    min: 50,
    help: 'How often the live status line is refreshed (on a terminal) or printed when it changed (otherwise).',
  }),
  agents: opt.int({
    default: 1,
    unit: 'count',
    min: 1,
    max: 20_000,
    help: 'Run this many agents in one process (a load generator): each its own connection, node name (--node-prefix + index), resume token and counters. Above 1, implies --discard for all but --verify of them.',
  }),
  nodePrefix: opt.string({
    default: 'sim-node-',
    help: 'With --agents: node names are this prefix followed by the agent index.',
  }),
  discard: opt.boolean({
    default: false,
    help: 'Keep no state: read snapshot and delta frames by their headers only (no body decoding), so one process can play thousands of agents.',
  }),
  verify: opt.int({
    default: 0,
    unit: 'count',
    min: 0,
    help: 'With --agents: this many of them are full agents that keep the state and check it against the server\'s digest.',
  }),
  durationMs: opt.int({
    default: 0,
    unit: 'ms',
    min: 0,
    help: 'With --agents or --discard: stop after this long and print the totals (0: run until SIGTERM/SIGINT).',
  }),
  connectRatePerSec: opt.int({
    default: 0,
    unit: 'agents/s',
    min: 0,
    help: 'With --agents: start this many agents per second (0: all at once, a cold-start storm).',
  }),
  trackResource: opt.string({
    default: undefined,
    help: 'With --agents: record when the agents first and last saw each resourceVersion of this resource (e.g. pods), and print them in the final JSON line (a latency probe for benchmarks).',
  }),
  slowAgentsPercent: opt.int({
    default: 0,
    unit: '%',
    min: 0,
    max: 100,
    help: 'With --agents: this share of the discard agents reads slowly (at --slow-read-bytes-per-sec) from its first in-sync on: a benchmark\'s slow node.',
  }),
  slowReadBytesPerSec: opt.int({
    default: 16_384,
    unit: 'bytes/s',
    min: 1,
    help: 'Read rate of the slow agents (--slow-agents-percent); their socket is paused between reads, so the server sees a slow TCP peer.',
  }),
  stalledAgentsPercent: opt.int({
    default: 0,
    unit: '%',
    min: 0,
    max: 100,
    help: 'With --agents: this share of the discard agents stops reading at its first in-sync for --stall-ms (no PONG, no ACK: a frozen process), then reads again.',
  }),
  stallMs: opt.int({
    default: 75_000,
    unit: 'ms',
    min: 0,
    help: 'How long a stalled agent (--stalled-agents-percent) stops reading; the default outlasts the server\'s 60 s pongTimeoutMs.',
  }),
  ...tlsOptions,
  reconnectMaxDelayMs: connectOptions.reconnectMaxDelayMs,
} as const;
