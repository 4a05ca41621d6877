/**
 * The HTTP port: /metrics (prom-client text format), /livez and /readyz. Separate from the agent
 * port so that a probe or a scrape never competes with, or is refused like, an agent upgrade.
 * /liveness and /readiness give the same answers under Typha's paths, so manifests and probes
 * written for Typha work unchanged. /debug/clients (debug-clients.ts) exists only when `debug` is
 * given (`--debug-endpoints`): otherwise it is a 404 like any unknown path. /v1/load is what peer
 * replicas read to balance agents between them (src/server/fleet/): counts only, no names.
 * /v1/convergence (convergence-endpoint.ts) waits for the agents to apply a resourceVersion.
 */
import { type RequestListener, type Server, createServer } from 'node:http';
import { CattailError } from '../../errors.js';
import { CONVERGENCE_PATH, type ConvergenceSource, HTTP_PORT_MAX_HEADER_BYTES, serveConvergence } from './convergence-endpoint.js';
import { type ClientsPage, type ClientsQuery, parseClientsQuery } from './debug-clients.js';
import type { Health, HealthReport } from './health.js';
import type { Registry } from 'prom-client';
import type { LoadReport } from '../fleet/balancer.js';

/** The debug endpoints' data sources; absent unless the operator turned them on. */
export interface DebugEndpoints {
  clients(query: ClientsQuery): ClientsPage;
}

/** The HTTP port's plaintext server. */
export function createHttpEndpoints(registry: Registry, health: Health, load: () => LoadReport, debug?: DebugEndpoints, convergence?: ConvergenceSource): Server {
  return createServer({ maxHeaderSize: HTTP_PORT_MAX_HEADER_BYTES }, httpEndpointsHandler(registry, health, load, debug, convergence));
}

/** The HTTP port's request handler, for a server made elsewhere (https with `httpTls`, tls/listener.ts). */
export function httpEndpointsHandler(registry: Registry, health: Health, load: () => LoadReport, debug?: DebugEndpoints, convergence?: ConvergenceSource): RequestListener {
  const handle = endpointsHandler(registry, health, load, debug, convergence);
  // A throw in a request listener is an uncaught exception that ends the process (every agent's
  // replica, for a bug in a debug page): it is answered 500 CATTAIL_INTERNAL instead.
  return (req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' });
        res.end(`${JSON.stringify({ error: { code: 'CATTAIL_INTERNAL', message: err instanceof Error ? err.message : String(err) } })}\n`);
      }
    }
  };
}

function endpointsHandler(registry: Registry, health: Health, load: () => LoadReport, debug?: DebugEndpoints, convergence?: ConvergenceSource): RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const report = (r: HealthReport): void => {
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${r.ok ? 'ok' : 'not ok'}\n${r.lines.join('\n')}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics':
        registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': registry.contentType });
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`metrics failed: ${(err as Error).message}\n`);
          },
        );
        return;
      case '/livez':
      case '/liveness':
        report(health.live());
        return;
      case '/readyz':
      case '/readiness':
        report(health.ready());
        return;
      case '/v1/load':
        json(200, load());
        return;
      case CONVERGENCE_PATH:
        if (convergence === undefined) break;
        serveConvergence(convergence, url, req, res);
        return;
      case '/debug/clients':
        if (debug === undefined) break;
        try {
          json(200, debug.clients(parseClientsQuery(url.searchParams)));
        } catch (err) {
          if (!(err instanceof CattailError)) throw err;
          json(400, { error: { code: err.code, message: err.message } });
        }
        return;
      default:
        break;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics, /livez (/liveness), /readyz (/readiness), /v1/convergence\n');
  };
}
