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
    help: 'Write the state as JSON lines {"feed","key","value"} to this file once in sync.',
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
  ...tlsOptions,
  reconnectMaxDelayMs: connectOptions.reconnectMaxDelayMs,
} as const;
