import { commonOptions } from '../config/common.js';
import { opt } from '../config/options.js';

/** `cattail agent`: a node agent built on the client library. */
export const agentOptions = {
  ...commonOptions,
  server: opt.list({
    default: [],
    help: 'Server URL (ws:// or wss://); repeat for several replicas.',
  }),
  feed: opt.list({
    default: ['felix'],
    help: 'Feed to subscribe to; repeat for several (one connection carries them all).',
  }),
  node: opt.string({
    default: undefined,
    help: 'This node\'s name, sent in the hello. Default: the host name.',
  }),
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
} as const;
