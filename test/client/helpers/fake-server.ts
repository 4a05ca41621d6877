/**
 * A scripted cattail.v1 server for the client's tests: speaks PROTOCOL.md with `ws` and the codec,
 * and can misbehave on demand (503 refusals, black-holing, malformed frames, wrong digests, stale
 * watermarks, GOODBYE). It is deliberately simple and independent of the real server: its digest
 * is computed from scratch at every use, its delta log keeps every revision, and its tokens are
 * JSON, so a client bug cannot hide behind shared code.
 */
import { randomUUID } from 'node:crypto';
import { digestOf } from '../../support/digest.js';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Packr } from 'msgpackr';
import { duplexPair } from '../../support/duplex-pair.js';
import { WebSocket, WebSocketServer } from 'ws';
import { compressFrame } from '../../../src/frame-compression.js';
import {
  SUBPROTOCOL,
  decodeFrame,
  encodeFrame,
  type Entry,
  type HelloMessage,
  type Message,
  type SyncStatus,
} from '../../../proto/index.js';

const packr = new Packr({ useRecords: false });

/** msgpack bytes of a plain value, as the server's store would hold them. */
export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/** PROTOCOL.md §10, computed from scratch (no incremental state shared with the client). */
export const fullDigest = digestOf;

interface LogEntry {
  rev: number;
  upserts: Map<string, Buffer>;
  deletes: Set<string>;
}

export class FakeFeed {
  entries = new Map<string, Buffer>();
  revision = 1;
  log: LogEntry[] = [];
  watermarks: Record<string, string> = {};
  status: SyncStatus = 'in-sync';
  stale = false;
  constructor(readonly name: string) {}

  sorted(): Entry[] {
    return [...this.entries.entries()].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /** Compacted changes since `rev`, or undefined when the log does not reach back that far. */
  since(rev: number): { upserts: Entry[]; deletes: string[] } | undefined {
    if (rev > this.revision) return undefined;
    const first = this.log[0];
    if (rev < this.revision && (first === undefined || first.rev > rev + 1)) return undefined;
    const up = new Map<string, Buffer>();
    const del = new Set<string>();
    for (const e of this.log) {
      if (e.rev <= rev) continue;
      for (const [k, v] of e.upserts) {
        del.delete(k);
        up.set(k, v);
      }
      for (const k of e.deletes) {
        up.delete(k);
        del.add(k);
      }
    }
    return { upserts: [...up.entries()], deletes: [...del] };
  }
}

export interface FakeServerOptions {
  serverId?: string;
  feeds?: string[];
  pingIntervalMs?: number;
  /** Entries per SNAPSHOT_CHUNK. */
  chunkEntries?: number;
  /** Compression the server picks when the client offers it. */
  compression?: 'none' | 'deflate' | 'brotli';
  /** Send STATUS (digest, token) after every delta. */
  statusAfterDelta?: boolean;
  /** maxFrameBytes its WELCOME announces; default 1 MiB, whatever the HELLO asked (a server free to send less). */
  welcomeMaxFrameBytes?: number;
  /** Capabilities its WELCOME announces; default none. */
  welcomeCaps?: string[];
  port?: number;
  tls?: { key: Buffer; cert: Buffer; ca: Buffer };
}

export interface ClientRecord {
  ws: WebSocket;
  hello: HelloMessage | undefined;
  feedIds: Map<string, number>;
  /** Revision each feed's client was last sent (for live deltas). */
  at: Map<string, number>;
  peerCn: string | undefined;
  welcomeCompression?: string;
}

export interface Recorded {
  hellos: HelloMessage[];
  acks: { feed: string; revision: number }[];
  pongs: number[];
  clientCloses: { code: number; reason: string }[];
  clientGoodbyes: Message[];
  clientErrors: Message[];
  refusals: number;
  upgrades: number;
  peerCns: (string | undefined)[];
}

export class FakeServer {
  readonly feeds = new Map<string, FakeFeed>();
  readonly clients = new Set<ClientRecord>();
  readonly rec: Recorded = { hellos: [], acks: [], pongs: [], clientCloses: [], clientGoodbyes: [], clientErrors: [], refusals: 0, upgrades: 0, peerCns: [] };
  serverId: string;
  epoch: string = randomUUID();
  port = 0;
  /** Refuse the next N upgrades with 503. */
  refuse = { count: 0, retryAfterS: 1, endpoints: [] as string[] };
  /** Send this digest instead of the real one in the next N digests. */
  corruptDigests = 0;
  /** Overrides the watermarks sent (a replica that is behind). */
  fakeWatermarks: Record<string, string> | undefined;
  /** Accept HELLO but never answer it (handshake timeout). */
  noWelcome = false;
  /** WELCOME `cluster` (PROTOCOL.md §8 "Another cluster"); this fake ignores the HELLO's (a broken server). */
  cluster: string | undefined;
  /** Stop answering entirely (socket paused: no data, no close replies). */
  blackholed = false;
  private http: Server | undefined;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<Socket>();
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly opts: FakeServerOptions) {
    this.serverId = opts.serverId ?? `fake-${randomUUID().slice(0, 8)}`;
    for (const f of opts.feeds ?? ['felix']) this.feeds.set(f, new FakeFeed(f));
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req));
  }

  /**
   * One end of an in-memory connection to this server (the client's `dial` seam): the other end
   * goes through the same HTTP upgrade path as a TCP socket would, without the network.
   */
  dial(): Duplex {
    if (this.http === undefined) throw new Error('fake server not started');
    const [client, server] = duplexPair();
    this.http.emit('connection', server);
    return client;
  }

  static async start(opts: FakeServerOptions = {}): Promise<FakeServer> {
    const s = new FakeServer(opts);
    await s.listen(opts.port ?? 0);
    return s;
  }

  get url(): string {
    return `${this.opts.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
  }

  feed(name = 'felix'): FakeFeed {
    const f = this.feeds.get(name);
    if (f === undefined) throw new Error(`fake server has no feed ${name}`);
    return f;
  }

  /** Calls `fn` after anything recorded changes (for waitUntil's `wake`). */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  private async listen(port: number): Promise<void> {
    const handler = (_req: IncomingMessage, res: ServerResponse): void => {
      res.statusCode = 426;
      res.end();
    };
    const http = this.opts.tls
      ? createHttpsServer({ key: this.opts.tls.key, cert: this.opts.tls.cert, ca: this.opts.tls.ca, requestCert: true, rejectUnauthorized: true }, handler)
      : createHttpServer(handler);
    http.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    http.on('secureConnection', (s: TLSSocket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.rec.upgrades++;
      if (this.refuse.count > 0) {
        this.refuse.count--;
        this.rec.refusals++;
        const hint = this.refuse.endpoints.length > 0 ? `X-Cattail-Endpoints: ${this.refuse.endpoints.join(',')}\r\n` : '';
        socket.end(`HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${this.refuse.retryAfterS}\r\n${hint}Content-Length: 0\r\nConnection: close\r\n\r\n`);
        this.changed();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.wss.emit('connection', ws, req));
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, '127.0.0.1', () => resolve());
    });
    this.http = http;
    this.port = (http.address() as AddressInfo).port;
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const tlsSock = req.socket as TLSSocket;
    const peerCn = typeof tlsSock.getPeerCertificate === 'function' ? (tlsSock.getPeerCertificate()?.subject?.CN as string | undefined) : undefined;
    const c: ClientRecord = { ws, hello: undefined, feedIds: new Map(), at: new Map(), peerCn };
    this.rec.peerCns.push(peerCn);
    this.clients.add(c);
    ws.on('message', (data: Buffer) => this.onClientFrame(c, data));
    ws.on('close', (code, reason) => {
      this.clients.delete(c);
      this.rec.clientCloses.push({ code, reason: reason.toString() });
      this.changed();
    });
    ws.on('error', () => undefined);
    this.changed();
  }

  private onClientFrame(c: ClientRecord, data: Buffer): void {
    if (this.blackholed) return;
    let m: Message;
    try {
      m = decodeFrame(data, { maxBodyBytes: 65_536 });
    } catch {
      c.ws.close(4000, 'bad frame');
      return;
    }
    switch (m.type) {
      case 'hello':
        this.rec.hellos.push(m);
        c.hello = m;
        if (!this.noWelcome) this.welcome(c, m);
        break;
      case 'ack': {
        const name = [...c.feedIds.entries()].find(([, id]) => id === m.feedId)?.[0] ?? '?';
        this.rec.acks.push({ feed: name, revision: m.revision });
        break;
      }
      case 'pong':
        this.rec.pongs.push(m.t);
        break;
      case 'goodbye':
        this.rec.clientGoodbyes.push(m);
        break;
      case 'error':
        this.rec.clientErrors.push(m);
        break;
      default:
        c.ws.close(4002, 'unexpected');
    }
    this.changed();
  }

  token(feed: FakeFeed, rev: number): Buffer {
    return Buffer.from(JSON.stringify({ s: this.serverId, e: this.epoch, f: feed.name, r: rev }));
  }

  private welcome(c: ClientRecord, hello: HelloMessage): void {
    const compression = this.opts.compression ?? 'none';
    const chosen = compression !== 'none' && hello.caps.includes(`compress.${compression}`) ? compression : 'none';
    const plan: { feed: FakeFeed; id: number; mode: 'resume' | 'snapshot'; reason?: string; from?: number }[] = [];
    hello.feeds.forEach((hf, i) => {
      const feed = this.feeds.get(hf.name);
      if (feed === undefined) {
        c.ws.close(4006, `unknown feed ${hf.name}`);
        return;
      }
      let mode: 'resume' | 'snapshot' = 'snapshot';
      let reason = 'no-token';
      let from: number | undefined;
      if (hf.token !== undefined) {
        try {
          const t = JSON.parse(Buffer.from(hf.token).toString()) as { s: string; e: string; f: string; r: number };
          if (t.s !== this.serverId) reason = 'other-server';
          else if (t.e !== this.epoch) reason = 'epoch-changed';
          else if (t.f !== feed.name) reason = 'bad-token';
          else if (feed.since(t.r) === undefined) reason = 'too-old';
          else {
            mode = 'resume';
            from = t.r;
          }
        } catch {
          reason = 'bad-token';
        }
      }
      plan.push(mode === 'resume' ? { feed, id: i + 1, mode, from: from! } : { feed, id: i + 1, mode, reason });
    });
    if (plan.length !== hello.feeds.length) return;
    this.send(c, {
      type: 'welcome', protocol: 1, serverId: this.serverId, pingIntervalMs: this.opts.pingIntervalMs ?? 10_000, pongTimeoutMs: 60_000,
      maxFrameBytes: this.opts.welcomeMaxFrameBytes ?? 1_048_576, maxInboundBytes: 65_536, compression: chosen, caps: this.opts.welcomeCaps ?? [],
      feeds: plan.map((p) => (p.reason === undefined ? { name: p.feed.name, id: p.id, mode: p.mode } : { name: p.feed.name, id: p.id, mode: p.mode, reason: p.reason })),
      ...(this.cluster !== undefined ? { cluster: this.cluster } : {}),
    });
    c.welcomeCompression = chosen;
    for (const p of plan) {
      c.feedIds.set(p.feed.name, p.id);
      if (p.mode === 'snapshot') this.sendSnapshot(c, p.feed);
      else {
        const d = p.feed.since(p.from!)!;
        if (p.feed.revision > p.from!) this.sendRaw(c, encodeFrame({ type: 'delta', feedId: p.id, fromRevision: p.from!, toRevision: p.feed.revision, more: false, upserts: d.upserts, deletes: d.deletes }));
        c.at.set(p.feed.name, p.feed.revision);
        this.sendStatus(c, p.feed);
      }
    }
  }

  /** Sends a complete snapshot unit of `feed` to `c` (also usable in-band). */
  sendSnapshot(c: ClientRecord, feed: FakeFeed): void {
    const id = c.feedIds.get(feed.name)!;
    const entries = feed.sorted();
    const rawBytes = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + v.length, 0);
    this.send(c, { type: 'snapshotBegin', feedId: id, revision: feed.revision, entries: entries.length, rawBytes });
    const per = this.opts.chunkEntries ?? 2;
    for (let i = 0; i < entries.length; i += per) {
      this.send(c, { type: 'snapshotChunk', feedId: id, revision: feed.revision, entries: entries.slice(i, i + per) });
    }
    this.send(c, {
      type: 'snapshotEnd', feedId: id, revision: feed.revision, digest: this.digestFor(feed), watermarks: this.fakeWatermarks ?? feed.watermarks,
      status: feed.status, stale: feed.stale, token: this.token(feed, feed.revision),
    });
    c.at.set(feed.name, feed.revision);
  }

  private digestFor(feed: FakeFeed): Buffer {
    if (this.corruptDigests > 0) {
      this.corruptDigests--;
      return Buffer.from('0123456789abcdef', 'hex');
    }
    return fullDigest(feed.entries);
  }

  sendStatus(c: ClientRecord, feed: FakeFeed): void {
    const id = c.feedIds.get(feed.name);
    if (id === undefined) return;
    this.send(c, {
      type: 'status', feedId: id, revision: feed.revision, status: feed.status, stale: feed.stale,
      watermarks: this.fakeWatermarks ?? feed.watermarks, digest: this.digestFor(feed), token: this.token(feed, feed.revision),
    });
  }

  /**
   * Applies a batch to a feed (a new revision) and streams it to every welcomed client:
   * DELTA, then STATUS unless `statusAfterDelta` is false.
   */
  apply(feedName: string, batch: { upserts?: [string, unknown][]; deletes?: string[]; watermarks?: Record<string, string> }): number {
    const feed = this.feed(feedName);
    const up = new Map<string, Buffer>();
    const del = new Set<string>();
    for (const [k, v] of batch.upserts ?? []) {
      const b = pack(v);
      up.set(k, b);
      feed.entries.set(k, b);
    }
    for (const k of batch.deletes ?? []) {
      del.add(k);
      feed.entries.delete(k);
    }
    feed.revision++;
    feed.log.push({ rev: feed.revision, upserts: up, deletes: del });
    if (batch.watermarks) Object.assign(feed.watermarks, batch.watermarks);
    for (const c of this.clients) {
      const from = c.at.get(feed.name);
      const id = c.feedIds.get(feed.name);
      if (from === undefined || id === undefined) continue;
      const d = feed.since(from)!;
      this.sendRaw(c, encodeFrame({ type: 'delta', feedId: id, fromRevision: from, toRevision: feed.revision, more: false, upserts: d.upserts, deletes: d.deletes }));
      c.at.set(feed.name, feed.revision);
      if (this.opts.statusAfterDelta !== false) this.sendStatus(c, feed);
    }
    return feed.revision;
  }

  /** Sets data without streaming (before clients connect). */
  load(feedName: string, entries: [string, unknown][], watermarks: Record<string, string> = {}): void {
    const feed = this.feed(feedName);
    for (const [k, v] of entries) feed.entries.set(k, pack(v));
    Object.assign(feed.watermarks, watermarks);
  }

  setStatus(feedName: string, s: { status?: SyncStatus; stale?: boolean }): void {
    const feed = this.feed(feedName);
    if (s.status !== undefined) feed.status = s.status;
    if (s.stale !== undefined) feed.stale = s.stale;
    for (const c of this.clients) if (c.at.has(feed.name)) this.sendStatus(c, feed);
  }

  ping(t = 1): void {
    for (const c of this.clients) if (c.hello) this.send(c, { type: 'ping', t });
  }

  /** Sends raw bytes (possibly malformed) to every client. */
  sendRawToAll(bytes: Buffer, binary = true): void {
    for (const c of this.clients) if (c.ws.readyState === WebSocket.OPEN) c.ws.send(bytes, { binary });
  }

  goodbyeAll(g: { reconnectDelayMs?: number; endpoints?: string[]; reason?: string }, closeCode = 4010): void {
    for (const c of this.clients) {
      const m: Message = { type: 'goodbye', reason: g.reason ?? 'shutdown', message: 'test goodbye' };
      if (g.reconnectDelayMs !== undefined) m.reconnectDelayMs = g.reconnectDelayMs;
      if (g.endpoints !== undefined) m.endpoints = g.endpoints;
      this.send(c, m);
      c.ws.close(closeCode, 'shutdown');
    }
  }

  /** Stops reading and writing every connection, and answers nothing more (a black hole). */
  blackhole(): void {
    this.blackholed = true;
    for (const c of this.clients) (c.ws as unknown as { _socket: Socket })._socket.pause();
  }

  private send(c: ClientRecord, m: Message): void {
    this.sendRaw(c, encodeFrame(m));
  }

  private sendRaw(c: ClientRecord, frame: Buffer): void {
    if (this.blackholed || c.ws.readyState !== WebSocket.OPEN) return;
    const alg = c.welcomeCompression ?? 'none';
    c.ws.send(alg === 'brotli' || alg === 'deflate' ? compressFrame(alg, frame, 64) : frame);
  }

  /** Closes the listener and destroys every connection (a crash, no GOODBYE). */
  async stop(): Promise<void> {
    for (const c of this.clients) c.ws.terminate();
    for (const s of this.sockets) s.destroy();
    const http = this.http;
    this.http = undefined;
    if (http) await new Promise<void>((resolve) => http.close(() => resolve()));
  }

  /**
   * Starts again on the same port as a new store instance: new epoch (old tokens answer with a
   * snapshot), revision restarted, same data (it relisted the same API server).
   */
  async restart(): Promise<void> {
    await this.stop();
    this.epoch = randomUUID();
    this.blackholed = false;
    for (const f of this.feeds.values()) {
      f.revision = 1;
      f.log = [];
    }
    await this.listen(this.port);
  }
}
