/**
 * The HTTP port's bounds (hardenHttpPort): it listens on every address of a replica's node, and
 * its few callers must not be crowded out by sockets that never send a request, never read their
 * answer, or come by the thousand. A /v1/convergence wait, silent by nature, outlives the idle bound.
 */
import { createServer } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpPortLimits, hardenHttpPort } from '../../src/server/ops/http-endpoints.js';
import { type ConvergenceSource, serveConvergence } from '../../src/server/ops/convergence-endpoint.js';
import type { ConvergenceReport } from '../../src/server/fanout/convergence.js';
import { waitUntil } from '../support/wait.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A port with `limits` whose /v1/convergence answers after `waitMs`; anything else 200 at once. */
async function port(limits: HttpPortLimits, waitMs = 0): Promise<number> {
  const source: ConvergenceSource = {
    resolveResource: (n) => n,
    wait: () => new Promise((resolve) => setTimeout(() => resolve({ converged: true } as unknown as ConvergenceReport), waitMs)),
  };
  const srv = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v1/convergence') serveConvergence(source, url, req, res);
    else res.end('ok');
  });
  hardenHttpPort(srv, limits);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => {
    srv.closeAllConnections();
    return new Promise((r) => srv.close(() => r()));
  });
  return (srv.address() as AddressInfo).port;
}

function open(p: number): Promise<{ socket: Socket; closed: () => boolean; data: () => string }> {
  return new Promise((resolve) => {
    let closed = false;
    let data = '';
    const socket = connect(p, '127.0.0.1', () => resolve({ socket, closed: () => closed, data: () => data }));
    socket.on('data', (b) => (data += b.toString()));
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    cleanups.push(() => void socket.destroy());
  });
}

describe('the HTTP port\'s bounds', () => {
  it('closes a connection that never sends a request after the idle timeout', async () => {
    const p = await port({ maxConnections: 10, headersTimeoutMs: 10_000, idleTimeoutMs: 200 });
    const idle = await open(p);
    // Before, nothing ended it: Node's header deadline starts with a request, and the port had no idle timeout.
    await waitUntil(() => idle.closed(), 'the idle socket closed', { timeoutMs: 3_000 });
  });

  it('closes connections beyond maxConnections at once; those under it are answered', async () => {
    const p = await port({ maxConnections: 3, headersTimeoutMs: 10_000, idleTimeoutMs: 60_000 });
    const held = await Promise.all([open(p), open(p), open(p)]);
    const extra = await open(p);
    await waitUntil(() => extra.closed(), 'the fourth connection closed', { timeoutMs: 3_000 });
    expect(held.some((h) => h.closed())).toBe(false);
    held[0]!.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => held[0]!.data().startsWith('HTTP/1.1 200'), 'an answer under the bound');
  });

  it('lets a /v1/convergence wait outlast the idle timeout', async () => {
    const p = await port({ maxConnections: 10, headersTimeoutMs: 10_000, idleTimeoutMs: 200 }, 800);
    const c = await open(p);
    c.socket.write('GET /v1/convergence?resource=pods&resourceVersion=5&timeoutMs=1000 HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => c.data().startsWith('HTTP/1.1 200') || c.closed(), 'the wait answered', { timeoutMs: 5_000 });
    expect(c.data()).toMatch(/^HTTP\/1\.1 200/);
  });
});
