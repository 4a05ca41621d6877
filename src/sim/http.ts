/**
 * Routing: every resource of the registry at its real path, minimal discovery, /metrics, the
 * admin API under /_sim/, and a 404 Status for anything else.
 *
 * {@link SimHttp.handle} is the one entry for every request: the per-request faults (429,
 * 401/403, HTTP 410 on watches, connection resets) are inserted there, before dispatch.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ResourceDef } from '../registry.js';
import type { AdminHttp } from './admin-http.js';
import type { ApiRequest, SimContext, Verb } from './context.js';
import type { StoreView } from './store-view.js';
import { apiVersionOf, goJson } from './encode.js';
import { handleList } from './list.js';
import { sendJson } from './respond.js';
import { badRequest, methodNotAllowed, notFound, pathNotFound, status, StatusError } from './status.js';
import { handleWatch, type WatchHub } from './watch.js';
import { hasStatusSubresource, type Writer } from './writes.js';

const MAX_BODY_BYTES = 3 * 1024 * 1024; // the apiserver's request size limit

/** Where the CRDs are listed (a replica's not-served probe, src/server/upstream/not-served.ts). */
const CRD_LIST_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

interface Route {
  def: ResourceDef;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

function clientIdOf(req: IncomingMessage): string {
  const id = req.headers['x-client-id'];
  if (typeof id === 'string' && id !== '') return id;
  const ua = req.headers['user-agent'];
  if (typeof ua === 'string' && ua !== '') return ua;
  return `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY_BYTES) throw new StatusError(status(413, 'RequestEntityTooLarge', 'Request entity too large'));
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw badRequest(`the body is not valid JSON: ${(err as Error).message}`);
  }
}

export class SimHttp {
  /** `group/version` → plural → def */
  private readonly byGv = new Map<string, Map<string, ResourceDef>>();

  constructor(
    private readonly ctx: SimContext<StoreView>,
    private readonly defs: readonly ResourceDef[],
    private readonly writer: Writer,
    private readonly hub: WatchHub,
    private readonly admin: AdminHttp,
  ) {
    for (const d of defs) {
      const gv = d.group === '' ? d.version : `${d.group}/${d.version}`;
      let m = this.byGv.get(gv);
      if (!m) this.byGv.set(gv, (m = new Map()));
      m.set(d.plural, d);
    }
  }

  /** The single entry point for every request. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.dispatch(req, res).catch((err: unknown) => this.fail(res, err, undefined));
  }

  private fail(res: ServerResponse, err: unknown, r: { verb: Verb; def: ResourceDef } | undefined): void {
    const se = err instanceof StatusError ? err : new StatusError(status(500, 'InternalError', `Internal error occurred: ${(err as Error)?.message ?? String(err)}`));
    if (se.code === 410) this.ctx.counters.status410.inc(['http']);
    if (se.code === 429) this.ctx.counters.status429.inc([]);
    if (se.code === 504) this.ctx.counters.status504.inc([]);
    if (r) this.ctx.counters.requests.inc([r.verb, r.def.id, String(se.code)]);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const n = sendJson(res, se.code, se.encode(), se.headers);
    this.ctx.counters.bytesSent.inc(['error'], n);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/_sim' || path.startsWith('/_sim/')) return this.admin.handle(req, res, path, url.searchParams);
    if (path === '/metrics' || path === '/healthz' || path === '/readyz' || path === '/livez') return this.admin.handle(req, res, path, url.searchParams);
    if (req.method === 'GET') {
      const disc = this.discovery(path);
      if (disc !== undefined) {
        this.ctx.counters.bytesSent.inc(['other'], sendJson(res, 200, goJson(disc)));
        return;
      }
    }
    if (path === CRD_LIST_PATH && req.method === 'GET') {
      this.ctx.counters.bytesSent.inc(['other'], sendJson(res, 200, goJson(this.crdList(url.searchParams))));
      this.ctx.counters.requests.inc(['LIST', 'customresourcedefinitions.apiextensions.k8s.io', '200']);
      return;
    }
    const route = this.route(path);
    if (!route) throw pathNotFound();
    const verb = this.verbOf(req.method ?? 'GET', route, url.searchParams);
    if (route.subresource !== undefined && (route.subresource !== 'status' || !hasStatusSubresource(route.def))) throw pathNotFound();
    const r: ApiRequest = {
      def: route.def,
      namespace: route.namespace,
      name: route.name,
      subresource: route.subresource as 'status' | undefined,
      query: url.searchParams,
      clientId: clientIdOf(req),
      verb,
      req,
      res,
    };
    try {
      if (this.ctx.hooks && (await this.ctx.hooks.gate(r))) return;
      await this.serve(r);
      if (verb !== 'WATCH') this.ctx.counters.requests.inc([verb, r.def.id, String(res.statusCode)]);
    } catch (err) {
      this.fail(res, err, r);
      return;
    }
    if (verb === 'WATCH') this.ctx.counters.requests.inc([verb, r.def.id, '200']);
  }

  private verbOf(method: string, route: Route, q: URLSearchParams): Verb {
    const watch = q.get('watch');
    switch (method) {
      case 'GET':
        if (route.name !== undefined) return 'GET';
        return watch === 'true' || watch === '1' ? 'WATCH' : 'LIST';
      case 'POST':
        if (route.name !== undefined) throw methodNotAllowed();
        return 'CREATE';
      case 'PUT':
        if (route.name === undefined) throw methodNotAllowed();
        return 'UPDATE';
      case 'PATCH':
        if (route.name === undefined) throw methodNotAllowed();
        return 'PATCH';
      case 'DELETE':
        if (route.name === undefined) throw methodNotAllowed();
        return 'DELETE';
      default:
        throw methodNotAllowed();
    }
  }

  private async serve(r: ApiRequest): Promise<void> {
    const { def, res } = r;
    const ns = r.namespace ?? '';
    const written = (o: { bytes: Buffer }, code = 200): void => {
      this.ctx.counters.bytesSent.inc([r.verb === 'GET' ? 'get' : 'write'], sendJson(res, code, o.bytes));
    };
    switch (r.verb) {
      case 'LIST':
        return handleList(this.ctx, r);
      case 'WATCH':
        return handleWatch(this.ctx, r, this.hub);
      case 'GET': {
        const o = this.ctx.store.get(def, ns, r.name as string);
        if (!o) throw notFound(def.plural, r.name as string, def.group);
        return written(o);
      }
      case 'CREATE':
        if (def.namespaced && r.namespace === undefined) throw pathNotFound();
        return written(this.writer.create(def, await readBody(r.req), r.namespace), 201);
      case 'UPDATE': {
        const body = await readBody(r.req);
        const m = (body as { metadata?: { name?: unknown } } | null)?.metadata;
        if (m && m.name !== undefined && m.name !== r.name) throw badRequest('the name of the object does not match the name on the URL');
        return written(this.writer.update(def, body, r.namespace, r.subresource === 'status'));
      }
      case 'PATCH': {
        const ct = String(r.req.headers['content-type'] ?? '');
        if (ct.includes('json-patch+json') || ct.includes('apply-patch')) {
          throw new StatusError(status(415, 'UnsupportedMediaType', `the simulator supports merge patches only, not ${ct}`));
        }
        return written(this.writer.patch(def, ns, r.name as string, await readBody(r.req), r.subresource === 'status'));
      }
      case 'DELETE':
        return written(this.deleteObject(r));
    }
  }

  /** Immediate, or for pods with `podDeleteGraceMs` a graceful delete: deletionTimestamp now, DELETED later. */
  private deleteObject(r: ApiRequest): { bytes: Buffer } {
    const { def, query } = r;
    const ns = r.namespace ?? '';
    const name = r.name as string;
    const graceMs = this.ctx.behaviour.podDeleteGraceMs;
    if (def.id !== 'pods' || graceMs <= 0 || query.get('gracePeriodSeconds') === '0') return this.writer.delete(def, ns, name);
    const cur = this.ctx.store.get(def, ns, name);
    if (!cur) throw notFound(def.plural, name, def.group);
    // A pod already terminating is returned as is: deleting it again changes nothing.
    const terminating = (o: { bytes: Buffer } | undefined): boolean => o !== undefined && (JSON.parse(o.bytes.toString('utf8')) as { metadata?: { deletionTimestamp?: string } }).metadata?.deletionTimestamp !== undefined;
    if (terminating(cur)) return cur;
    const gps = Number(query.get('gracePeriodSeconds') ?? 30);
    const ts = new Date(this.ctx.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const marked = this.writer.patch(def, ns, name, { metadata: { deletionTimestamp: ts, deletionGracePeriodSeconds: Number.isSafeInteger(gps) && gps > 0 ? gps : 30 } });
    this.ctx.clock
      .setTimeout(() => {
        // Only the pod this delete marked: one recreated under the same name is not terminating.
        if (terminating(this.ctx.store.get(def, ns, name))) this.writer.delete(def, ns, name);
      }, graceMs)
      .unref();
    return marked;
  }

  /**
   * The CustomResourceDefinitions of the optional resources served now (minimal objects: name,
   * group, names, versions), filtered by `fieldSelector=metadata.name=…` (the only field selector
   * it supports, the one a replica's not-served probe sends). A consistent read: the list's
   * resourceVersion is the store's current one.
   */
  private crdList(q: URLSearchParams): unknown {
    const sel = q.get('fieldSelector');
    const m = sel === null || sel === '' ? undefined : /^metadata\.name=([^,]+)$/.exec(sel);
    if (sel !== null && sel !== '' && m === null) throw badRequest(`field label not supported: ${sel}`);
    const want = m?.[1];
    const items = this.defs
      .filter((d) => d.optional && this.ctx.store.resource(d.id) !== undefined && (want === undefined || d.id === want))
      .map((d) => ({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: d.id, resourceVersion: String(this.ctx.store.resource(d.id)?.lastRv ?? 1) },
        spec: {
          group: d.group,
          names: { plural: d.plural, kind: d.kind },
          scope: d.namespaced ? 'Namespaced' : 'Cluster',
          versions: [{ name: d.version, served: true, storage: true }],
        },
      }));
    return { kind: 'CustomResourceDefinitionList', apiVersion: 'apiextensions.k8s.io/v1', metadata: { resourceVersion: String(this.ctx.store.currentRv) }, items };
  }

  /** `/api/v1/...`, `/apis/g/v/...` → resource, namespace, name, subresource. */
  private route(path: string): Route | undefined {
    const seg = path.split('/').slice(1).map(decodeURIComponent);
    let gv: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      gv = seg[1] as string;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      gv = `${seg[1]}/${seg[2]}`;
      rest = seg.slice(3);
    } else return undefined;
    const plurals = this.byGv.get(gv);
    if (!plurals) return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && plurals.get(rest[2] as string)?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const def = plurals.get(rest[0] as string);
    // Not in the store: an optional resource whose CRD is not installed (omitResources, or
    // removed at run time through the admin API).
    if (!def || rest.length > 3 || !this.ctx.store.resource(def.id)) return undefined;
    if (def.namespaced === false && namespace !== undefined) return undefined;
    return { def, namespace, name: rest[1], subresource: rest[2] };
  }

  private discovery(path: string): unknown {
    if (path === '/version') return { major: '1', minor: '34', gitVersion: 'v1.34.0-cattail-sim', platform: 'linux/amd64' };
    if (path === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] };
    if (path === '/apis') {
      const groups = new Map<string, string[]>();
      for (const d of this.defs) if (d.group !== '' && this.ctx.store.resource(d.id)) groups.set(d.group, [...new Set([...(groups.get(d.group) ?? []), d.version])]);
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...groups].map(([name, versions]) => ({
          name,
          versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
          preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
        })),
      };
    }
    const m = path.match(/^\/api\/(v1)$/) ?? path.match(/^\/apis\/([^/]+\/[^/]+)$/);
    const plurals = m ? this.byGv.get(m[1] as string) : undefined;
    if (!plurals) return undefined;
    const resources: unknown[] = [];
    for (const d of plurals.values()) {
      if (!this.ctx.store.resource(d.id)) continue;
      const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
      resources.push({ name: d.plural, singularName: d.kind.toLowerCase(), namespaced: d.namespaced, kind: d.kind, verbs });
      if (hasStatusSubresource(d)) resources.push({ name: `${d.plural}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: m?.[1] === 'v1' ? 'v1' : apiVersionOf([...plurals.values()][0] as ResourceDef), resources };
  }
}
