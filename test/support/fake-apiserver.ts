/**
 * A small, deliberately scriptable API server for the reflector's tests: list (limit/continue,
 * expiring tokens), watch (history, 410 in both forms, bookmarks, WatchList), and a per-request
 * `intercept` hook through which a test misbehaves on purpose (reset mid-line, black hole, 429,
 * 401/403, in-stream 500). Loopback only. The full simulator (src/sim) is tested separately.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { collectionPath, RESOURCES, type ResourceDef } from '../../src/registry.js';

type Obj = { kind?: string; apiVersion?: string; metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  obj: Obj;
}

export interface RequestInfo {
  def: ResourceDef;
  watch: boolean;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** 0-based count of requests seen so far for this resource. */
  n: number;
}

/** Return true when the hook answered the request itself. */
export type Intercept = (info: RequestInfo, req: IncomingMessage, res: ServerResponse) => boolean;

interface Watcher {
  def: ResourceDef;
  res: ServerResponse;
  bookmarks: boolean;
  /** A WatchList whose end-of-initial-events bookmark waits for the next bookmark() (endBookmarkOnTick). */
  endPending?: boolean;
  /** Events and bookmarks at or below it are not sent (the watch cache's rule: a watch from an RV ahead of the server is silent until the server passes it). */
  from: number;
}

function cloneStore(store: Map<string, Map<string, Obj>>): Map<string, Map<string, Obj>> {
  return new Map([...store].map(([id, m]) => [id, new Map([...m].map(([k, o]) => [k, structuredClone(o)]))]));
}

export class FakeApiServer {
  rv = 100;
  compactedRv = 0;
  readonly store = new Map<string, Map<string, Obj>>();
  readonly history = new Map<string, Event[]>();
  readonly missing = new Set<string>();
  readonly requests: { resource: string; watch: boolean; query: string; userAgent: string | undefined }[] = [];
  intercept: Intercept | undefined;
  watchListSupported = true;
  /** The CRD list's answer when not 200 (e.g. 403: the replica may not list CRDs). */
  crdListStatus: number | undefined;
  /**
   * Send a WatchList's end-of-initial-events bookmark only at the next bookmark() (Kubernetes
   * 1.27-1.31: at the watch cache's next bookmark tick), live events flowing before it.
   */
  endBookmarkOnTick = false;
  /** With it, GET /api/v1/namespaces/kube-system answers the namespace with this UID (the cluster's name); else 404. */
  kubeSystemUid: string | undefined;
  /** Answer a too-old watch with an HTTP 410 instead of 200 + ERROR. */
  http410 = false;
  private readonly watchers = new Set<Watcher>();
  private readonly counts = new Map<string, number>();
  private server!: http.Server;
  url = '';

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  kubeConfig(token = 'test-token'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromClusterAndUser({ name: 'fake', server: this.url, skipTLSVerify: true }, { name: 'u', token });
    return kc;
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private objects(id: string): Map<string, Obj> {
    let m = this.store.get(id);
    if (!m) this.store.set(id, (m = new Map()));
    return m;
  }

  private events(id: string): Event[] {
    let e = this.history.get(id);
    if (!e) this.history.set(id, (e = []));
    return e;
  }

  private write(def: ResourceDef, type: Event['type'], obj: Obj): void {
    const rv = ++this.rv;
    const stored = structuredClone(obj);
    stored.metadata.resourceVersion = String(rv);
    stored.kind = def.kind;
    stored.apiVersion = def.group === '' ? def.version : `${def.group}/${def.version}`;
    const key = `${stored.metadata.namespace ?? ''}/${stored.metadata.name}`;
    if (type === 'DELETED') this.objects(def.id).delete(key);
    else this.objects(def.id).set(key, stored);
    this.events(def.id).push({ rv, type, obj: stored });
    for (const w of this.watchers) if (w.def.id === def.id && rv > w.from) this.send(w.res, { type, object: stored });
  }

  upsert(id: string, obj: Obj): void {
    const def = RESOURCES.find((r) => r.id === id) as ResourceDef;
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    this.write(def, this.objects(id).has(key) ? 'MODIFIED' : 'ADDED', obj);
  }

  remove(id: string, namespace: string | undefined, name: string): void {
    const def = RESOURCES.find((r) => r.id === id) as ResourceDef;
    const prev = this.objects(id).get(`${namespace ?? ''}/${name}`);
    if (prev) this.write(def, 'DELETED', prev);
  }

  /** Writes that bypass watchers (as if they happened while nobody watched) — then compacts. */
  compact(): void {
    this.compactedRv = this.rv;
  }

  /** Silently changes state without events reaching current watchers, then compacts history. */
  changeWhileDisconnected(fn: () => void): void {
    const saved = [...this.watchers];
    this.watchers.clear();
    fn();
    for (const w of saved) this.watchers.add(w);
    this.compact();
  }

  bookmark(): void {
    for (const w of this.watchers) {
      if (w.endPending === true) {
        w.endPending = false;
        this.send(w.res, { type: 'BOOKMARK', object: { kind: w.def.kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } } });
      } else if (w.bookmarks && this.rv > w.from) this.send(w.res, { type: 'BOOKMARK', object: { kind: w.def.kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** The state and revision now, for restore(). */
  backup(): { rv: number; store: Map<string, Map<string, Obj>> } {
    return { rv: this.rv, store: cloneStore(this.store) };
  }

  /**
   * etcd restored from `b` without a revision bump: the state and the revision go back to the
   * backup's, the history is gone (compacted at the restored revision), and every watch ends (the
   * API server restarts).
   */
  restore(b: { rv: number; store: Map<string, Map<string, Obj>> }): void {
    this.endWatches();
    this.rv = b.rv;
    this.store.clear();
    for (const [id, m] of cloneStore(b.store)) this.store.set(id, m);
    this.history.clear();
    this.compactedRv = b.rv;
  }

  /** Ends every open watch cleanly (as a server-side timeout does). */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  count(resource: string, watch?: boolean): number {
    return this.requests.filter((r) => r.resource === resource && (watch === undefined || r.watch === watch)).length;
  }

  private send(res: ServerResponse, ev: unknown): void {
    res.write(JSON.stringify(ev) + '\n');
  }

  private status(res: ServerResponse, code: number, reason: string, message: string, extra: Record<string, unknown> = {}): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: extra, status: 'Failure', message, reason, code }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/apis/apiextensions.k8s.io/v1/customresourcedefinitions') return this.crdList(url.searchParams, res);
    if (url.pathname === '/api/v1/namespaces/kube-system' && this.kubeSystemUid !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'kube-system', uid: this.kubeSystemUid, resourceVersion: '1' } }));
      return;
    }
    const def = RESOURCES.find((r) => collectionPath(r) === url.pathname);
    if (!def) return this.status(res, 404, 'NotFound', `no route ${url.pathname}`);
    const watch = url.searchParams.get('watch') === '1' || url.searchParams.get('watch') === 'true';
    const n = this.counts.get(def.id) ?? 0;
    this.counts.set(def.id, n + 1);
    this.requests.push({ resource: def.id, watch, query: url.search, userAgent: req.headers['user-agent'] });
    if (this.intercept?.({ def, watch, query: url.searchParams, headers: req.headers, n }, req, res)) return;
    if (this.missing.has(def.id)) return this.status(res, 404, 'NotFound', `the server could not find the requested resource`);
    if (watch) this.watch(def, url.searchParams, res);
    else this.list(def, url.searchParams, res);
  }

  /** CRDs: one per optional resource not in `missing`, filtered by `fieldSelector=metadata.name=…`. */
  private crdList(q: URLSearchParams, res: ServerResponse): void {
    this.requests.push({ resource: 'customresourcedefinitions.apiextensions.k8s.io', watch: false, query: `?${q.toString()}`, userAgent: undefined });
    if (this.crdListStatus !== undefined) return this.status(res, this.crdListStatus, 'Forbidden', 'customresourcedefinitions.apiextensions.k8s.io is forbidden');
    const want = /^metadata\.name=(.+)$/.exec(q.get('fieldSelector') ?? '')?.[1];
    const items = RESOURCES.filter((d) => d.optional && !this.missing.has(d.id) && (want === undefined || d.id === want)).map((d) => ({
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: d.id, resourceVersion: '1' },
    }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'CustomResourceDefinitionList', apiVersion: 'apiextensions.k8s.io/v1', metadata: { resourceVersion: String(this.rv) }, items }));
  }

  private sorted(def: ResourceDef): Obj[] {
    return [...this.objects(def.id).entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, o]) => o);
  }

  private list(def: ResourceDef, q: URLSearchParams, res: ServerResponse): void {
    const limit = Number(q.get('limit') ?? 0);
    let start = 0;
    let rv = this.rv;
    const cont = q.get('continue');
    if (cont) {
      const token = JSON.parse(Buffer.from(cont, 'base64url').toString()) as { rv: number; start: number };
      if (token.rv < this.compactedRv) return this.status(res, 410, 'Expired', 'The provided continue parameter is too old', { continue: 'fresh' });
      start = token.start;
      rv = token.rv;
    }
    const all = this.sorted(def);
    const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const next = limit > 0 && start + limit < all.length ? Buffer.from(JSON.stringify({ rv, start: start + limit })).toString('base64url') : '';
    res.writeHead(200, { 'content-type': 'application/json' });
    // Built-in list items carry no kind/apiVersion (the wire form the projection must survive).
    const shown = def.encoding === 'builtin' ? items.map(({ kind: _k, apiVersion: _a, ...rest }) => rest) : items;
    res.end(JSON.stringify({ kind: `${def.kind}List`, apiVersion: 'v1', metadata: { resourceVersion: String(rv), continue: next || undefined }, items: shown }));
  }

  private watch(def: ResourceDef, q: URLSearchParams, res: ServerResponse): void {
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    if (q.get('sendInitialEvents') === 'true') {
      if (!this.watchListSupported) return this.status(res, 422, 'Invalid', 'sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled');
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const o of this.sorted(def)) this.send(res, { type: 'ADDED', object: o });
      if (!this.endBookmarkOnTick) this.send(res, { type: 'BOOKMARK', object: { kind: def.kind, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv), annotations: { 'k8s.io/initial-events-end': 'true' } } } });
    } else {
      const from = Number(q.get('resourceVersion') ?? 0);
      if (from < this.compactedRv) {
        if (this.http410) return this.status(res, 410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`);
        res.writeHead(200, { 'content-type': 'application/json' });
        this.send(res, { type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from} (${this.compactedRv})`, reason: 'Expired', code: 410 } });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      for (const e of this.events(def.id)) if (e.rv > from) this.send(res, { type: e.type, object: e.obj });
    }
    const initial = q.get('sendInitialEvents') === 'true';
    const w: Watcher = { def, res, bookmarks, from: initial ? 0 : Number(q.get('resourceVersion') ?? 0), endPending: initial && this.endBookmarkOnTick };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}
