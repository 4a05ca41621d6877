/**
 * The HTTP port: /metrics (prom-client text format), /livez and /readyz. Separate from the agent
 * port so that a probe or a scrape never competes with, or is refused like, an agent upgrade.
 * /liveness and /readiness give the same answers under Typha's paths, so manifests and probes
 * written for Typha work unchanged. /debug/clients (debug-clients.ts) exists only when `debug` is
 * given (`--debug-endpoints`): otherwise it is a 404 like any unknown path. /v1/load is what peer
 * replicas read to balance agents between them (src/server/fleet/): counts only, no names.
 * /v1/convergence (convergence-endpoint.ts) waits for the agents to apply a resourceVersion.
 *
 * The health port (createHealthEndpoints) serves the probe paths alone, with a connection bound of
 * its own: the HTTP port is open to anyone who reaches a node's address, and sockets filling its
 * bound (idle ones, or /v1/convergence waiters) made the kubelet's probes fail and restarted every
 * replica. The HTTP port keeps the probe paths for probes written against it.
 */
import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer } from 'node:http';
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
  return createServer({ maxHeaderSize: HTTP_PORT_MAX_HEADER_BYTES, connectionsCheckingInterval: HTTP_PORT_CHECK_INTERVAL_MS }, httpEndpointsHandler(registry, health, load, debug, convergence));
}

/** How often Node checks the port's header and request deadlines (its default, 30 s, let a slow head run three times past them). */
export const HTTP_PORT_CHECK_INTERVAL_MS = 2_500;

/**
 * The HTTP port's bounds (hardenHttpPort). Its callers are few (the kubelet's probes, Prometheus,
 * peer replicas' /v1/load, `cattail converge`), and it listens on every address of a node that
 * runs a replica (hostNetwork): without bounds, thousands of sockets trickling a request head
 * (up to HTTP_PORT_MAX_HEADER_BYTES, ~270 KiB, for /v1/convergence) or asking /metrics and never
 * reading held memory until the pod's limit.
 */
export interface HttpPortLimits {
  /** Connections open at once; beyond, Node closes a new one at once. */
  readonly maxConnections: number;
  /** From a request's start to its whole head, in ms. */
  readonly headersTimeoutMs: number;
  /** A socket with no traffic either way this long is destroyed, in ms: one that never sends a request, or never reads its answer. A /v1/convergence wait extends it to its own timeout. */
  readonly idleTimeoutMs: number;
}

export const HTTP_PORT_LIMITS: HttpPortLimits = { maxConnections: 1_024, headersTimeoutMs: 10_000, idleTimeoutMs: 30_000 };

/**
 * The health port's bounds: the HTTP port's deadlines, and few connections. Its callers are the
 * kubelet (one connection per probe, closed after the answer: about two at a time) and an
 * operator's curl; it listens on loopback unless told otherwise, so what could fill it is on the
 * node already. Small, so that even then it holds little memory.
 */
export const HEALTH_PORT_LIMITS: HttpPortLimits = { ...HTTP_PORT_LIMITS, maxConnections: 16 };

/** The health port's plaintext server: /livez, /readyz and Typha's /liveness, /readiness, nothing else. */
export function createHealthEndpoints(health: Health): Server {
  // Node's default head size (16 KiB): a probe's head is a few hundred bytes, and the HTTP port's
  // larger one is for /v1/convergence's node lists.
  return createServer({ connectionsCheckingInterval: HTTP_PORT_CHECK_INTERVAL_MS }, guarded(healthHandler(health)));
}

/** Applies `limits` to the HTTP port's server (plaintext or TLS), or HEALTH_PORT_LIMITS to the health port's. */
export function hardenHttpPort(server: Server, limits: HttpPortLimits = HTTP_PORT_LIMITS): void {
  server.maxConnections = limits.maxConnections;
  server.headersTimeout = limits.headersTimeoutMs;
  // The request (a GET, no body) is whole with its head; a long-poll's answer is not a request's.
  server.requestTimeout = limits.headersTimeoutMs;
  // Node checks those two deadlines on its own interval; a connection that sends nothing starts
  // no request, so only the socket's idle timeout ends it (destroyed: no 'timeout' listener).
  server.timeout = limits.idleTimeoutMs;
}

/** The HTTP port's request handler, for a server made elsewhere (https with `httpTls`, tls/listener.ts). */
export function httpEndpointsHandler(registry: Registry, health: Health, load: () => LoadReport, debug?: DebugEndpoints, convergence?: ConvergenceSource): RequestListener {
  return guarded(endpointsHandler(registry, health, load, debug, convergence));
}

function guarded(handle: RequestListener): RequestListener {
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

/** The probe paths, the same on both ports. */
const LIVENESS_PATHS: ReadonlySet<string> = new Set(['/livez', '/liveness']);
const READINESS_PATHS: ReadonlySet<string> = new Set(['/readyz', '/readiness']);

/** Answers `path` if it is a probe path; false otherwise (nothing written). */
function serveHealth(health: Health, path: string, res: ServerResponse): boolean {
  const r: HealthReport | undefined = LIVENESS_PATHS.has(path) ? health.live() : READINESS_PATHS.has(path) ? health.ready() : undefined;
  if (r === undefined) return false;
  res.writeHead(r.ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${r.ok ? 'ok' : 'not ok'}\n${r.lines.join('\n')}\n`);
  return true;
}

/** Refuses anything but GET and HEAD (405); true when it did. */
function refuseMethod(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  res.writeHead(405, { allow: 'GET, HEAD' }).end();
  return true;
}

function healthHandler(health: Health): RequestListener {
  return (req, res) => {
    if (refuseMethod(req, res)) return;
    if (serveHealth(health, new URL(req.url ?? '/', 'http://localhost').pathname, res)) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; the health port serves /livez (/liveness) and /readyz (/readiness) only\n');
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
    if (refuseMethod(req, res)) return;
    if (serveHealth(health, path, res)) return;
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
