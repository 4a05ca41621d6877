import { readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { CattailError } from '../../errors.js';

/**
 * HTTP to the API server. `@kubernetes/client-node` is used only for what it does well: loading
 * the kubeconfig (file, KUBECONFIG, in-cluster) and turning it into request options — CA, client
 * certificates, tls-server-name, proxies, bearer tokens and exec/OIDC auth — through
 * `applyToHTTPSOptions`, called for every request so exec credentials are refreshed as they
 * expire and the in-cluster token as it rotates (re-read every 60 s by client-node, and before
 * every request here once a 401 was seen). A kubeconfig's `token-file` is read once by client-node,
 * and its `tokenFile` field not at all (docs/deploy.md "Credentials outside the cluster").
 *
 * Rejected: the typed list API (returns class instances with `Date`s and `_continue`, unlike watch
 * objects, so equal objects would differ), the library's `Watch`/`ListWatch` (no bookmarks, no
 * paging, no timeout, stops for good on network errors, hot-loops on ERROR events) and global
 * `fetch` (ignores the kubeconfig's TLS settings).
 */
export interface Transport {
  /** GET `pathAndQuery`; resolves with the response once headers arrive (any status). */
  get(pathAndQuery: string, signal: AbortSignal): Promise<IncomingMessage>;
  /** Told about a 401 so a rotated token file is re-read before the next request. */
  unauthorized(): void;
}

/**
 * The shortest time between two drops of a cached exec credential after a 401, in ms (real time,
 * as the plugin runs in it). A token the API server refuses is refused to every reflector at once;
 * one plugin run serves them all.
 */
export const EXEC_DROP_MIN_MS = 10_000;

export class KubeTransport implements Transport {
  private tokenOverride: string | undefined;
  /** A credentials call still running (see get): later requests wait for it instead of starting another. */
  private credentials: Promise<void> | undefined;
  /** The token file read before every request once a 401 was seen (see unauthorized). */
  private tokenFile: string | undefined;

  constructor(
    private readonly kc: KubeConfig,
    private readonly userAgent: string,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new CattailError('CATTAIL_UPSTREAM_CONFIG', 'the kubeconfig has no current cluster');
    // client-node refuses plain HTTP without skipTLSVerify on every request; say so once, at start.
    if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify && !cluster.proxyUrl) {
      throw new CattailError('CATTAIL_UPSTREAM_CONFIG', `cluster ${cluster.name} uses plain HTTP (${cluster.server}) without insecure-skip-tls-verify`, { details: { server: cluster.server } });
    }
  }

  unauthorized(): void {
    this.dropExecCredential();
    // In-cluster auth re-reads the projected token only every 60 s; after a 401 read it now, and
    // from then on before every request: an override read once kept the token of that moment
    // past the kubelet's next rotation, until it expired and cost another 401 (and readiness).
    const tokenFile = (this.kc.getCurrentUser()?.authProvider as { config?: { tokenFile?: string } } | undefined)?.config?.tokenFile;
    if (tokenFile === undefined) return;
    this.tokenFile = tokenFile;
    this.tokenOverride = readToken(tokenFile);
  }

  /** Monotonic ms (performance.now) of the last dropped exec credential (EXEC_DROP_MIN_MS). */
  private execDroppedAtMs = Number.NEGATIVE_INFINITY;

  /**
   * An exec plugin's credential (`aws eks get-token`, `gke-gcloud-auth-plugin`, ...) is cached by
   * client-node 1.x until its `expirationTimestamp`, even after the API server refused it: a token
   * revoked or rotated early made every request a 401, and the replica unready, until then (up to
   * the plugin's lifetime, 15 min for EKS). client-go drops it on a 401 and runs the plugin again;
   * so does this, at most once per EXEC_DROP_MIN_MS, since every reflector sees the same 401 and
   * each drop costs a plugin run. The cache is client-node's ExecAuth's `tokenCache` (keyed by user
   * name; the class is not exported, so it is found by that field): should a later client-node
   * keep it elsewhere, nothing is dropped and the credential expires as before.
   */
  private dropExecCredential(): void {
    const user = this.kc.getCurrentUser();
    const exec = (user as { exec?: unknown } | null)?.exec ?? (user?.authProvider as { config?: { exec?: unknown } } | undefined)?.config?.exec;
    if (user === null || exec === undefined) return;
    // Monotonic: a wall clock stepped back would suppress drops for as long as the step.
    const now = performance.now();
    if (now - this.execDroppedAtMs < EXEC_DROP_MIN_MS) return;
    this.execDroppedAtMs = now;
    for (const a of (this.kc as unknown as { authenticators?: unknown }).authenticators as unknown[] ?? []) {
      const cache = (a as { tokenCache?: unknown } | null)?.tokenCache;
      if (typeof cache === 'object' && cache !== null) (cache as Record<string, unknown>)[user.name] = null;
    }
  }

  async get(pathAndQuery: string, signal: AbortSignal): Promise<IncomingMessage> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new CattailError('CATTAIL_UPSTREAM_CONFIG', 'the kubeconfig has no current cluster');
    const base = new URL(cluster.server);
    const opts: https.RequestOptions = {
      method: 'GET',
      headers: { Accept: 'application/json', 'User-Agent': this.userAgent },
    };
    // Credentials first, which may run an exec plugin (`aws eks get-token` ...) that client-node
    // waits for with no timeout: raced against the request's signal, so the watchdog and stop()
    // end a hung plugin's attempt too. The plugin is left to finish on its own, and no request
    // starts another while it runs: client-node spawns one per call until one succeeds, so each
    // aborted attempt of each reflector would leave a hung process behind. Once it is done, the
    // next call finds client-node's cached credential (or spawns the one next try).
    // Waiters resume together when it settles: the first to go on starts the next call (if the
    // cache is empty, a plugin run) and the others wait for that one instead of each starting
    // their own (a failed run left the cache empty, and every reflector spawned a plugin at once).
    for (let c = this.credentials; c !== undefined; c = this.credentials) {
      await abortable(c, signal);
      if (this.credentials === c) break;
    }
    const applying = this.kc.applyToHTTPSOptions(opts);
    const settled = applying.then(() => undefined, () => undefined);
    this.credentials = settled;
    void settled.then(() => {
      if (this.credentials === settled) this.credentials = undefined;
    });
    await abortable(applying, signal);
    // A small file, and requests are few (pages and watches, not events): read it each time.
    if (this.tokenFile !== undefined) this.tokenOverride = readToken(this.tokenFile) ?? this.tokenOverride;
    if (this.tokenOverride !== undefined) (opts.headers as Record<string, string>)['Authorization'] = `Bearer ${this.tokenOverride}`;
    const prefix = base.pathname.replace(/\/+$/, '');
    const mod = base.protocol === 'http:' ? http : https;
    const agent = opts.agent as http.Agent | undefined;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = mod.request({
        ...opts,
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || (base.protocol === 'http:' ? 80 : 443),
        path: prefix + pathAndQuery,
        signal,
      });
      req.on('response', (res) => {
        // One agent per request (the kubeconfig's TLS files are re-read each time): free its
        // sockets as soon as the response is done instead of keeping them alive.
        res.on('close', () => agent?.destroy());
        resolve(res);
      });
      req.on('error', (err) => {
        agent?.destroy();
        reject(err);
      });
      req.end();
    });
  }
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/** The token in `file`, or undefined when it cannot be read (the previous one is kept by the caller). */
function readToken(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}
