/**
 * The admin API over HTTP (JSON), mirroring {@link SimAdmin}:
 *
 *   GET    /_sim/state                  RV, per-resource object counts and history, churn
 *   GET    /_sim/counters               counters as JSON          POST /_sim/counters/reset
 *   POST   /_sim/compact  {rv?}         compact history           POST /_sim/watches/close {resource?}
 *   POST   /_sim/crds/{resource} {installed: bool}   install or delete an optional resource's CRD
 *   GET|POST|DELETE /_sim/churn         stats | start {ratePerSec, seed} | stop
 *   POST   /_sim/objects/{resource}     create (body: object)     PUT .../{resource}[/status] update
 *   PATCH  /_sim/objects/{resource}?namespace=&name=[&status=true]   merge patch
 *   DELETE /_sim/objects/{resource}?namespace=&name=
 *   GET    /_sim/ha                     the HA pair: follower and round-robin URLs, lag, connections, follower requests
 *   /_sim/faults/...                     faults, disasters, timeline, token rotation (src/sim/faults/http.ts)
 *   GET    /metrics                     Prometheus text           GET /healthz, /readyz, /livez
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CattailError } from '../errors.js';
import type { SimAdmin } from './admin.js';
import { storeGauges } from './admin.js';
import type { SimContext } from './context.js';
import type { SimHa } from './index.js';
import type { FaultsHttp } from './faults/http.js';
import { sendJson } from './respond.js';

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  const v = JSON.parse(text) as unknown;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'admin request body must be a JSON object');
  return v as Record<string, unknown>;
}

export class AdminHttp {
  /** The HA pair, once it is listening (startSim sets it); undefined without `ha`. */
  ha: SimHa | undefined;

  constructor(
    private readonly ctx: SimContext,
    private readonly admin: SimAdmin,
    private readonly faults?: FaultsHttp,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    try {
      const out = await this.route(req.method ?? 'GET', path, q, req, res);
      if (out !== undefined && !res.headersSent) sendJson(res, 200, JSON.stringify(out));
    } catch (err) {
      const e = CattailError.is(err) ? err : undefined;
      const code = e?.code === 'CATTAIL_SIM_WRITE_REJECTED' ? Number(e.details?.['code'] ?? 400) : e ? 400 : err instanceof SyntaxError ? 400 : 500;
      sendJson(res, code, JSON.stringify({ error: e?.code ?? 'CATTAIL_INTERNAL', message: (err as Error).message, details: e?.details }));
    }
  }

  private async route(method: string, path: string, q: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const a = this.admin;
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      return undefined;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(a.metricsText());
      return undefined;
    }
    const key = `${method} ${path}`;
    switch (key) {
      case 'GET /_sim':
      case 'GET /_sim/state':
        return { currentRv: a.currentRv(), resources: storeGauges(this.ctx).resources, churn: a.churnStats() };
      case 'GET /_sim/counters':
        return a.counters();
      case 'POST /_sim/counters/reset':
        a.resetCounters();
        return { ok: true };
      case 'POST /_sim/compact': {
        const b = await body(req);
        return { compactedRv: a.compact(b['rv'] as string | number | undefined) };
      }
      case 'POST /_sim/watches/close': {
        const b = await body(req);
        return { closed: a.closeWatches(b['resource'] as string | undefined) };
      }
      case 'GET /_sim/churn':
        return a.churnStats();
      case 'POST /_sim/churn': {
        const b = await body(req);
        const ratePerSec = Number(b['ratePerSec']);
        const seed = Number(b['seed'] ?? 1);
        if (!Number.isFinite(ratePerSec) || ratePerSec < 0 || !Number.isSafeInteger(seed)) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'churn needs {ratePerSec >= 0, seed: integer}');
        a.startChurn({ ratePerSec, seed });
        return a.churnStats();
      }
      case 'DELETE /_sim/churn':
        a.stopChurn();
        return a.churnStats();
      case 'GET /_sim/ha': {
        // The lag itself is set with POST /_sim/faults/lag.
        const ha = this.ha;
        if (ha === undefined) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'this simulator runs no HA pair (start it with ha / --ha-lag-rvs)');
        const f = ha.followerCounters();
        return { followerUrl: ha.followerUrl, roundRobinUrl: ha.roundRobinUrl, lagRvs: ha.lagRvs, connections: ha.connections(), followerRequests: f.requests };
      }
    }
    const f = this.faults?.route(method, path, () => body(req));
    if (f !== undefined) return f;
    const crd = method === 'POST' ? path.match(/^\/_sim\/crds\/([^/]+)$/) : null;
    if (crd) {
      const b = await body(req);
      if (typeof b['installed'] !== 'boolean') throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'crds needs {installed: true|false}');
      return a.setCrdInstalled(decodeURIComponent(crd[1] as string), b['installed']);
    }
    const m = path.match(/^\/_sim\/objects\/([^/]+)(\/status)?$/);
    if (m) {
      const resource = decodeURIComponent(m[1] as string);
      const status = m[2] !== undefined;
      const ns = q.get('namespace') ?? undefined;
      const name = q.get('name') ?? '';
      switch (method) {
        case 'GET':
          return name === '' ? a.list(resource, ns) : (a.get(resource, ns, name) ?? null);
        case 'POST':
          return a.create(resource, await body(req));
        case 'PUT':
          return status ? a.updateStatus(resource, await body(req)) : a.update(resource, await body(req));
        case 'PATCH':
          return a.patch(resource, ns, name, await body(req), { status: status || q.get('status') === 'true' });
        case 'DELETE':
          return a.delete(resource, ns, name);
      }
    }
    res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: 'CATTAIL_INVALID_ARGUMENT', message: `no admin endpoint ${key}` }));
    return undefined;
  }
}
