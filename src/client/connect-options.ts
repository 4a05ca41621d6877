/**
 * The client library's options: one documented interface, one validator, one set of named defaults
 * (nats.js `defaultOptions()` / `parseOptions()`). Every bad value throws a coded
 * {@link InvalidArgumentError} that names the option, at `connect()` time — never later, never a crash.
 *
 * Durations are milliseconds and byte sizes bytes, and the names say so. `0` disables a timeout only
 * where that is stated; elsewhere it is invalid.
 */
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { realClock, type Clock } from '../clock.js';
import { InvalidArgumentError } from '../errors.js';

/** Default for {@link ConnectOptions.handshakeTimeoutMs}: 10 s. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Default for {@link ConnectOptions.reconnectInitialDelayMs}: 250 ms. */
export const DEFAULT_RECONNECT_INITIAL_DELAY_MS = 250;
/** Default for {@link ConnectOptions.reconnectMaxDelayMs}: 30 s. */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;
/** Default for {@link ConnectOptions.reconnectJitter}: 0.5 (delays spread over [d/2, d]). */
export const DEFAULT_RECONNECT_JITTER = 0.5;
/** Default for {@link ConnectOptions.behindRetryDelayMs}: 5 s. */
export const DEFAULT_BEHIND_RETRY_DELAY_MS = 5_000;
/** Default for {@link ConnectOptions.ackIntervalMs}: 1 s (PROTOCOL.md §4.10). */
export const DEFAULT_ACK_INTERVAL_MS = 1_000;
/** Default for {@link ConnectOptions.readTimeoutFactor}: 3 × the server's pingIntervalMs (§4.8). */
export const DEFAULT_READ_TIMEOUT_FACTOR = 3;
/** Default for {@link ConnectOptions.maxFrameBytes}: 1 MiB, the protocol's default (§2.2). */
export const DEFAULT_MAX_FRAME_BYTES = 1_048_576;
/** Default for {@link ConnectOptions.closeTimeoutMs}: 2 s. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2_000;
/** Most feeds one connection may carry (§4.1). */
export const MAX_FEEDS = 16;

/** TLS settings for `wss://` endpoints (Typha's client set: CA, key pair, server name, CN / URI SAN). */
export interface TlsOptions {
  /** PEM file of the CA that signed the server's certificate. Re-read on every connection attempt. @default undefined (the system CAs) */
  caFile?: string;
  /** PEM file of this client's certificate (mutual TLS). Re-read on every connection attempt. Requires {@link keyFile}. @default undefined (no client certificate) */
  certFile?: string;
  /** PEM file of this client's private key. Re-read on every connection attempt. Requires {@link certFile}. @default undefined */
  keyFile?: string;
  /** Server name for SNI and the default host name check. @default undefined (the endpoint's host) */
  serverName?: string;
  /**
   * Expected common name of the server certificate. When this or {@link serverUriSan} is set, the host
   * name check is replaced by it (either one matching is enough, as in Typha); the chain is still
   * verified against {@link caFile}. @default undefined (host name check)
   */
  serverCn?: string;
  /** Expected URI subject alternative name of the server certificate (e.g. `spiffe://cluster/ns/x/sa/typha`). @default undefined (host name check) */
  serverUriSan?: string;
}

/** Options of {@link connect}. Only `endpoints`, `feeds` are required. */
export interface ConnectOptions {
  /** Server URLs (`ws://` or `wss://`), shuffled once with {@link random}, then rotated; at least one. Required. */
  endpoints: readonly string[];
  /** Feed names to keep; 1 to 16, unique. One connection carries all of them. Required. */
  feeds: readonly string[];
  /** This node's name, sent in HELLO. @default os.hostname() */
  node?: string;
  /** Stable id of this client for log correlation on the server. @default a random UUID */
  clientId?: string;
  /**
   * Raw mode: values (in `get`, iteration and change events) are the msgpack bytes as received,
   * not decoded objects. For relays and load agents. @default false
   */
  raw?: boolean;
  /** TLS settings, used for `wss://` endpoints. @default {} (system CAs, host name check, no client certificate) */
  tls?: TlsOptions;
  /** Compression algorithms offered in HELLO, in preference order. @default ['brotli', 'deflate'] */
  compression?: readonly ('brotli' | 'deflate')[];
  /** Largest uncompressed frame body accepted, in bytes (announced in HELLO; inflation bounded by it). @default 1 MiB */
  maxFrameBytes?: number;
  /** Time from starting a connection attempt to receiving WELCOME, in ms. @default 10 000 */
  handshakeTimeoutMs?: number;
  /** Read timeout as a multiple of the server's `pingIntervalMs` (§4.8). @default 3 */
  readTimeoutFactor?: number;
  /** First reconnect delay before jitter, in ms; doubles per failed attempt. @default 250 */
  reconnectInitialDelayMs?: number;
  /** Cap of the reconnect delay, in ms. @default 30 000 */
  reconnectMaxDelayMs?: number;
  /** Fraction of each delay that is random (0 = none, 1 = anywhere in [0, d]). @default 0.5 */
  reconnectJitter?: number;
  /** Wait before trying another endpoint after finding a replica behind (watermarks), in ms. @default 5 000 */
  behindRetryDelayMs?: number;
  /** Minimum interval between two ACKs of one feed, in ms (§4.10). @default 1 000 */
  ackIntervalMs?: number;
  /** How long `close()` waits for the server's close before forcing it, in ms. @default 2 000 */
  closeTimeoutMs?: number;
  /**
   * The transport seam: opens the byte stream to an endpoint, over which the client does its HTTP
   * upgrade and WebSocket. Tests pass one end of an in-memory pair; a proxy or a Unix socket fits
   * too. For `wss://` the stream must already be TLS. @default TCP (`ws://`) or TLS (`wss://`)
   */
  dial?: (endpoint: string) => Duplex;
  /** Injected time (tests pass a FakeClock). @default realClock */
  clock?: Clock;
  /** Injected randomness in [0, 1) for jitter and endpoint order (tests pass a seeded one). @default Math.random */
  random?: () => number;
}

/** Options after validation, with every default applied. */
export interface ResolvedOptions {
  endpoints: string[];
  feeds: string[];
  node: string;
  clientId: string;
  raw: boolean;
  tls: TlsOptions;
  compression: ('brotli' | 'deflate')[];
  maxFrameBytes: number;
  handshakeTimeoutMs: number;
  readTimeoutFactor: number;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  reconnectJitter: number;
  behindRetryDelayMs: number;
  ackIntervalMs: number;
  closeTimeoutMs: number;
  dial: ((endpoint: string) => Duplex) | undefined;
  clock: Clock;
  random: () => number;
}

function bad(name: string, reason: string, value: unknown): InvalidArgumentError {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  return new InvalidArgumentError(`connect(): option ${name} ${reason}, got ${shown}`, { details: { option: name } });
}

function int(o: Record<string, unknown>, name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(name, `must be an integer in [${min}, ${max}]`, v);
  return v;
}

function str(o: Record<string, unknown>, name: string): string | undefined {
  const v = o[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw bad(name, 'must be a non-empty string', v);
  return v;
}

/** Validates `connect()` options and applies the defaults. Throws {@link InvalidArgumentError}. */
export function resolveOptions(input: ConnectOptions): ResolvedOptions {
  if (typeof input !== 'object' || input === null) throw bad('options', 'must be an object', input);
  const o = input as unknown as Record<string, unknown>;
  const endpoints = o['endpoints'];
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw bad('endpoints', 'must be a non-empty array of ws:// or wss:// URLs', endpoints);
  for (const e of endpoints) {
    if (typeof e !== 'string' || !isWsUrl(e)) throw bad('endpoints', 'must hold only ws:// or wss:// URLs', e);
  }
  const feeds = o['feeds'];
  if (!Array.isArray(feeds) || feeds.length === 0 || feeds.length > MAX_FEEDS) throw bad('feeds', `must be an array of 1 to ${MAX_FEEDS} feed names`, feeds);
  for (const f of feeds) if (typeof f !== 'string' || f === '') throw bad('feeds', 'must hold non-empty strings', f);
  if (new Set(feeds).size !== feeds.length) throw bad('feeds', 'must not repeat a feed', feeds);

  const tls = (o['tls'] ?? {}) as Record<string, unknown>;
  if (typeof tls !== 'object' || tls === null) throw bad('tls', 'must be an object', tls);
  const tlsOut: TlsOptions = {};
  for (const k of ['caFile', 'certFile', 'keyFile', 'serverName', 'serverCn', 'serverUriSan'] as const) {
    const v = str(tls, k);
    if (v !== undefined) tlsOut[k] = v;
  }
  if ((tlsOut.certFile === undefined) !== (tlsOut.keyFile === undefined)) throw bad('tls.certFile/tls.keyFile', 'must be set together', { certFile: tlsOut.certFile, keyFile: tlsOut.keyFile });

  const compression = o['compression'] ?? ['brotli', 'deflate'];
  if (!Array.isArray(compression) || compression.some((c) => c !== 'brotli' && c !== 'deflate')) {
    throw bad('compression', "must be an array of 'brotli' and 'deflate'", compression);
  }
  const raw = o['raw'] ?? false;
  if (typeof raw !== 'boolean') throw bad('raw', 'must be a boolean', raw);
  const jitter = o['reconnectJitter'] ?? DEFAULT_RECONNECT_JITTER;
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw bad('reconnectJitter', 'must be a number in [0, 1]', jitter);
  const clock = (o['clock'] ?? realClock) as Clock;
  if (typeof clock.setTimeout !== 'function' || typeof clock.monotonic !== 'function') throw bad('clock', 'must implement Clock', '[object]');
  const dial = o['dial'] as ResolvedOptions['dial'];
  if (dial !== undefined && typeof dial !== 'function') throw bad('dial', 'must be a function returning a Duplex', typeof dial);
  const random = (o['random'] ?? Math.random) as () => number;
  if (typeof random !== 'function') throw bad('random', 'must be a function returning [0, 1)', typeof random);

  const initial = int(o, 'reconnectInitialDelayMs', DEFAULT_RECONNECT_INITIAL_DELAY_MS, 1);
  const max = int(o, 'reconnectMaxDelayMs', DEFAULT_RECONNECT_MAX_DELAY_MS, 1);
  if (max < initial) throw bad('reconnectMaxDelayMs', `must be at least reconnectInitialDelayMs (${initial})`, max);

  return {
    endpoints: [...(endpoints as string[])],
    feeds: [...(feeds as string[])],
    node: str(o, 'node') ?? hostname(),
    clientId: str(o, 'clientId') ?? randomUUID(),
    raw,
    tls: tlsOut,
    compression: [...new Set(compression as ('brotli' | 'deflate')[])],
    maxFrameBytes: int(o, 'maxFrameBytes', DEFAULT_MAX_FRAME_BYTES, 1024, 2 ** 31 - 1),
    handshakeTimeoutMs: int(o, 'handshakeTimeoutMs', DEFAULT_HANDSHAKE_TIMEOUT_MS, 1),
    readTimeoutFactor: int(o, 'readTimeoutFactor', DEFAULT_READ_TIMEOUT_FACTOR, 2, 100),
    reconnectInitialDelayMs: initial,
    reconnectMaxDelayMs: max,
    reconnectJitter: jitter,
    behindRetryDelayMs: int(o, 'behindRetryDelayMs', DEFAULT_BEHIND_RETRY_DELAY_MS, 0),
    ackIntervalMs: int(o, 'ackIntervalMs', DEFAULT_ACK_INTERVAL_MS, 0),
    closeTimeoutMs: int(o, 'closeTimeoutMs', DEFAULT_CLOSE_TIMEOUT_MS, 1),
    dial,
    clock,
    random,
  };
}

function isWsUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === 'ws:' || u.protocol === 'wss:') && u.host !== '';
  } catch {
    return false;
  }
}
