/**
 * The client library's options: one table ({@link connectOptions}) that holds every default, unit,
 * range and message, validated by src/config's resolveOptions like the command line options are
 * (`cattail agent` shares the specs). Every bad value throws a coded CATTAIL_INVALID_ARGUMENT
 * that names the option, its unit and range, at `connect()` time — never later, never a crash.
 *
 * Durations are milliseconds and byte sizes bytes, and the names say so. `0` disables a timeout only
 * where that is stated; elsewhere it is invalid.
 */
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { realClock, type Clock } from '../clock.js';
import { DEFAULT_MAX_FRAME_BYTES, MIN_CLIENT_MAX_FRAME_BYTES } from '../../proto/index.js';
import { type ConfigOf, type OptionsOf, opt } from '../config/options.js';
import { checkServiceRef, type EndpointSliceSource } from './discovery.js';
import { invalidOption, resolveOptions as resolveTable } from '../config/resolve.js';

/** Most feeds one connection may carry (§4.1). */
const MAX_FEEDS = 16;

const nonEmpty = (v: string): string | undefined => (v === '' ? 'expected a non-empty string' : undefined);

/** TLS settings for `wss://` endpoints (Typha's client set: CA, key pair, server name, CN / URI SAN). */
export const tlsOptions = {
  caFile: opt.string({ default: undefined, check: nonEmpty, help: 'PEM CA for wss:// servers; re-read on every connection attempt. Unset: the system CAs.' }),
  certFile: opt.string({ default: undefined, check: nonEmpty, help: 'PEM client certificate for mutual TLS (with the key file); re-read on every connection attempt.' }),
  keyFile: opt.string({ default: undefined, check: nonEmpty, help: 'PEM client private key for mutual TLS (with the certificate file); re-read on every connection attempt.' }),
  serverName: opt.string({ default: undefined, check: nonEmpty, help: 'TLS server name (SNI and host name check). Unset: the host of each server URL.' }),
  serverCn: opt.string({
    default: undefined,
    check: nonEmpty,
    // Either this or serverUriSan matching is enough, as in Typha; the chain is still verified.
    help: 'Expected common name of the server certificate; replaces the host name check (Typha\'s TyphaCN).',
  }),
  serverUriSan: opt.string({ default: undefined, check: nonEmpty, help: 'Expected URI SAN of the server certificate; replaces the host name check (Typha\'s TyphaURISAN).' }),
} as const;

export type TlsOptions = OptionsOf<typeof tlsOptions>;

function isWsUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.host !== '';
  } catch {
    return false;
  }
}

/** The options of {@link connect} that have a spec: unit, default, range, help. */
export const connectOptions = {
  endpoints: opt.list({
    default: [],
    help: 'Server URL (ws:// or wss://), one per replica; the client starts at a random one and rotates. Required unless a service is given (then used while discovery finds none).',
    check: (v) => {
      const bad = v.find((e) => !isWsUrl(e));
      return bad === undefined ? undefined : `expected only ws:// or wss:// URLs, and ${JSON.stringify(bad)} is not one`;
    },
  }),
  feeds: opt.list({
    default: [],
    required: true,
    help: `Feeds to keep, 1 to ${MAX_FEEDS} distinct names; one connection carries them all.`,
    check: (v) => {
      if (v.length === 0 || v.length > MAX_FEEDS) return `expected 1 to ${MAX_FEEDS} feed names`;
      if (v.some((f) => f === '')) return 'expected non-empty feed names';
      return new Set(v).size === v.length ? undefined : 'expected no feed twice';
    },
  }),
  node: opt.string({ default: undefined, check: nonEmpty, help: 'This node\'s name, sent in the hello. Unset: the host name.' }),
  clientId: opt.string({ default: undefined, check: nonEmpty, help: 'Stable id of this client for log correlation on the server. Unset: a random UUID.' }),
  raw: opt.boolean({ default: false, help: 'Raw mode: values are the msgpack bytes as received, not decoded objects (relays, load agents).' }),
  compression: opt.list({ default: ['brotli', 'deflate'], values: ['brotli', 'deflate'] as const, help: 'Compression algorithms offered in the hello, in preference order.' }),
  maxFrameBytes: opt.int({ default: DEFAULT_MAX_FRAME_BYTES, unit: 'bytes', min: MIN_CLIENT_MAX_FRAME_BYTES, max: 2 ** 31 - 1, help: 'Largest uncompressed frame body accepted (announced in the hello; inflation is bounded by it); at least 4,096 (PROTOCOL.md §2.2). The protocol\'s default is 1 MiB. A Cattail server uses the power of two at or below it (announced in WELCOME), so give a power of two.' }),
  handshakeTimeoutMs: opt.int({ default: 10_000, unit: 'ms', min: 1, help: 'Time from starting a connection attempt to receiving WELCOME.' }),
  readTimeoutFactor: opt.int({ default: 3, unit: 'multiple of the server\'s pingIntervalMs', min: 2, max: 100, help: 'Read timeout as a multiple of the ping interval the server announces (PROTOCOL.md §4.8).' }),
  reconnectInitialDelayMs: opt.int({ default: 250, unit: 'ms', min: 1, help: 'First reconnect delay before jitter; doubles per failed attempt.' }),
  reconnectMaxDelayMs: opt.int({ default: 30_000, unit: 'ms', min: 1, help: 'Cap of the jittered exponential reconnect delay.' }),
  goodbyeDelayMaxMs: opt.int({
    default: 30_000,
    unit: 'ms',
    min: 0,
    help: 'The longest a GOODBYE\'s reconnectDelayMs holds off reconnecting to the other replicas (the replica that sent it is avoided for all of it, PROTOCOL.md §1.4); reconnectMaxDelayMs caps it too. A client that is one of a handful (a tier-2 replica) sets it low: the delay spreads a crowd, and every agent behind it hears no change while it waits.',
  }),
  reconnectJitter: opt.number({ default: 0.5, unit: 'fraction', min: 0, max: 1, help: 'Fraction of each reconnect delay that is random (0: none; 0.5: delays spread over [d/2, d]).' }),
  behindRetryDelayMs: opt.int({ default: 5_000, unit: 'ms', min: 0, help: 'Wait before trying another endpoint after finding a replica behind (watermarks).' }),
  ackIntervalMs: opt.int({ default: 1_000, unit: 'ms', min: 0, help: 'Minimum interval between two ACKs of one feed (PROTOCOL.md §4.10).' }),
  service: opt.string({
    default: undefined,
    check: checkServiceRef,
    help: 'Discover the replicas from this Service\'s EndpointSlices (NAMESPACE/NAME) before each connection attempt: ready ones, this node\'s first, the rest shuffled; the not-ready ones only when none is ready.',
  }),
  servicePortName: opt.string({ default: 'agents', check: nonEmpty, help: 'With service: the EndpointSlice port to connect to, by name (the Service owns the number).' }),
  discoveryMinIntervalMs: opt.int({ default: 1_000, unit: 'ms', min: 0, help: 'With service: reuse a discovery younger than this instead of asking the API server again (a reconnect storm must not become an API-server storm).' }),
  discoveryTimeoutMs: opt.int({ default: 5_000, unit: 'ms', min: 1, help: 'With service: a discovery that has not answered by then counts as failed, and the attempt goes on with the endpoints found before (an unreachable API server must not hold up reconnecting to replicas that are reachable).' }),
  kubeconfig: opt.string({ default: undefined, check: nonEmpty, help: 'With service: kubeconfig for reading EndpointSlices. Unset: KUBECONFIG, then ~/.kube/config, then the in-cluster service account (none of them: CATTAIL_CLIENT_NO_DISCOVERY_CONFIG).' }),
  stateDir: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'Directory for a checkpoint of the verified state (atomic, checksummed, versioned): a restarted agent loads it, checks it against its digest, and resumes or rebases instead of taking a snapshot. Unset: nothing is written.',
  }),
  checkpointIntervalMs: opt.int({ default: 60_000, unit: 'ms', min: 0, help: 'With stateDir: write the checkpoint at most this often (after a verified STATUS or snapshot), and on close(). Each write is the whole state (an unscoped 150,000-pod felix feed is ~25 MB), fsynced; a restart resumes or rebases from it, so older only means a larger catch-up, while the servers keep its revision (their deltaLogMaxAgeMs, 10 minutes by default).' }),
  checkpointIoMaxMs: opt.int({ default: 10_000, unit: 'ms', min: 1, help: 'With stateDir: the longest the first connection waits for the checkpoint to be read, and close() for its last write, in wall-clock time. Past it (a state volume that stopped answering) the client starts without the checkpoint, or close() resolves with the write left to end on its own; either is reported in stats.checkpoint.problem.' }),
  closeTimeoutMs: opt.int({ default: 2_000, unit: 'ms', min: 1, help: 'How long close() waits for the server\'s close before forcing it.' }),
} as const;

/**
 * Options of {@link connect}: the table-derived part ({@link connectOptions}; only `endpoints` and
 * `feeds` are required) and the programmatic extras beside it.
 */
export interface ConnectOptions extends OptionsOf<typeof connectOptions> {
  readonly feeds: readonly string[];
  /**
   * With `service`: where EndpointSlices are read. Tests and relays pass their own.
   * @default client-node with `kubeconfig` (or KUBECONFIG, ~/.kube/config, in-cluster), loaded on first use
   */
  readonly endpointSliceSource?: EndpointSliceSource;
  /** TLS settings, used for `wss://` endpoints. @default {} (system CAs, host name check, no client certificate) */
  readonly tls?: TlsOptions;
  /** Injected time (tests pass a FakeClock). @default realClock */
  readonly clock?: Clock;
  /** Injected randomness in [0, 1) for jitter and endpoint order (tests pass a seeded one). @default Math.random */
  readonly random?: () => number;
  /**
   * The transport seam: opens the byte stream to an endpoint, over which the client does its HTTP
   * upgrade and WebSocket. Tests pass one end of an in-memory pair; a proxy or a Unix socket fits
   * too. For `wss://` the stream must already be TLS. @default TCP (`ws://`) or TLS (`wss://`)
   */
  readonly dial?: (endpoint: string) => Duplex;
  /**
   * Advertise `scope.node` (PROTOCOL.md §7.3): accept feeds the server scopes to this node's view.
   * A relay that re-serves the whole feed (a second-tier replica) passes false, so a scoping
   * server refuses it (4006) instead of handing it one node's view. @default true
   */
  readonly acceptScopedFeeds?: boolean;
  /**
   * Per feed, the data models (PROTOCOL.md §3.2, e.g. `libcalico.v3`) this agent knows how to
   * apply. A WELCOME announcing another model for such a feed (no `model`: `calico.v1`) fails the
   * connection with CATTAIL_CLIENT_HANDSHAKE_FAILED (4002) before any entry arrives, and the
   * client retries with backoff (a server rollout may bring the model back). The library itself
   * keeps entries as bytes and reads each feed's model in `feed(name).model`. @default {} (any model)
   */
  readonly models?: Readonly<Record<string, readonly string[]>>;
  /**
   * Per feed, the resource ids this host's definition of it carries, when the host needs exactly
   * those (a relay re-serving the feed under its own definition: a second-tier replica). A
   * WELCOME whose snapshot lists other resources for such a feed (PROTOCOL.md §8 "A feed's
   * resources") fails the connection with CATTAIL_CLIENT_HANDSHAKE_FAILED (4002) before any entry
   * arrives, so nothing is retired and the held state stays; the client retries with backoff (the
   * other tier's rollout may end the mismatch). @default {} (any resources; unlisted ones retired)
   */
  readonly resources?: Readonly<Record<string, readonly string[]>>;
}

/** Options after validation, with every default applied. */
export type ResolvedOptions = Omit<ConfigOf<typeof connectOptions>, 'node' | 'clientId'> & {
  node: string;
  clientId: string;
  tls: TlsOptions;
  clock: Clock;
  random: () => number;
  dial: ((endpoint: string) => Duplex) | undefined;
  endpointSliceSource: EndpointSliceSource | undefined;
  acceptScopedFeeds: boolean;
  models: Readonly<Record<string, readonly string[]>>;
  resources: Readonly<Record<string, readonly string[]>>;
};

/** Validates `connect()` options and applies the defaults. Throws a CATTAIL_INVALID_ARGUMENT error. */
export function resolveOptions(input: ConnectOptions): ResolvedOptions {
  const o = resolveTable(connectOptions, input, 'connect()');
  const tls = resolveTable(tlsOptions, input.tls, 'connect() tls');
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    throw invalidOption('tls.certFile/tls.keyFile', 'option', { certFile: tls.certFile, keyFile: tls.keyFile }, 'expected both or neither', 'connect()');
  }
  if (o.endpoints.length === 0 && o.service === undefined) {
    throw invalidOption('endpoints', 'option', [], 'expected at least one ws:// or wss:// URL, or a service to discover them from', 'connect()');
  }
  if (input.endpointSliceSource !== undefined && typeof input.endpointSliceSource?.list !== 'function') {
    throw invalidOption('endpointSliceSource', 'option', typeof input.endpointSliceSource, 'expected an object with list(namespace, service)', 'connect()');
  }
  if (o.reconnectMaxDelayMs < o.reconnectInitialDelayMs) {
    throw invalidOption('reconnectMaxDelayMs', 'option', o.reconnectMaxDelayMs, `expected at least reconnectInitialDelayMs (${o.reconnectInitialDelayMs})`, 'connect()');
  }
  const clock = input.clock ?? realClock;
  if (typeof clock.setTimeout !== 'function' || typeof clock.monotonic !== 'function') throw invalidOption('clock', 'option', '[object]', 'expected a Clock', 'connect()');
  if (input.dial !== undefined && typeof input.dial !== 'function') throw invalidOption('dial', 'option', typeof input.dial, 'expected a function returning a Duplex', 'connect()');
  const models = input.models ?? {};
  for (const [feed, list] of Object.entries(models)) {
    if (!Array.isArray(list) || list.length === 0 || !list.every((m) => typeof m === 'string' && m !== '')) throw invalidOption('models', 'option', `${feed}: ${JSON.stringify(list)}`, 'expected, per feed, a non-empty list of model names', 'connect()');
  }
  const resources = input.resources ?? {};
  for (const [feed, list] of Object.entries(resources)) {
    if (!Array.isArray(list) || list.length === 0 || !list.every((r) => typeof r === 'string' && r !== '')) throw invalidOption('resources', 'option', `${feed}: ${JSON.stringify(list)}`, 'expected, per feed, a non-empty list of resource ids', 'connect()');
  }
  const random = input.random ?? Math.random;
  if (typeof random !== 'function') throw invalidOption('random', 'option', typeof random, 'expected a function returning [0, 1)', 'connect()');
  return {
    ...o,
    node: o.node ?? hostname(),
    clientId: o.clientId ?? randomUUID(),
    acceptScopedFeeds: input.acceptScopedFeeds !== false,
    models,
    resources,
    compression: [...new Set(o.compression)],
    tls: Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)),
    clock,
    random,
    dial: input.dial,
    endpointSliceSource: input.endpointSliceSource,
  };
}
