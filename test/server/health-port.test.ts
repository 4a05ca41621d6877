/**
 * The health port (healthListen): the probe paths alone, on a listener with its own connection
 * bound. The HTTP port (httpListen) is open on every node address with hostNetwork and holds at
 * most HTTP_PORT_LIMITS.maxConnections sockets: anyone who reaches it could fill it and fail the
 * kubelet's probes there, and get every replica restarted. The health port must keep answering.
 */
import { createServer } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { HEALTH_PORT_LIMITS, HTTP_PORT_LIMITS } from '../../src/server/ops/http-endpoints.js';
import { serveOptions } from '../../src/server/options.js';
import { startServer } from '../../src/server/server.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { waitUntil } from '../support/wait.js';
import { harness } from './helpers/harness.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Held {
  socket: Socket;
  closed: () => boolean;
  data: () => string;
}

/** A raw TCP connection to `url`'s port that sends nothing until told to. */
function open(url: string): Promise<Held> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let closed = false;
    let data = '';
    const socket = connect(Number(port), hostname, () => resolve({ socket, closed: () => closed, data: () => data }));
    socket.on('data', (b) => (data += b.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', (err) => (closed ? undefined : reject(err)));
    cleanups.push(() => void socket.destroy());
  });
}

/** One GET over a fresh raw connection: the status line, or undefined when the port closed it unanswered. */
async function rawGet(url: string, path: string): Promise<string | undefined> {
  const c = await open(url);
  c.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  await waitUntil(() => c.closed(), `${url}${path} answered or closed`, { timeoutMs: 5_000 });
  return /^HTTP\/1\.1 \d+/.exec(c.data())?.[0];
}

describe('the health port', () => {
  it('answers /livez and /readyz while idle sockets fill the HTTP port\'s connection bound', async () => {
    const h = await harness({ feeds: ['felix'] });
    h.upstream.apply('felix', { '/pods/ns/p': { i: 1 } }, { status: 'in-sync' });
    expect(h.server.healthUrl).not.toBe(h.server.httpUrl);

    // What a reviewer did to port 9093: more idle connections than the HTTP port admits. Opened 64
    // at a time: a thousand at once overflowed the listen backlog (511), and the kernel completed
    // the handshakes it had dropped only after SYN-ACK retransmits, seconds later.
    const flood: Held[] = [];
    while (flood.length < HTTP_PORT_LIMITS.maxConnections + 6) {
      const n = Math.min(64, HTTP_PORT_LIMITS.maxConnections + 6 - flood.length);
      flood.push(...(await Promise.all(Array.from({ length: n }, () => open(h.server.httpUrl)))));
    }
    await waitUntil(() => flood.filter((c) => c.closed()).length >= 6, 'the connections over the bound closed', { timeoutMs: 10_000, detail: () => `${flood.filter((c) => c.closed()).length} closed` });
    // The HTTP port's probe paths fail now: the kubelet's probe there is closed unanswered.
    expect(await rawGet(h.server.httpUrl, '/livez')).toBeUndefined();

    // The health port is not touched by it.
    expect(await rawGet(h.server.healthUrl, '/livez')).toBe('HTTP/1.1 200');
    const ready = await fetch(`${h.server.healthUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain('feed felix: in-sync');
    for (const path of ['/liveness', '/readiness']) {
      const r = await fetch(`${h.server.healthUrl}${path}`);
      expect(r.status, path).toBe(200);
      await r.text();
    }
  });

  it('gives the same answers as the HTTP port, 503 included, and serves nothing else', async () => {
    const h = await harness({ feeds: ['felix'] });
    // Before the initial sync: not ready on both ports, with the same reason.
    const [onHttp, onHealth] = await Promise.all([fetch(`${h.server.httpUrl}/readyz`), fetch(`${h.server.healthUrl}/readyz`)]);
    expect(onHealth.status).toBe(503);
    expect(onHttp.status).toBe(503);
    const why = await onHealth.text();
    expect(why).toContain('feed felix: waiting');
    expect(await onHttp.text()).toBe(why);
    // /metrics, /v1/load and /v1/convergence stay on the HTTP port.
    for (const path of ['/metrics', '/v1/load', '/v1/convergence?resource=pods&resourceVersion=1', '/']) {
      const r = await fetch(`${h.server.healthUrl}${path}`);
      expect(r.status, path).toBe(404);
      await r.text();
    }
    const post = await fetch(`${h.server.healthUrl}/livez`, { method: 'POST' });
    expect(post.status).toBe(405);
    await post.text();
  });

  it('has a bound of its own: connections over it are closed at once, those under it answered', async () => {
    const h = await harness({ feeds: ['felix'] });
    const held = await Promise.all(Array.from({ length: HEALTH_PORT_LIMITS.maxConnections }, () => open(h.server.healthUrl)));
    const extra = await open(h.server.healthUrl);
    await waitUntil(() => extra.closed(), 'the connection over the bound closed', { timeoutMs: 5_000 });
    expect(held.some((c) => c.closed())).toBe(false);
    held[0]!.socket.write('GET /livez HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => held[0]!.data().startsWith('HTTP/1.1 200'), 'an answer under the bound');
  });

  it('closes with the server', async () => {
    const server = await startServer({ upstream: ScriptedUpstream.withFeeds('felix'), defaultMetrics: false });
    const healthUrl = server.healthUrl;
    const idle = await open(healthUrl);
    await server.close();
    await waitUntil(() => idle.closed(), 'the idle health connection closed', { timeoutMs: 2_000 });
    await expect(fetch(`${healthUrl}/livez`)).rejects.toThrow();
  });

  it('fails the start with CATTAIL_SERVER_LISTEN_FAILED naming healthListen when its address is taken', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => taken.close(() => r())));
    const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    await expect(startServer({ upstream: ScriptedUpstream.withFeeds('felix'), defaultMetrics: false, healthListen: address })).rejects.toMatchObject({
      code: 'CATTAIL_SERVER_LISTEN_FAILED',
      message: expect.stringContaining(`cannot listen on ${address} (healthListen)`),
    });
  });
});

describe('healthListen (--health-listen)', () => {
  it('defaults to loopback on Typha\'s health port (startServer: a free loopback port, library-options.test.ts)', () => {
    expect(resolveConfig(serveOptions, { argv: [] }).config.healthListen).toBe('127.0.0.1:9098');
  });

  it('takes HOST:PORT from the flag or CATTAIL_HEALTH_LISTEN, and refuses anything else', () => {
    expect(resolveConfig(serveOptions, { argv: ['--health-listen', ':9098'] }).config.healthListen).toBe(':9098');
    expect(resolveConfig(serveOptions, { argv: ['--health-listen=[::1]:9100'] }).config.healthListen).toBe('[::1]:9100');
    expect(resolveConfig(serveOptions, { argv: [], env: { CATTAIL_HEALTH_LISTEN: '127.0.0.1:9101' } }).config.healthListen).toBe('127.0.0.1:9101');
    expect(() => resolveConfig(serveOptions, { argv: ['--health-listen', 'nowhere'] })).toThrow('option healthListen (--health-listen): expected HOST:PORT with a port from 0 to 65535');
    expect(() => resolveConfig(serveOptions, { argv: ['--health-listen', '127.0.0.1:65536'] })).toThrow('option healthListen (--health-listen)');
  });
});
