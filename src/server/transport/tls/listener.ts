/**
 * The agent port's TLS, wired: an https server for the ws transport built from the credentials
 * (credentials.ts), the same certificate on the HTTP port when asked (`httpTls`), the secure context
 * swapped on every reload, and the verdict on each agent after the upgrade (identity.ts).
 *
 * Where each refusal happens and why:
 * - plain HTTP to the TLS port, or a handshake that fails or times out: the TLS server's
 *   `tlsClientError`, before any HTTP, so nothing can be sent back; counted (`plaintext`,
 *   `handshake`) and logged at debug level (a port scan must not flood the log).
 * - a certificate that is missing, from another CA, expired, not yet valid, or not on the
 *   allow-list: the handshake completes (rejectUnauthorized false) and the agent is refused after the
 *   WebSocket upgrade with ERROR CATTAIL_SERVER_UNAUTHORIZED and close 4011 (PROTOCOL.md §1.1), so it
 *   gets a coded reason rather than a handshake failure it cannot tell from a network fault. The
 *   ERROR names the reason but not the allow-list; the log has the presented identity.
 *
 * A reload changes the context of new handshakes only (tls.Server#setSecureContext): established
 * connections keep the session they negotiated, so a rotation drops no agent.
 */
import { type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Clock } from '../../../clock.js';
import type { Logger } from '../../../log.js';
import type { ServerMetrics } from '../../ops/metrics.js';
import { HTTP_PORT_MAX_HEADER_BYTES } from '../../ops/convergence-endpoint.js';
import { HTTP_PORT_CHECK_INTERVAL_MS } from '../../ops/http-endpoints.js';
import { type PeerInfo, peerAddress } from '../seam.js';
import { TlsCredentials, type TlsMaterial, secureContextOptions } from './credentials.js';
import { TLS_REFUSAL_REASONS, type TlsRefusalReason, describePeerTls, verifyPeer } from './identity.js';
import type { TlsSettings } from './options.js';

/** An agent refused after the upgrade: what the ERROR says. */
export interface TlsRefusal {
  readonly reason: TlsRefusalReason;
  readonly message: string;
}

export interface TlsListenerOptions {
  readonly settings: TlsSettings;
  readonly clock: Clock;
  readonly log: Logger | undefined;
  readonly metrics: ServerMetrics;
  /** Bounds the TLS handshake too (a client that opens TCP and never says hello). */
  readonly handshakeTimeoutMs: number;
}

export class TlsListener {
  private readonly servers: HttpServer[] = [];

  private constructor(
    private readonly o: TlsListenerOptions,
    private readonly credentials: TlsCredentials,
  ) {
    for (const reason of TLS_REFUSAL_REASONS) o.metrics.tlsRefusals.inc({ reason }, 0);
    for (const result of ['success', 'failure']) o.metrics.tlsReloads.inc({ result }, 0);
    o.metrics.tlsCertificateExpiry.set(credentials.material.notAfterMs / 1000);
  }

  /**
   * Loads the files (a failure is fatal: there is no previous set to keep).
   * @throws CattailError CATTAIL_SERVER_TLS_FILES
   */
  static async open(o: TlsListenerOptions): Promise<TlsListener> {
    // The credentials apply a reload to the servers this listener made, which exist only later.
    const late: { listener?: TlsListener } = {};
    const credentials = await TlsCredentials.open({
      files: o.settings.files,
      clock: o.clock,
      log: o.log,
      checkIntervalMs: o.settings.checkIntervalMs,
      apply: (m) => late.listener?.apply(m),
      events: {
        onReloaded: () => o.metrics.tlsReloads.inc({ result: 'success' }),
        onReloadFailed: () => o.metrics.tlsReloads.inc({ result: 'failure' }),
      },
    });
    late.listener = new TlsListener(o, credentials);
    return late.listener;
  }

  /** True when agents must present a certificate (a client CA is set). */
  get mutual(): boolean {
    return this.o.settings.allow !== undefined;
  }

  /** The server certificate in use. */
  get material(): TlsMaterial {
    return this.credentials.material;
  }

  /** The https server the ws transport attaches to (it adds its own upgrade and request handlers). */
  agentServer(): HttpServer {
    const server = createHttpsServer({
      ...secureContextOptions(this.credentials.material),
      handshakeTimeout: this.o.handshakeTimeoutMs,
      // As the plaintext server does (ws-transport.ts): slow-loris upgrades are cut at the deadline.
      connectionsCheckingInterval: Math.max(100, Math.floor(this.o.handshakeTimeoutMs / 4)),
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      // OpenSSL recognises an HTTP request line where a ClientHello belongs.
      const reason = err.code === 'ERR_SSL_HTTP_REQUEST' ? 'plaintext' : 'handshake';
      this.o.metrics.tlsRefusals.inc({ reason });
      this.o.log?.debug({ reason, code: err.code, remoteAddress: peerAddress(socket.remoteAddress ?? ''), err: err.message }, 'agent TLS handshake refused');
      socket.destroy();
    });
    this.servers.push(server);
    return server;
  }

  /** The HTTP port's server when `httpTls` is set: the same certificate, no client certificate asked. */
  httpServer(handler: RequestListener): HttpServer | undefined {
    if (!this.o.settings.httpTls) return undefined;
    const { cert, key } = this.credentials.material;
    const server = createHttpsServer({ cert, key, minVersion: secureContextOptions(this.credentials.material).minVersion, handshakeTimeout: this.o.handshakeTimeoutMs, maxHeaderSize: HTTP_PORT_MAX_HEADER_BYTES, connectionsCheckingInterval: HTTP_PORT_CHECK_INTERVAL_MS }, handler);
    // A failed handshake on the HTTP port (a probe without TLS) is not an agent refusal.
    server.on('tlsClientError', (_err, socket: TLSSocket) => socket.destroy());
    this.servers.push(server);
    return server;
  }

  /**
   * The verdict on an upgraded agent; a refusal is counted and logged here, and the caller sends
   * the ERROR and close 4011. Without a client CA there is nothing to check.
   */
  authorize(peer: PeerInfo): TlsRefusal | undefined {
    const allow = this.o.settings.allow;
    if (allow === undefined) return undefined;
    const verdict = verifyPeer(peer.tls, allow);
    if (verdict.ok) return undefined;
    this.o.metrics.tlsRefusals.inc({ reason: verdict.reason });
    this.o.log?.warn(
      { reason: verdict.reason, remoteAddress: peer.remoteAddress, identity: describePeerTls(peer.tls), fingerprint256: peer.tls?.fingerprint256, detail: verdict.message },
      'agent refused: TLS client certificate not accepted (close 4011)',
    );
    return { reason: verdict.reason, message: `TLS client certificate refused: ${verdict.reason}` };
  }

  /** Starts watching the files. */
  start(): void {
    this.credentials.start();
  }

  stop(): void {
    this.credentials.stop();
  }

  private apply(m: TlsMaterial): void {
    const options = secureContextOptions(m);
    for (const s of this.servers) (s as unknown as { setSecureContext(o: object): void }).setSecureContext(options);
    this.o.metrics.tlsCertificateExpiry.set(m.notAfterMs / 1000);
  }
}
