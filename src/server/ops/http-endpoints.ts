/**
 * The HTTP port: /metrics (prom-client text format), /livez and /readyz. Separate from the agent
 * port so that a probe or a scrape never competes with, or is refused like, an agent upgrade.
 * /liveness and /readiness give the same answers under Typha's paths, so manifests and probes
 * written for Typha work unchanged.
 */
import { type Server, createServer } from 'node:http';
import type { Health, HealthReport } from './health.js';
import type { Registry } from 'prom-client';

export function createHttpEndpoints(registry: Registry, health: Health): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
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
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics, /livez (/liveness), /readyz (/readiness)\n');
    }
  });
}
