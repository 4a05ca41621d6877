/**
 * A minimal test agent: a real `ws` client speaking cattail.v1 that applies frames to a local copy
 * of each feed and checks the rules a real client must (DELTA from = its revision, never backwards,
 * snapshot applied at END). Its digest, computed from scratch, is compared with the store's.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { Flags, type Message, decodeBody, encodeFrame, splitFrame } from '../../../proto/index.js';
import { inflateBody } from '../../../src/frame-compression.js';
import { digestOf } from '../../support/digest.js';
import { waitUntil } from '../../support/wait.js';

export interface AgentFeedState {
  name: string;
  id: number;
  mode: string;
  reason: string | undefined;
  revision: number;
  entries: Map<string, Buffer>;
  token: Buffer | undefined;
  status: string | undefined;
  /** The stale flag of the last SNAPSHOT_END or STATUS. */
  stale: boolean | undefined;
  snapshots: number;
  /** Each SNAPSHOT_END's revision and watermarks, in order. */
  snapshotEnds: { revision: number; watermarks: Record<string, string> }[];
  deltas: { from: number; to: number }[];
  pendingSnapshot: Map<string, Buffer> | undefined;
  /** `ops` in frame order (each frame's upserts, then its deletes): a scoped unit's later frames win (PROTOCOL.md §7.3). */
  pendingDelta: { from: number; to: number; upserts: [string, Buffer][]; deletes: string[]; ops: [string, Buffer | null][] } | undefined;
}

export interface AgentOptions {
  /** `entries`/`revision`: the state a resuming agent kept from an earlier connection. */
  feeds: { name: string; token?: Buffer; watermarks?: Record<string, string>; notBefore?: Record<string, string>; entries?: Map<string, Buffer>; revision?: number }[];
  caps?: string[];
  protocol?: string | string[];
  /** Answer PINGs (default true). */
  autoPong?: boolean;
  /** Do not send HELLO (handshake timeout tests). */
  silent?: boolean;
  maxFrameBytes?: number;
  /** The node named in HELLO (default node-1). */
  node?: string;
  /** The clientId in HELLO (default test). */
  clientId?: string;
  /** HELLO `cluster`: the cluster the presented state came from (PROTOCOL.md §8 "Another cluster"). */
  cluster?: string;
  /** Keep every decoded message in `messages` (what a scoped agent was sent, for example). */
  record?: boolean;
  /** TLS for wss:// URLs: the CA of the server certificate and a client certificate. */
  tls?: { ca: string; cert?: string; key?: string };
}

export class TestAgent extends EventEmitter {
  readonly ws: WebSocket;
  readonly feeds = new Map<number, AgentFeedState>();
  readonly violations: string[] = [];
  /** Every decoded message, when `record` was asked for. */
  readonly messages: Message[] = [];
  readonly received: Message['type'][] = [];
  welcome: Extract<Message, { type: 'welcome' }> | undefined;
  errors: { code: string; message: string }[] = [];
  goodbyes: string[] = [];
  /** The GOODBYE messages themselves (reconnectDelayMs, endpoints). */
  goodbyeMessages: Extract<Message, { type: 'goodbye' }>[] = [];
  closeCode: number | undefined;
  closeReason = '';
  closed: Promise<number>;
  bytesReceived = 0;
  /** The largest frame body received, in bytes (frame minus its 28-byte header). */
  largestBodyBytes = 0;

  constructor(url: string, private readonly opts: AgentOptions) {
    super();
    this.ws = new WebSocket(url, opts.protocol ?? 'cattail.v1', { perMessageDeflate: false, ...(opts.tls ?? {}) });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.emit('change');
        resolve(code);
      });
    });
    this.ws.on('error', () => undefined);
    this.ws.on('open', () => {
      if (!opts.silent) this.sendMessage({ type: 'hello', protocol: 1, node: opts.node ?? 'node-1', clientId: opts.clientId ?? 'test', feeds: opts.feeds.map((f) => ({ name: f.name, ...(f.token === undefined ? {} : { token: f.token }), ...(f.watermarks === undefined ? {} : { watermarks: f.watermarks }), ...(f.notBefore === undefined ? {} : { notBefore: f.notBefore }) })), caps: opts.caps ?? [], ...(opts.maxFrameBytes ? { maxFrameBytes: opts.maxFrameBytes } : {}), ...(opts.cluster !== undefined ? { cluster: opts.cluster } : {}) });
    });
    this.ws.on('message', (data: Buffer) => {
      this.bytesReceived += data.length;
      this.largestBodyBytes = Math.max(this.largestBodyBytes, data.length - 28);
      try {
        this.onFrame(data);
      } catch (err) {
        this.violations.push(`decode: ${(err as Error).message}`);
      }
      this.emit('change');
    });
  }

  sendMessage(m: Message): void {
    this.ws.send(encodeFrame(m));
  }

  sendRaw(b: Buffer | string): void {
    this.ws.send(b);
  }

  /** A text message of these bytes, UTF-8 or not (ws does not check what it sends). */
  sendText(b: Buffer): void {
    this.ws.send(b, { binary: false });
  }

  /** The raw socket underneath (to pause reading and make the server's buffer fill). */
  get socket(): Socket {
    return (this.ws as unknown as { _socket: Socket })._socket;
  }

  feed(name: string): AgentFeedState {
    for (const f of this.feeds.values()) if (f.name === name) return f;
    throw new Error(`agent has no feed ${name}`);
  }

  digest(name: string): Buffer {
    // The digest does not depend on order (§10).
    return digestOf(this.feed(name).entries);
  }

  /** {@link waitUntil} `pred`, re-checked on every frame and close; the failure shows violations and the close code. */
  until(pred: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return waitUntil(pred, what, {
      timeoutMs,
      wake: (check) => (this.on('change', check), () => this.off('change', check)),
      detail: () => `violations: ${this.violations.join('; ')}; close ${this.closeCode}`,
    });
  }

  untilRevision(name: string, revision: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.feeds.size > 0 && [...this.feeds.values()].some((f) => f.name === name && f.revision >= revision && f.pendingSnapshot === undefined), `${name} at revision ${revision}`, timeoutMs);
  }

  close(code = 1000): void {
    this.ws.close(code);
  }

  private onFrame(data: Buffer): void {
    const { header, body } = splitFrame(data, { maxBodyBytes: 64 * 1024 * 1024 });
    let plain: Buffer = body;
    if ((header.flags & Flags.COMPRESSED) !== 0) {
      const c = this.welcome?.compression;
      if (c === undefined || c === 'none') {
        this.violations.push('COMPRESSED frame without negotiated compression');
        return;
      }
      plain = inflateBody(c, body, 64 * 1024 * 1024);
    }
    const m = decodeBody(header, plain);
    this.received.push(m.type);
    if (this.opts.record === true) this.messages.push(m);
    switch (m.type) {
      case 'welcome':
        this.welcome = m;
        for (const f of m.feeds) {
          const kept = this.opts.feeds.find((x) => x.name === f.name);
          this.feeds.set(f.id, {
            name: f.name, id: f.id, mode: f.mode, reason: f.reason, revision: f.mode === 'rebase' && f.revision !== undefined ? f.revision : kept?.revision ?? 0, entries: new Map(kept?.entries ?? []),
            token: kept?.token, status: undefined, stale: undefined, snapshots: 0, snapshotEnds: [], deltas: [], pendingSnapshot: undefined, pendingDelta: undefined,
          });
        }
        return;
      case 'ping':
        if (this.opts.autoPong ?? true) this.sendMessage({ type: 'pong', t: m.t });
        return;
      case 'error':
        this.errors.push({ code: m.code, message: m.message });
        return;
      case 'goodbye':
        this.goodbyes.push(m.reason);
        this.goodbyeMessages.push(m);
        return;
      default:
        break;
    }
    if (!('feedId' in m)) return;
    const f = this.feeds.get(m.feedId);
    if (f === undefined) {
      this.violations.push(`frame for unknown feed id ${m.feedId}`);
      return;
    }
    switch (m.type) {
      case 'snapshotBegin':
        f.pendingSnapshot = new Map();
        return;
      case 'snapshotChunk':
        if (f.pendingSnapshot === undefined) this.violations.push('CHUNK outside a snapshot');
        for (const [k, v] of m.entries) f.pendingSnapshot?.set(k, Buffer.from(v));
        return;
      case 'snapshotEnd': {
        if (f.pendingSnapshot === undefined) {
          this.violations.push('END outside a snapshot');
          return;
        }
        if (m.revision < f.revision) this.violations.push(`snapshot at ${m.revision} older than applied ${f.revision}`);
        f.entries = f.pendingSnapshot;
        f.pendingSnapshot = undefined;
        f.revision = m.revision;
        f.token = Buffer.from(m.token);
        f.status = m.status;
        f.stale = m.stale;
        f.snapshots++;
        f.snapshotEnds.push({ revision: m.revision, watermarks: { ...m.watermarks } });
        if (!this.digest(f.name).equals(Buffer.from(m.digest))) this.violations.push(`snapshot digest mismatch at ${m.revision}`);
        return;
      }
      case 'delta': {
        if (f.pendingDelta === undefined) {
          // A resume may start before the kept state when the agent stopped between a DELTA and the
          // STATUS carrying its token: the compacted changes since then are a superset, safe to apply.
          if (f.mode === 'resume' && f.deltas.length === 0 && f.snapshots === 0 && m.fromRevision <= f.revision) f.revision = m.fromRevision;
          if (m.fromRevision !== f.revision) this.violations.push(`DELTA from ${m.fromRevision} but agent at ${f.revision}`);
          if (m.toRevision < m.fromRevision) this.violations.push(`DELTA goes backwards ${m.fromRevision}→${m.toRevision}`);
          f.pendingDelta = { from: m.fromRevision, to: m.toRevision, upserts: [], deletes: [], ops: [] };
        }
        for (const [k, v] of m.upserts) {
          f.pendingDelta.upserts.push([k, Buffer.from(v)]);
          f.pendingDelta.ops.push([k, Buffer.from(v)]);
        }
        f.pendingDelta.deletes.push(...m.deletes);
        for (const k of m.deletes) f.pendingDelta.ops.push([k, null]);
        if (!m.more) {
          const d = f.pendingDelta;
          for (const [k, v] of d.ops) {
            if (v === null) f.entries.delete(k);
            else f.entries.set(k, v);
          }
          f.revision = d.to;
          f.deltas.push({ from: d.from, to: d.to });
          f.pendingDelta = undefined;
        }
        return;
      }
      case 'status':
        if (m.revision !== f.revision) this.violations.push(`STATUS for ${m.revision} while at ${f.revision}`);
        // PROTOCOL.md §4.7: a STATUS without digest never moves a feed into in-sync.
        if (m.digest === undefined && m.status === 'in-sync' && f.status !== 'in-sync') this.violations.push(`in-sync STATUS without digest at ${m.revision} while ${f.status ?? 'not in sync'}`);
        f.status = m.status;
        f.stale = m.stale;
        f.token = Buffer.from(m.token);
        if (m.digest !== undefined && !this.digest(f.name).equals(Buffer.from(m.digest))) this.violations.push(`STATUS digest mismatch at ${m.revision}`);
        // PROTOCOL.md §4.7: only an agent that advertised scope.watermarks may get one without.
        if (m.digest === undefined && m.status === 'in-sync' && !(this.opts.caps ?? []).includes('scope.watermarks')) this.violations.push(`in-sync STATUS without digest at ${m.revision}`);
        return;
      default:
        return;
    }
  }
}

/** Resolves once the agent's WebSocket is open. */
export function opened(a: TestAgent): Promise<void> {
  if (a.ws.readyState === WebSocket.OPEN) return Promise.resolve();
  return new Promise((resolve, reject) => {
    a.ws.once('open', () => resolve());
    a.ws.once('close', (code) => reject(new Error(`closed before open: ${code}`)));
    a.ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

