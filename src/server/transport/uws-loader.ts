/**
 * Finds a uWebSockets.js build that loads on this Node and libc. uWS ships as prebuilt native
 * binaries per platform, arch and Node ABI, so whether one loads is a fact of the machine, found
 * out at start: `--transport uws` without one is a coded error naming every build tried and why
 * it failed, never a silent fallback to `ws`.
 *
 * `@trufflesuite/uws-js-unofficial` is an optional dependency (it has Node 20 binaries); the
 * official `uWebSockets.js` and `@btc-vision/uwebsockets.js` are tried too when installed. The
 * trufflesuite package falls back to a slow pure-JS emulation when its binary does not load, so
 * its binary is loaded directly (uws_<platform>_<arch>_<abi>.node) and the emulation never is.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { CattailError } from '../../errors.js';

// ---- the part of the uWebSockets.js API the transport uses (the packages' own types are optional) ----

export interface UwsWebSocket {
  send(message: Uint8Array, isBinary?: boolean, compress?: boolean): number;
  sendFirstFragment(message: Uint8Array, isBinary?: boolean, compress?: boolean): boolean;
  sendFragment(message: Uint8Array, compress?: boolean): boolean;
  sendLastFragment(message: Uint8Array, compress?: boolean): boolean;
  getBufferedAmount(): number;
  end(code?: number, shortMessage?: string): void;
  close(): void;
  cork(cb: () => void): UwsWebSocket;
  getUserData(): UwsUserData;
}

export interface UwsUserData {
  /** Set at the upgrade; the transport's own socket object for this WebSocket. */
  slot: { socket: unknown };
}

export interface UwsHttpResponse {
  writeStatus(status: string): UwsHttpResponse;
  writeHeader(key: string, value: string): UwsHttpResponse;
  end(body?: string, closeConnection?: boolean): UwsHttpResponse;
  upgrade(userData: UwsUserData, key: string, protocol: string, extensions: string, context: unknown): void;
  getRemoteAddressAsText(): ArrayBuffer;
  onAborted(cb: () => void): UwsHttpResponse;
  cork(cb: () => void): UwsHttpResponse;
}

export interface UwsHttpRequest {
  getHeader(lowerCaseKey: string): string;
  forEach(cb: (key: string, value: string) => void): void;
}

export interface UwsBehavior {
  maxPayloadLength: number;
  idleTimeout: number;
  maxBackpressure: number;
  closeOnBackpressureLimit: boolean;
  sendPingsAutomatically: boolean;
  compression: number;
  upgrade: (res: UwsHttpResponse, req: UwsHttpRequest, context: unknown) => void;
  open: (ws: UwsWebSocket) => void;
  message: (ws: UwsWebSocket, message: ArrayBuffer, isBinary: boolean) => void;
  drain: (ws: UwsWebSocket) => void;
  /** A ping came in (uWS has answered it with a pong already, or queued one). */
  ping?: (ws: UwsWebSocket, message: ArrayBuffer) => void;
  close: (ws: UwsWebSocket, code: number, message: ArrayBuffer) => void;
}

export interface UwsApp {
  ws(pattern: string, behavior: UwsBehavior): UwsApp;
  any(pattern: string, handler: (res: UwsHttpResponse, req: UwsHttpRequest) => void): UwsApp;
  listen(host: string, port: number, options: number, cb: (listenSocket: unknown) => void): UwsApp;
}

export interface UwsModule {
  App(): UwsApp;
  us_listen_socket_close(listenSocket: unknown): void;
  us_socket_local_port(listenSocket: unknown): number;
  /** listen() option: SO_REUSEADDR only, no SO_REUSEPORT (a second server on the port fails). */
  LIBUS_LISTEN_EXCLUSIVE_PORT: number;
}

export interface LoadedUws {
  readonly module: UwsModule;
  /** Which package (and binary) loaded. */
  readonly source: string;
}

const require = createRequire(import.meta.url);

/** The builds tried, in order. */
const UWS_PACKAGES = ['@trufflesuite/uws-js-unofficial', 'uWebSockets.js', '@btc-vision/uwebsockets.js'] as const;

function loadOne(name: string): LoadedUws {
  let mod: unknown;
  let source = name;
  if (name === '@trufflesuite/uws-js-unofficial') {
    const dir = dirname(require.resolve(`${name}/package.json`));
    const binary = join(dir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
    mod = require(binary);
    source = `${name} (${binary})`;
  } else {
    mod = require(name);
  }
  const m = mod as Partial<UwsModule>;
  if (typeof m.App !== 'function' || typeof m.us_listen_socket_close !== 'function' || typeof m.us_socket_local_port !== 'function') {
    throw new Error('loaded, but it is not a uWebSockets.js native build (App/us_listen_socket_close missing)');
  }
  return { module: m as UwsModule, source };
}

let cached: LoadedUws | undefined;

/** The first uWS build that loads; throws CATTAIL_SERVER_TRANSPORT_UNAVAILABLE with each failure when none does. */
export function loadUws(candidates: readonly string[] = UWS_PACKAGES): LoadedUws {
  const isDefault = candidates === UWS_PACKAGES;
  if (isDefault && cached !== undefined) return cached;
  const failures: string[] = [];
  for (const name of candidates) {
    try {
      const loaded = loadOne(name);
      if (isDefault) cached = loaded;
      return loaded;
    } catch (err) {
      const msg = (err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && !(err as Error).message.includes('.node') ? 'not installed' : (err as Error).message.split('\n')[0];
      failures.push(`${name}: ${msg}`);
    }
  }
  throw new CattailError(
    'CATTAIL_SERVER_TRANSPORT_UNAVAILABLE',
    `--transport uws: no uWebSockets.js build loads on Node ${process.version} (${process.platform}-${process.arch}, ABI ${process.versions.modules}); tried ${failures.join('; ')}. Use --transport ws, or install a build for this platform.`,
    { details: { tried: failures } },
  );
}

/** Whether a uWS build loads here (tests and benchmarks skip uWS runs when not). */
export function uwsAvailable(): boolean {
  try {
    loadUws();
    return true;
  } catch {
    return false;
  }
}
