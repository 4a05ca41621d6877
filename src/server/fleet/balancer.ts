/**
 * Replicas that balance themselves: every `intervalMs` a replica reads its own Service's
 * EndpointSlices (the same reader agents use, src/client/discovery.ts), asks each ready peer for
 * its load (`GET /v1/load` on the peer's `metrics` port), computes its share (share.ts) and hands
 * it to the admission and shedding it already has (`setTargetConnections`, `setPeerEndpoints`).
 *
 * Failure modes, each falling back to doing less, never more: a failed EndpointSlice read keeps
 * the last peers and target; a peer that does not answer (or answers more than
 * MAX_LOAD_REPLY_BYTES) counts with unknown load (it gets hints only when no peer is known to
 * have room); one that says it is not ready counts the same and is never hinted; a replica without the node count sets no target while any
 * peer's load is unknown (share.ts). Nothing here closes an agent itself: the shedder moves one
 * per interval.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import { EndpointSliceReader, type EndpointSliceLike, type EndpointSliceSource, sliceEndpoints } from '../../client/discovery.js';
import { computeShare, type Share } from './share.js';

/** What `GET /v1/load` answers. */
export interface LoadReport {
  readonly serverId: string;
  readonly connections: number;
  readonly targetConnections: number | null;
  readonly ready: boolean;
}

export interface BalancerOptions {
  /** NAMESPACE/NAME of this replica's own Service. */
  readonly service: string;
  /** This replica's pod name: its own endpoint is recognised by `targetRef.name` (or its address). */
  readonly selfName: string;
  readonly selfAddresses: readonly string[];
  /** Port names in the EndpointSlices. */
  readonly agentsPortName: string;
  readonly metricsPortName: string;
  /** ws or wss, as agents reach the replicas. */
  readonly scheme: 'ws' | 'wss';
  /**
   * The peers' ops port: `https` when the replicas serve it over TLS (--http-tls). Each peer is
   * then expected to present this replica's own certificate (`ownCertFingerprint`), or the one it
   * had before a rotation for PREVIOUS_CERT_GRACE_MS: the replicas of a Deployment mount one
   * Secret, and the agent port's certificate names the Service, not a pod address, so a CA check
   * by address could not pass. @default 'http'
   */
  readonly loadScheme?: 'http' | 'https' | undefined;
  /** With loadScheme https: the SHA-256 fingerprint (as node:tls prints it) of this replica's certificate now. */
  readonly ownCertFingerprint?: (() => string | undefined) | undefined;
  readonly intervalMs: number;
  readonly nodeCount: () => number | undefined;
  readonly ownConnections: () => number;
  readonly apply: (share: Share) => void;
  readonly clock: Clock;
  readonly log?: Logger | undefined;
  /** Injected in tests; the default reads with client-node (`kubeconfigPath`, else the default config). */
  readonly source?: EndpointSliceSource | undefined;
  readonly kubeconfigPath?: string | undefined;
  /** Reads a peer's load; the default is {@link fetchLoadReport} (2 s timeout, 64 KiB cap). */
  readonly fetchLoad?: ((url: string) => Promise<LoadReport>) | undefined;
}

interface Peer {
  readonly agentsUrl: string;
  readonly loadUrl: string | undefined;
}

/** Ready peers of `slices`, this replica excluded. */
export function peersOf(slices: readonly EndpointSliceLike[], o: Pick<BalancerOptions, 'selfName' | 'selfAddresses' | 'agentsPortName' | 'metricsPortName' | 'scheme' | 'loadScheme'>): Peer[] {
  const out: Peer[] = [];
  const seen = new Set<string>();
  for (const e of sliceEndpoints(slices, o.agentsPortName)) {
    const self = e.podName === o.selfName || o.selfAddresses.includes(e.address);
    const agentsUrl = `${o.scheme}://${e.host}:${e.port}/`;
    // One peer per pod: a dual-stack Service has a slice per address family, so each pod comes
    // twice, and counting it twice skewed both the replica count and the loads.
    const id = e.podName !== undefined ? `pod:${e.podName}` : agentsUrl;
    if (self || !e.ready || seen.has(id) || seen.has(agentsUrl)) continue;
    seen.add(id);
    seen.add(agentsUrl);
    const metrics = e.portNamed(o.metricsPortName);
    out.push({ agentsUrl, loadUrl: metrics === undefined ? undefined : `${o.loadScheme ?? 'http'}://${e.host}:${metrics}/v1/load` });
  }
  return out;
}

/**
 * Largest `/v1/load` reply read from a peer, in bytes. The reply is a few hundred bytes (a server
 * id of at most 64 characters, two counts and a flag), but whatever answers at an address in the
 * Service's EndpointSlices is read, and the 2 s timeout alone would let a broken or hostile one
 * make this replica buffer as much as it can send in 2 s (gigabytes on a fast network). 64 KiB is
 * a hundred times the real reply and costs nothing to hold. A longer reply makes that peer's load
 * unknown, as a peer that does not answer; the read stops at the cap (the connection is dropped).
 */
export const MAX_LOAD_REPLY_BYTES = 64 * 1024;

/** How long a peer's load reply may take, headers and body together, in ms. */
const LOAD_TIMEOUT_MS = 2_000;

/** How long one look at the Service's EndpointSlices may take, in ms (the last peers are kept past it). */
export const LIST_TIMEOUT_MS = 5_000;

/**
 * How long after this replica's certificate changed (a rotation of the Secret) a peer presenting
 * the previous one is still believed, in ms. The kubelet refreshes each pod's copy of a Secret on
 * its own schedule (its sync period plus its cache's TTL: a minute or two apart), so for a while
 * the replicas that got the new certificate first see the others present the old one. The other
 * way round cannot be bridged: a replica still on the old certificate cannot know the new one, and
 * counts an updated peer's load as unknown until its own copy is updated. Believing the previous
 * certificate a while longer risks only the balance (a peer's load), never agents' data.
 */
export const PREVIOUS_CERT_GRACE_MS = 10 * 60_000;

/**
 * The https agent of the load requests: no TLS session cache, no kept connection. A resumed TLS
 * session carries no certificate (getPeerCertificate() is empty), so with Node's global agent
 * every look after the first kept-alive connection had closed (the peer's keepAliveTimeout, 5 s,
 * against a 10 s balance interval) found no certificate to pin and counted every peer's load as
 * unknown. A full handshake per peer per look is what the pin needs.
 */
const PINNED_AGENT = new https.Agent({ keepAlive: false, maxCachedSessions: 0 });

/**
 * GET `url` as a LoadReport, reading at most `maxBytes` of body; throws past it. Over https the
 * peer must present a certificate whose fingerprint `pins` lists (see BalancerOptions.loadScheme):
 * checked before anything is read, and a peer that does not is treated as one that does not answer.
 */
export function fetchLoadReport(url: string, maxBytes = MAX_LOAD_REPLY_BYTES, pins?: () => readonly string[]): Promise<LoadReport> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise<LoadReport>((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const fail = (why: string): void => {
        res.destroy();
        reject(new Error(why));
      };
      if (secure) {
        const got = (res.socket as TLSSocket).getPeerCertificate().fingerprint256 as string | undefined;
        if (got === undefined || !(pins?.() ?? []).includes(got)) return fail(`the peer's certificate (${got ?? 'none'}) is not this replica's`);
      }
      if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode}`);
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > maxBytes) return fail(`load reply of ${declared} bytes is above the ${maxBytes}-byte cap`);
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) return fail(`load reply above the ${maxBytes}-byte cap`);
        chunks.push(c);
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as LoadReport);
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    };
    const signal = AbortSignal.timeout(LOAD_TIMEOUT_MS);
    // No CA check by address (see loadScheme): the pin above is the check.
    const req = secure ? https.get(u, { signal, rejectUnauthorized: false, agent: PINNED_AGENT }, onResponse) : http.get(u, { signal }, onResponse);
    req.on('error', reject);
  });
}

/**
 * Largest connection count a peer's /v1/load is believed (a replica's maxConnections is 10,000
 * by default; a million is far past any replica): larger is a broken or hostile answer, unknown.
 */
export const MAX_PEER_CONNECTIONS = 1_000_000;

export class ReplicaBalancer {
  private readonly slices: EndpointSliceReader;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** The last share applied (tests, /debug). */
  last: Share | undefined;
  ticks = 0;
  /** This replica's certificate fingerprint as last read, and earlier ones until when they are still believed (PREVIOUS_CERT_GRACE_MS). */
  private ownPin: string | undefined;
  /** Peers whose load could not be read at the last look (logged once as they turn unknown). */
  private readonly unreadable = new Set<string>();
  private previousPins: { fingerprint: string; untilMs: number }[] = [];

  constructor(private readonly o: BalancerOptions) {
    // Past LIST_TIMEOUT_MS a tick gives up (the last peers and target stay): a black-holed API
    // server held the tick, and so the shutdown that waits for it (stop), past the grace period.
    this.slices = new EndpointSliceReader({ service: o.service, source: o.source, kubeconfigPath: o.kubeconfigPath, timeoutMs: LIST_TIMEOUT_MS, setTimeout: (fn, ms) => o.clock.setTimeout(fn, ms) });
  }

  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
  }

  /** One look: slices → peers' loads → share → apply. Never throws. */
  async tick(): Promise<void> {
    this.ticks++;
    let peers: Peer[];
    try {
      peers = peersOf(await this.slices.read(), this.o);
    } catch (err) {
      this.o.log?.warn({ err, service: this.o.service }, 'cannot read this replica\'s EndpointSlices; keeping the last peers and target');
      return;
    }
    const pins = this.pins();
    const fetchLoad = this.o.fetchLoad ?? ((url: string) => fetchLoadReport(url, MAX_LOAD_REPLY_BYTES, () => pins));
    const loads = await Promise.all(
      peers.map(async (p) => {
        if (p.loadUrl === undefined) return { url: p.agentsUrl, connections: undefined };
        try {
          const r = await fetchLoad(p.loadUrl);
          if (this.unreadable.delete(p.agentsUrl)) this.o.log?.info({ peer: p.loadUrl }, 'a peer\'s load is readable again');
          // A peer that says it is not ready (its slice lags by a probe period or more) has no
          // room to offer, and is not hinted at all: hinted agents would get its 503.
          if (r.ready === false) return { url: p.agentsUrl, connections: undefined, notReady: true };
          // Bounded: an answer of 2^53 - 1 (a broken or hostile peer) made the computed target
          // pass the safe integers, and setting it threw out of this tick: an unhandled
          // rejection that ended every replica reading that peer, at each start.
          return { url: p.agentsUrl, connections: Number.isSafeInteger(r.connections) && r.connections >= 0 && r.connections <= MAX_PEER_CONNECTIONS ? r.connections : undefined };
        } catch (err) {
          // Once per peer as it turns unknown: without a node count (tier 2) one such peer means
          // no target for this replica, and the operator sees why here.
          if (!this.unreadable.has(p.agentsUrl)) {
            this.unreadable.add(p.agentsUrl);
            this.o.log?.warn({ peer: p.loadUrl, err }, 'cannot read a peer\'s load; counting it as unknown');
          }
          return { url: p.agentsUrl, connections: undefined };
        }
      }),
    );
    if (this.stopped) return;
    for (const u of this.unreadable) if (!peers.some((p) => p.agentsUrl === u)) this.unreadable.delete(u);
    const share = computeShare({ nodes: this.o.nodeCount(), ownConnections: this.o.ownConnections(), peers: loads });
    if (this.last === undefined || this.last.target !== share.target || this.last.rebalancing !== share.rebalancing) {
      this.o.log?.info({ target: share.target, fair: share.fair, capacity: share.capacity, peers: loads.length, rebalancing: share.rebalancing }, 'connection share updated');
    }
    this.last = share;
    try {
      this.o.apply(share);
    } catch (err) {
      // Never out of the tick (see schedule): a share the server refuses is logged and dropped.
      this.o.log?.error({ err, target: share.target }, 'connection share not applied');
    }
  }

  /** The certificates a peer may present (loadScheme https): ours now, and ours before a rotation for a while. */
  private pins(): readonly string[] {
    const now = this.o.clock.monotonic();
    const current = this.o.ownCertFingerprint?.();
    if (current !== this.ownPin) {
      if (this.ownPin !== undefined) this.previousPins.push({ fingerprint: this.ownPin, untilMs: now + PREVIOUS_CERT_GRACE_MS });
      this.ownPin = current;
    }
    this.previousPins = this.previousPins.filter((p) => p.untilMs > now && p.fingerprint !== current);
    return [...(current === undefined ? [] : [current]), ...this.previousPins.map((p) => p.fingerprint)];
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.o.clock.setTimeout(() => {
      // A rejection here had no handler: an unhandled rejection ends the process.
      this.running = this.tick()
        .catch((err: unknown) => this.o.log?.error({ err }, 'connection share look failed'))
        .finally(() => this.schedule(this.o.intervalMs));
    }, delayMs);
  }
}
