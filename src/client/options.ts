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
  statusIntervalMs: opt.int({
    default: 1_000,
    unit: 'ms',
    min: 50,
    help: 'How often the live status line is refreshed (on a terminal) or printed when it changed (otherwise).',
  }),
  caFile: opt.string({
    default: undefined,
    help: 'PEM CA for wss:// servers; re-read on every connection attempt. Unset: the system CAs.',
  }),
  certFile: opt.string({
    default: undefined,
    help: 'PEM client certificate for mutual TLS (with --key-file); re-read on every connection attempt.',
  }),
  keyFile: opt.string({
    default: undefined,
    help: 'PEM client private key for mutual TLS (with --cert-file); re-read on every connection attempt.',
  }),
  serverName: opt.string({
    default: undefined,
    help: 'TLS server name (SNI and host name check). Unset: the host of each --server URL.',
  }),
  serverCn: opt.string({
    default: undefined,
    help: 'Expected common name of the server certificate; replaces the host name check (Typha\'s TyphaCN).',
  }),
  serverUriSan: opt.string({
    default: undefined,
    help: 'Expected URI SAN of the server certificate; replaces the host name check (Typha\'s TyphaURISAN).',
  }),
  reconnectMaxDelayMs: opt.int({
    default: 30_000,
    unit: 'ms',
    min: 1,
    help: 'Cap of the jittered exponential reconnect delay.',
  }),
} as const;
