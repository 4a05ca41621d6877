/**
 * One WebSocket connection to one server, from the upgrade to the close, and nothing else: the
 * handshake, protocol-level liveness (PONG replies, the read timeout), frame decoding and inflation,
 * and turning every way a connection can end into exactly one {@link ConnectionEnd}. What the
 * frames mean for the feeds is the client's business (client.ts); a handler that throws a coded
 * error makes this connection close with the matching close code.
 *
 * Failure modes handled here, each ending the connection once, with a coded reason:
 * - refused upgrade (503 + Retry-After + X-Cattail-Endpoints) → CATTAIL_CLIENT_REFUSED
 * - TCP/TLS failure, other HTTP answers → CATTAIL_CLIENT_CONNECT_FAILED (or TLS_FILES / SERVER_IDENTITY)
 * - wrong subprotocol, WELCOME not matching the HELLO or announcing a model the agent does not
 *   apply → CATTAIL_CLIENT_HANDSHAKE_FAILED; no WELCOME in time → CATTAIL_CLIENT_HANDSHAKE_TIMEOUT;
 *   a WELCOME of another protocol version → close 4001
 * - nothing received for the read timeout (black-holed) → close 4013, CATTAIL_CLIENT_READ_TIMEOUT
 * - malformed or out-of-order frames → close 4000/4002/4003, CATTAIL_CLIENT_PROTOCOL_ERROR
 * - the server's close (with or without GOODBYE) → CATTAIL_CLIENT_SERVER_CLOSED / CATTAIL_CLIENT_REJECTED
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import {
  HEADER_BYTES,
  NO_FEED,
  CAP_SCOPE_NODE,
  CAP_SCOPE_WATERMARKS,
  CLOSE_CODES,
  ProtocolError,
  SUBPROTOCOL,
  closeCodeOf,
  encodeFrame,
  isClosingErrorCode,
  isProtocolError,
  reactionToClose,
  type ClosingErrorCode,
  type GoodbyeMessage,
  type HelloMessage,
  type Message,
  type WelcomeMessage,
} from '../../proto/index.js';
import type { Clock, Timer } from '../clock.js';
import { CattailError, toCattailError, type ErrorCode } from '../errors.js';
import { decodeWireFrame } from '../frame-compression.js';
import { loadTls } from './tls.js';
import { parseRetryAfter } from '../retry-after.js';
import { LocalCloseError, unexpected } from './close-errors.js';
import type { ResolvedOptions } from './connect-options.js';

/** How a connection ended; exactly one per connection. */
export interface ConnectionEnd {
  error: CattailError;
  /** The connection got as far as WELCOME. */
  welcomed: boolean;
  /** 503 Retry-After, in ms. */
  retryAfterMs?: number;
  /** Endpoints hinted by a 503 or a GOODBYE. */
  endpoints?: string[];
  /** The server's GOODBYE, if one came. */
  goodbye?: GoodbyeMessage;
  /** The WebSocket close code, when the socket got that far. */
  closeCode?: number;
  /** Set when this side decided to close (read timeout, protocol error, state check, close()). */
  local: boolean;
}

export interface ConnectionHandlers {
  onWelcome(welcome: WelcomeMessage): void;
  /** A feed message (snapshot units, deltas, status). Throw a coded error to close the connection. */
  onFeedMessage(message: Message): void;
  /** Every received frame, for stats. */
  onFrame(bytes: number): void;
  onEnd(end: ConnectionEnd): void;
}

export class Connection {
  private ws: WebSocket | undefined;
  private ended = false;
  private welcome: WelcomeMessage | undefined;
  /** Largest body accepted: ours until WELCOME, then the smaller of ours and the server's (§2.2). */
  private maxBodyBytes: number;
  private goodbye: GoodbyeMessage | undefined;
  private serverError: { code: string; message: string } | undefined;
  private handshakeTimer: Timer | undefined;
  private readTimer: Timer | undefined;
  private closeTimer: Timer | undefined;
  private lastFrameAt = 0;
  private readTimeoutMs = 0;
  private pendingEnd: ConnectionEnd | undefined;
  private readonly feedIds = new Set<number>();

  constructor(
    readonly url: string,
    private readonly opts: ResolvedOptions,
    private readonly hello: HelloMessage,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.maxBodyBytes = opts.maxFrameBytes;
  }

  private get clock(): Clock {
    return this.opts.clock;
  }

  get serverId(): string | undefined {
    return this.welcome?.serverId;
  }

  get isOpen(): boolean {
    return !this.ended && this.ws?.readyState === WebSocket.OPEN;
  }

  /** This side decided to close (GOODBYE, ERROR, a check that failed): the end is set, the close under way. */
  get leaving(): boolean {
    return this.pendingEnd !== undefined;
  }

  /**
   * Starts the attempt. Never throws: every failure ends in `onEnd`. Does nothing once ended: the
   * client's 'connecting' listeners run before start() and may close the client, which ends this
   * connection first; a handshake timer armed after that would hold the process open.
   */
  start(): void {
    if (this.ended) return;
    this.handshakeTimer = this.clock.setTimeout(() => {
      // 4013 (nothing received in time) is the nearest client close code; there is no
      // client-side handshake-timeout code in PROTOCOL.md §1.3.
      this.fail(new LocalCloseError('CATTAIL_CLIENT_HANDSHAKE_TIMEOUT', `no WELCOME from ${this.url} within ${this.opts.handshakeTimeoutMs} ms`, { details: { endpoint: this.url } }));
    }, this.opts.handshakeTimeoutMs);
    void this.open();
  }

  private async open(): Promise<void> {
    let tlsOpts = {};
    if (this.url.startsWith('wss:')) {
      try {
        tlsOpts = await loadTls(this.opts.tls);
      } catch (err) {
        this.finish({ error: toCattailError(err), welcomed: false, local: true });
        return;
      }
    }
    if (this.ended) return;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, SUBPROTOCOL, {
        ...tlsOpts,
        perMessageDeflate: false,
        // ws refuses (1009) before buffering anything past this. It is twice the frame limit so
        // that a frame merely above the limit reaches splitFrame and gets the protocol's 4003
        // with a coded error, while an absurd length is still cut off by ws.
        maxPayload: 2 * (this.opts.maxFrameBytes + HEADER_BYTES),
        followRedirects: false,
        // The transport seam: an injected stream (tests: an in-memory pair) instead of TCP/TLS.
        ...(this.opts.dial !== undefined ? { createConnection: (() => (this.opts.dial as (e: string) => Duplex)(this.url)) as never } : {}),
      });
    } catch (err) {
      this.finish({ error: new CattailError('CATTAIL_CLIENT_CONNECT_FAILED', `cannot connect to ${this.url}: ${(err as Error).message}`, { cause: err, details: { endpoint: this.url } }), welcomed: false, local: true });
      return;
    }
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('unexpected-response', (req, res) => this.onUnexpectedResponse(req, res));
    ws.on('open', () => this.onOpen());
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('error', (err) => this.onSocketError(err));
    ws.on('close', (code, reason) => this.onClose(code, reason.toString('utf8')));
  }

  private onUnexpectedResponse(req: { destroy(): void }, res: IncomingMessage): void {
    const status = res.statusCode ?? 0;
    res.resume();
    req.destroy();
    if (status === 503) {
      const retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.clock.now());
      const hdr = res.headers['x-cattail-endpoints'];
      const endpoints = (Array.isArray(hdr) ? hdr.join(',') : (hdr ?? '')).split(',').map((s) => s.trim()).filter((s) => s !== '');
      const error = new CattailError('CATTAIL_CLIENT_REFUSED', `${this.url} refused the connection (503, Retry-After ${retryAfterMs === undefined ? 'absent' : `${retryAfterMs} ms`})`, {
        details: { endpoint: this.url, status, retryAfterMs, endpoints },
      });
      const end: ConnectionEnd = { error, welcomed: false, local: false, endpoints };
      if (retryAfterMs !== undefined) end.retryAfterMs = retryAfterMs;
      this.finish(end);
      return;
    }
    this.finish({ error: new CattailError('CATTAIL_CLIENT_CONNECT_FAILED', `${this.url} answered the upgrade with HTTP ${status}`, { details: { endpoint: this.url, status } }), welcomed: false, local: false });
  }

  private onOpen(): void {
    if (this.ended) return;
    // ws fails a handshake that selects no or another subprotocol before 'open' (RFC 6455 §4.1):
    // this check is for a WebSocket layer that would not, and stays out of PROTOCOL.md's codes.
    if (this.ws?.protocol !== SUBPROTOCOL) {
      this.fail(new LocalCloseError('CATTAIL_CLIENT_HANDSHAKE_FAILED', `${this.url} did not accept the subprotocol ${SUBPROTOCOL} (got ${JSON.stringify(this.ws?.protocol ?? '')})`, { details: { endpoint: this.url } }));
      return;
    }
    this.send(this.hello);
  }

  private onSocketError(err: Error): void {
    // 'close' follows an 'error' on an opened socket; before the upgrade it may not.
    const identity = CattailError.is(err) ? err : undefined;
    const wsCode = (err as { code?: unknown }).code;
    const error =
      identity ??
      (typeof wsCode === 'string' && wsCode.startsWith('WS_ERR_')
        ? new CattailError('CATTAIL_CLIENT_PROTOCOL_ERROR', `invalid WebSocket data from ${this.url}: ${err.message}`, { cause: err, details: { endpoint: this.url, wsCode } })
        : new CattailError('CATTAIL_CLIENT_CONNECT_FAILED', `connection to ${this.url} failed: ${err.message}`, { cause: err, details: { endpoint: this.url } }));
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.pendingEnd ??= { error, welcomed: this.welcome !== undefined, local: false };
      return;
    }
    this.finish({ error, welcomed: this.welcome !== undefined, local: false });
  }

  private onClose(code: number, reason: string): void {
    this.closeTimer?.cancel();
    if (this.ended) return;
    if (this.pendingEnd !== undefined) {
      this.finish({ ...this.pendingEnd, closeCode: this.pendingEnd.closeCode ?? code });
      return;
    }
    const details: Record<string, unknown> = { endpoint: this.url, closeCode: code, closeReason: reason, serverId: this.welcome?.serverId };
    if (this.goodbye !== undefined) details['goodbye'] = this.goodbye;
    if (this.serverError !== undefined) details['serverError'] = this.serverError;
    const reaction = reactionToClose(this.serverError?.code, code);
    const code_: ErrorCode = reaction === 'reject' ? 'CATTAIL_CLIENT_REJECTED' : reaction === 'behind' ? 'CATTAIL_CLIENT_REPLICA_BEHIND' : 'CATTAIL_CLIENT_SERVER_CLOSED';
    const text = this.goodbye !== undefined ? `GOODBYE ${this.goodbye.reason}: ${this.goodbye.message}` : this.serverError !== undefined ? `${this.serverError.code}: ${this.serverError.message}` : reason;
    const end: ConnectionEnd = { error: new CattailError(code_, `${this.url} closed the connection (${code}${text ? `, ${text}` : ''})`, { details }), welcomed: this.welcome !== undefined, local: false, closeCode: code };
    if (this.goodbye !== undefined) {
      end.goodbye = this.goodbye;
      if (this.goodbye.endpoints !== undefined) end.endpoints = this.goodbye.endpoints;
    }
    this.finish(end);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    // Once this side decided to close, later frames are not applied: the decision was taken on a
    // state that must not change under it (a replica found behind must not feed us more deltas).
    if (this.ended || this.pendingEnd !== undefined) return;
    this.lastFrameAt = this.clock.monotonic();
    this.handlers.onFrame(data.length);
    try {
      if (!isBinary) throw unexpected('text WebSocket message (the protocol is binary only)');
      // Header first (size limit judged before the body is touched), then a bounded inflate.
      this.dispatch(decodeWireFrame(data, this.welcome?.compression ?? 'none', { maxBodyBytes: this.maxBodyBytes }));
    } catch (err) {
      this.fail(err);
    }
  }

  private dispatch(m: Message): void {
    if (this.welcome === undefined) {
      if (m.type === 'welcome') return this.onWelcome(m);
      if (m.type === 'goodbye') {
        // As after WELCOME: close from here too. Waiting for the server's close, the handshake
        // timeout could end the attempt first, and its delay and endpoints were lost.
        this.goodbye = m;
        // Nor may that timeout end it while the close is under way (fail() on a closing socket
        // finishes without the GOODBYE); the close timer bounds the close itself.
        this.handshakeTimer?.cancel();
        this.handshakeTimer = undefined;
        this.closeWith(1000, 'goodbye');
        return;
      }
      if (m.type === 'error') return void (this.serverError = { code: m.code, message: m.message });
      throw unexpected(`${m.type} before WELCOME`);
    }
    switch (m.type) {
      case 'ping':
        this.send({ type: 'pong', t: m.t });
        return;
      case 'goodbye':
        this.goodbye = m;
        // The server closes with 4010 right after; closing from here too makes the reconnect
        // independent of how fast it does.
        this.closeWith(1000, 'goodbye');
        return;
      case 'error':
        this.serverError = { code: m.code, message: m.message };
        return;
      case 'status':
        // §4.7: an in-sync STATUS carries a digest, except on a scoped feed for a client that
        // advertised scope.watermarks. The codec cannot know either; which feeds are scoped is not
        // said per feed, so the nearest check is the connection's: the WELCOME announced scope.node.
        if (m.status === 'in-sync' && m.digest === undefined && !(this.hello.caps.includes(CAP_SCOPE_WATERMARKS) && this.welcome.caps.includes(CAP_SCOPE_NODE))) {
          throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `status.digest: expected a digest with every in-sync status (${CAP_SCOPE_WATERMARKS} allows none only on a connection with scoped feeds)`, { details: { kind: 'status', key: 'digest' } });
        }
      // falls through
      case 'snapshotBegin':
      case 'snapshotChunk':
      case 'snapshotEnd':
      case 'delta':
      case 'repair':
        if (!this.feedIds.has(m.feedId)) throw unexpected(`${m.type} for feed id ${m.feedId}, which the WELCOME did not assign`, { feedId: m.feedId });
        this.handlers.onFeedMessage(m);
        return;
      default:
        throw unexpected(`${m.type} is not a server-to-client message here`);
    }
  }

  private onWelcome(w: WelcomeMessage): void {
    const problem = checkWelcome(w, this.hello, this.opts.models, this.opts.resources);
    if (problem !== undefined) throw new LocalCloseError('CATTAIL_CLIENT_HANDSHAKE_FAILED', `${this.url}: ${problem}`, { details: { endpoint: this.url } });
    this.welcome = w;
    // The server sends no body above the smaller of the two sizes (§2.2): a larger one, or a
    // compressed one that inflates past it, is refused (4003), not accepted up to our own size.
    this.maxBodyBytes = Math.min(this.opts.maxFrameBytes, w.maxFrameBytes);
    for (const f of w.feeds) this.feedIds.add(f.id);
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    this.readTimeoutMs = Math.max(1, w.pingIntervalMs) * this.opts.readTimeoutFactor;
    this.armReadTimer(this.readTimeoutMs);
    this.handlers.onWelcome(w);
  }

  // One timer per connection that re-arms for the remaining time instead of a clear/set per
  // frame: at thousands of frames per second, per-frame timer churn is measurable.
  private armReadTimer(ms: number): void {
    this.readTimer = this.clock.setTimeout(() => {
      if (this.ended) return;
      const idle = this.clock.monotonic() - this.lastFrameAt;
      if (idle >= this.readTimeoutMs) {
        this.fail(new LocalCloseError('CATTAIL_CLIENT_READ_TIMEOUT', `nothing received from ${this.url} for ${idle} ms (read timeout ${this.readTimeoutMs} ms = ${this.opts.readTimeoutFactor} × pingIntervalMs)`, {
          details: { endpoint: this.url, idleMs: idle, readTimeoutMs: this.readTimeoutMs },
        }));
        return;
      }
      this.armReadTimer(this.readTimeoutMs - idle);
    }, ms);
  }

  /** Sends a message; false when the socket is not open (the message is dropped). */
  send(m: Message): boolean {
    const ws = this.ws;
    if (this.ended || ws === undefined || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(encodeFrame(m));
    return true;
  }

  /** Ends the connection because of `err` (coded close when the socket is open). */
  fail(err: unknown): void {
    if (this.ended) return;
    // The code sent in ERROR decides the close code (proto's CLOSE_OF_ERROR); the error reported
    // locally may wrap it (a codec error is reported as CATTAIL_CLIENT_PROTOCOL_ERROR).
    let wireCode: ClosingErrorCode = 'CATTAIL_INTERNAL';
    let error: CattailError;
    if (isProtocolError(err)) {
      wireCode = err.code;
      error = new CattailError('CATTAIL_CLIENT_PROTOCOL_ERROR', `malformed frame from ${this.url}: ${err.message}`, { cause: err, details: { endpoint: this.url, closeCode: err.closeCode, protoCode: err.code } });
    } else {
      error = toCattailError(err);
      if (isClosingErrorCode(error.code)) wireCode = error.code;
    }
    const closeCode = closeCodeOf(wireCode);
    const ws = this.ws;
    if (ws !== undefined && ws.readyState === WebSocket.OPEN) {
      const codeName = wireCode;
      if (closeCode === CLOSE_CODES.NORMAL.code) this.send({ type: 'goodbye', reason: goodbyeReason(error), message: error.message.slice(0, 1000) });
      else this.send({ type: 'error', code: codeName, message: error.message.slice(0, 1000) });
      this.pendingEnd = { error, welcomed: this.welcome !== undefined, local: true, closeCode };
      this.closeWith(closeCode, codeName);
      return;
    }
    this.finish({ error, welcomed: this.welcome !== undefined, local: true, closeCode });
  }

  /**
   * Graceful close from this side: GOODBYE then close 1000 (PROTOCOL.md §4.11). Resolves when
   * the socket is closed or `closeTimeoutMs` forced it.
   */
  closeGracefully(error: CattailError): void {
    // A close already under way keeps its own end (a server's GOODBYE and its delay, a replica
    // found behind): this one would discard it.
    if (this.ended || this.pendingEnd !== undefined) return;
    if (this.ws?.readyState === WebSocket.OPEN) {
      const reason = goodbyeReason(error);
      this.send({ type: 'goodbye', reason, message: error.message.slice(0, 200) });
      this.pendingEnd = { error, welcomed: this.welcome !== undefined, local: true, closeCode: 1000 };
      this.closeWith(1000, reason);
      return;
    }
    this.terminate(error);
  }

  /** Forced end: no goodbye, socket destroyed. */
  terminate(error: CattailError): void {
    if (this.ended) return;
    this.ws?.terminate();
    this.finish({ error, welcomed: this.welcome !== undefined, local: true });
  }

  private closeWith(code: number, reason: string): void {
    const ws = this.ws;
    if (ws === undefined) return;
    this.pendingEnd ??= {
      error: new CattailError('CATTAIL_CLIENT_SERVER_CLOSED', `${this.url} said goodbye`, { details: { endpoint: this.url, goodbye: this.goodbye } }),
      welcomed: this.welcome !== undefined,
      local: false,
      ...(this.goodbye !== undefined ? { goodbye: this.goodbye, endpoints: this.goodbye.endpoints ?? [] } : {}),
    };
    try {
      ws.close(code, reason.slice(0, 123));
    } catch {
      ws.terminate();
    }
    // A peer that never answers the close (black-holed) must not hold the reconnect.
    this.closeTimer ??= this.clock.setTimeout(() => {
      ws.terminate();
      if (this.pendingEnd !== undefined) this.finish(this.pendingEnd);
    }, this.opts.closeTimeoutMs);
  }

  private finish(end: ConnectionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.handshakeTimer?.cancel();
    this.readTimer?.cancel();
    this.closeTimer?.cancel();
    const ws = this.ws;
    if (ws !== undefined && ws.readyState !== WebSocket.CLOSED) {
      // Listeners stay (an 'error' without a listener would throw into the host); the socket
      // is finished off so nothing else arrives.
      ws.terminate();
    }
    this.handlers.onEnd(end);
  }
}

function goodbyeReason(error: CattailError): string {
  return error.code === 'CATTAIL_CLIENT_REPLICA_BEHIND' ? 'replica-behind' : error.code === 'CATTAIL_CLIENT_MOVED' ? 'moving' : 'client-close';
}

/** Checks a WELCOME against our HELLO; returns the problem or undefined. */
function checkWelcome(w: WelcomeMessage, hello: HelloMessage, models: Readonly<Record<string, readonly string[]>>, resources: Readonly<Record<string, readonly string[]>>): string | undefined {
  // No protocol check here: the codec refuses a WELCOME of another version before (4001, §1.3).
  if (w.feeds.length !== hello.feeds.length) return `WELCOME answers ${w.feeds.length} feeds, HELLO asked for ${hello.feeds.length}`;
  // §8 "Another cluster": a server of another cluster takes us as holding nothing. Anything but a
  // snapshot would be applied onto that cluster's state, whose watermarks we are about to forget.
  const otherCluster = w.cluster !== undefined && hello.cluster !== undefined && w.cluster !== hello.cluster;
  if (otherCluster && w.feeds.some((f) => f.mode !== 'snapshot')) return `WELCOME names cluster ${JSON.stringify(w.cluster)}, not ours (${JSON.stringify(hello.cluster)}), and does not answer every feed with a snapshot`;
  const ids = new Set<number>();
  for (let i = 0; i < w.feeds.length; i++) {
    const f = w.feeds[i]!;
    if (f.name !== hello.feeds[i]!.name) return `WELCOME feed ${i} is ${JSON.stringify(f.name)}, HELLO asked for ${JSON.stringify(hello.feeds[i]!.name)}`;
    if (f.id === NO_FEED || ids.has(f.id)) return `WELCOME assigns feed id ${f.id} twice or NO_FEED`;
    ids.add(f.id);
    if (f.mode === 'resume' && hello.feeds[i]!.token === undefined) return `WELCOME resumes feed ${f.name} although no token was presented`;
    if (f.mode === 'rebase' && (hello.feeds[i]!.watermarks === undefined || f.revision === undefined)) return `WELCOME rebases feed ${f.name} although no watermarks were presented, or without a revision`;
    // §3.2: entries are never applied as a model the agent does not know (no model: calico.v1).
    // Own keys only: a feed named `constructor` (a valid custom feed name) found Object's and threw.
    const known = Object.hasOwn(models, f.name) ? models[f.name] : undefined;
    const model = f.model ?? 'calico.v1';
    if (known !== undefined && !known.includes(model)) return `WELCOME announces model ${model} for feed ${f.name}; this agent applies only ${known.join(', ')}`;
    // §8 "A feed's resources": a host that needs exactly its own definition takes no snapshot of
    // another (it would retire, or take in, resources its own definition does not have).
    const mine = Object.hasOwn(resources, f.name) ? resources[f.name] : undefined;
    if (mine !== undefined && f.resources !== undefined && (f.resources.length !== mine.length || !mine.every((r) => f.resources!.includes(r)))) {
      return `WELCOME lists resources ${f.resources.join(', ')} for feed ${f.name}; this host's definition carries ${mine.join(', ')}`;
    }
  }
  const offered = hello.caps.filter((c) => c.startsWith('compress.')).map((c) => c.slice('compress.'.length));
  if (w.compression !== 'none' && !offered.includes(w.compression)) return `WELCOME chose compression ${w.compression}, which was not offered`;
  if (!(w.pingIntervalMs > 0)) return `WELCOME pingIntervalMs ${w.pingIntervalMs} is not positive`;
  return undefined;
}
