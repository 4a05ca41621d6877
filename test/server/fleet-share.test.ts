/**
 * The replica's share of agents (src/server/fleet/share.ts) and the balancer that feeds it from
 * the Service's EndpointSlices and the peers' /v1/load (src/server/fleet/balancer.ts).
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { FakeClock } from '../../src/clock.js';
import { LIST_TIMEOUT_MS, type LoadReport, MAX_LOAD_REPLY_BYTES, MAX_PEER_CONNECTIONS, PREVIOUS_CERT_GRACE_MS, ReplicaBalancer, peersOf } from '../../src/server/fleet/balancer.js';
import { computeShare, type Share } from '../../src/server/fleet/share.js';
import type { EndpointSliceLike } from '../../src/client/discovery.js';
import { waitUntil } from '../support/wait.js';
import { createCa, issue } from '../support/pki.js';

const peer = (url: string, connections: number | undefined) => ({ url, connections });

describe('fleet - a replica\'s share', () => {
  it('holds the one-replica-missing capacity (+20 %) while no peer has room: a healthy fleet is not churned', () => {
    const s = computeShare({ nodes: 1_000, ownConnections: 340, peers: [peer('ws://b/', 330), peer('ws://c/', 330)] });
    expect(s.capacity).toBe(600); // 1,000 × 1.2 / 2
    expect(s.fair).toBe(334); // ceil(1,000 / 3)
    expect(s.rebalancing).toBe(false);
    expect(s.target).toBe(600);
  });

  it('drops to the even share when a peer has room (below it by more than 10 %), and hints the peers with room, least loaded first', () => {
    const s = computeShare({ nodes: 1_000, ownConnections: 800, peers: [peer('ws://b/', 200), peer('ws://c/', 0), peer('ws://d/', undefined)] });
    expect(s.rebalancing).toBe(true);
    expect(s.target).toBe(250); // 1,000 / 4
    expect(s.hints).toEqual(['ws://c/', 'ws://b/']);
  });

  it('does not shed while a peer\'s load is unknown, also with a node count: more connections than nodes would be undercounted', () => {
    // 1,000 nodes, two connections each, 3 replicas of ~667: blind, this one took the node count
    // for the fleet, a capacity of 600, and shed agents its peers then shed back.
    const blind = computeShare({ nodes: 1_000, ownConnections: 667, peers: [peer('ws://b/', undefined), peer('ws://c/', undefined)] });
    expect(blind).toMatchObject({ target: 667, capacity: 600, rebalancing: false });
    // Every load known: the capacity as before (2,001 agents × 1.2 / 2).
    expect(computeShare({ nodes: 1_000, ownConnections: 667, peers: [peer('ws://b/', 667), peer('ws://c/', 667)] }).target).toBe(1_201);
  });

  it('sets no target alone, or before it knows how many agents to expect', () => {
    expect(computeShare({ nodes: 1_000, ownConnections: 900, peers: [] }).target).toBeUndefined();
    expect(computeShare({ nodes: undefined, ownConnections: 0, peers: [peer('ws://b/', 0)] }).target).toBeUndefined();
  });

  it('sets no target without a node count while a peer\'s load is unknown: blind replicas do not shrink their targets and shed to each other', () => {
    // Tier 2 has no node count; a peer's /v1/load may time out in a storm or present a certificate
    // not yet known. It counted as holding none: 100 agents over 3 replicas gave a target of 60.
    const blind = computeShare({ nodes: undefined, ownConnections: 100, peers: [peer('ws://b/', undefined), peer('ws://c/', undefined)] });
    expect(blind).toMatchObject({ target: undefined, rebalancing: false, hints: ['ws://b/', 'ws://c/'] });
    expect(computeShare({ nodes: undefined, ownConnections: 100, peers: [peer('ws://b/', 100), peer('ws://c/', undefined)] }).target).toBeUndefined();
    // Every load known: the share as before.
    expect(computeShare({ nodes: undefined, ownConnections: 100, peers: [peer('ws://b/', 100), peer('ws://c/', 100)] }).target).toBe(180);
    // With a node count an unknown peer is only not a peer with room.
    expect(computeShare({ nodes: 300, ownConnections: 100, peers: [peer('ws://b/', 100), peer('ws://c/', undefined)] }).target).toBe(180);
  });

  it('counts connections beyond the node count (several agents per node, a test fleet) as they are', () => {
    const s = computeShare({ nodes: 10, ownConnections: 900, peers: [peer('ws://b/', 0), peer('ws://c/', 100)] });
    expect(s.fair).toBe(334);
    expect(s.target).toBe(334);
  });
});

function slice(name: string, address: string, ports: [number, number], ready = true): EndpointSliceLike {
  return {
    addressType: 'IPv4',
    ports: [{ name: 'agents', port: ports[0] }, { name: 'metrics', port: ports[1] }],
    endpoints: [{ addresses: [address], nodeName: 'n', conditions: { ready, terminating: !ready }, targetRef: { name } }],
  };
}

const names = { selfName: 'cattail-a', selfAddresses: [], agentsPortName: 'agents', metricsPortName: 'metrics', scheme: 'ws' as const };

describe('fleet - the balancer', () => {
  it('finds the ready peers, itself excluded by pod name or address', () => {
    const peers = peersOf([slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093]), slice('cattail-c', '10.0.0.3', [5473, 9093], false)], names);
    expect(peers).toEqual([{ agentsUrl: 'ws://10.0.0.2:5473/', loadUrl: 'http://10.0.0.2:9093/v1/load' }]);
    expect(peersOf([slice('other', '10.0.0.1', [1, 2])], { ...names, selfAddresses: ['10.0.0.1'] })).toEqual([]);
  });

  it('counts a pod of a dual-stack Service once (a slice per address family), itself included', () => {
    const v6 = (name: string, address: string): EndpointSliceLike => ({ ...slice(name, address, [5473, 9093]), addressType: 'IPv6' });
    const slices = [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093]), v6('cattail-a', 'fd00::1'), v6('cattail-b', 'fd00::2')];
    expect(peersOf(slices, names)).toEqual([{ agentsUrl: 'ws://10.0.0.2:5473/', loadUrl: 'http://10.0.0.2:9093/v1/load' }]);
  });

  it('logs a peer whose load cannot be read once as it turns unknown, and once as it comes back', async () => {
    const lines: { level: number; msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string }) });
    let failing = true;
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(), log,
      nodeCount: () => undefined, ownConnections: () => 100, apply: () => undefined,
      source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093])] },
      fetchLoad: async () => {
        if (failing) throw new Error('timed out');
        return { serverId: 'b', connections: 100, targetConnections: null, ready: true };
      },
    });
    for (let i = 0; i < 3; i++) await b.tick();
    expect(lines.filter((l) => l.msg.startsWith('cannot read a peer'))).toHaveLength(1);
    failing = false;
    await b.tick();
    await b.tick();
    expect(lines.filter((l) => l.msg.startsWith('a peer\'s load is readable again'))).toHaveLength(1);
  });

  it('takes a peer\'s load above MAX_PEER_CONNECTIONS as unknown, and a share the server refuses never ends the look (nor the process)', async () => {
    const applied: Share[] = [];
    let refuse = false;
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(),
      nodeCount: () => 1_000, ownConnections: () => 500,
      apply: (x) => {
        if (refuse) throw new Error('refused');
        applied.push(x);
      },
      source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093])] },
      // Before, 2^53 - 1 made the target pass the safe integers; setting it threw out of the
      // tick, an unhandled rejection that ended the replica.
      fetchLoad: async () => ({ serverId: 'b', connections: Number.MAX_SAFE_INTEGER, targetConnections: null, ready: true }),
    });
    await b.tick();
    const share = applied.at(-1);
    expect(share?.capacity).toBeLessThanOrEqual(1_200);
    expect(Number.isSafeInteger(share?.target ?? 0)).toBe(true);
    refuse = true;
    await expect(b.tick()).resolves.toBeUndefined();
    expect(MAX_PEER_CONNECTIONS).toBeGreaterThanOrEqual(100_000);
  });

  it('takes a peer that reports itself not ready as one without room (its slice lags), and never hints it', async () => {
    const applied: Share[] = [];
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(),
      nodeCount: () => 900, ownConnections: () => 900, apply: (x) => applied.push(x),
      source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093])] },
      fetchLoad: async () => ({ serverId: 'b', connections: 0, targetConnections: null, ready: false }),
    });
    await b.tick();
    expect(applied.at(-1)).toMatchObject({ rebalancing: false, target: 1080 });
    // No peer has room: the hints would be every peer, but refused agents sent to this one get its 503.
    expect(applied.at(-1)?.hints).toEqual([]);
  });

  it('applies the share on every tick, keeps the last one when the slices cannot be read, and treats a silent peer as unknown', async () => {
    const clock = new FakeClock();
    let slices: EndpointSliceLike[] = [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '10.0.0.2', [5473, 9093]), slice('cattail-c', '10.0.0.3', [5473, 9093])];
    let failList = false;
    const loads = new Map<string, number | Error>([['http://10.0.0.2:9093/v1/load', 0], ['http://10.0.0.3:9093/v1/load', new Error('timeout')]]);
    const applied: Share[] = [];
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock,
      nodeCount: () => 900, ownConnections: () => 900,
      apply: (s) => applied.push(s),
      source: { list: async () => { if (failList) throw new Error('apiserver down'); return slices; } },
      fetchLoad: async (url): Promise<LoadReport> => {
        const v = loads.get(url);
        if (v instanceof Error || v === undefined) throw v ?? new Error('no such peer');
        return { serverId: url, connections: v, targetConnections: null, ready: true };
      },
    });
    await b.tick();
    expect(applied.at(-1)).toMatchObject({ target: 300, rebalancing: true, hints: ['ws://10.0.0.2:5473/'] });
    // B filled up (1,300 agents seen); C never answers: no peer is known to have room. The
    // capacity (1,300 × 1.2 / 2 = 780) is below what this replica holds, but with C unknown the
    // count may be short: it keeps its 900 rather than shed blind.
    loads.set('http://10.0.0.2:9093/v1/load', 400);
    await b.tick();
    expect(applied.at(-1)).toMatchObject({ target: 900, capacity: 780, rebalancing: false });
    expect(applied.at(-1)!.hints).toEqual(['ws://10.0.0.2:5473/', 'ws://10.0.0.3:5473/']);
    failList = true;
    await b.tick();
    expect(applied).toHaveLength(2); // nothing applied: the last share stays
    failList = false;
    slices = [slice('cattail-a', '10.0.0.1', [5473, 9093])];
    await b.tick();
    expect(applied.at(-1)).toMatchObject({ target: undefined, hints: [] });
  });

  it('treats a peer whose load reply is above MAX_LOAD_REPLY_BYTES as unknown, and stops reading it at the cap', async () => {
    // A valid LoadReport padded to 64 MiB, chunked (no Content-Length): read whole, it would say
    // the peer has room. Written as fast as the reader takes it, until the socket closes.
    const total = 64 * 1024 * 1024;
    const head = Buffer.from('{"serverId":"b","connections":0,"targetConnections":null,"ready":true,"pad":"');
    let written = 0;
    let closedEarly = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (written < total - head.length - 2) {
          const piece = written === 0 ? head : chunk;
          written += piece.length;
          if (!res.write(piece)) return void res.once('drain', pump);
        }
        res.end('"}');
        written += 2;
      };
      res.on('close', () => {
        closedEarly = !res.writableFinished;
      });
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const applied: Share[] = [];
      const b = new ReplicaBalancer({
        ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(),
        nodeCount: () => 900, ownConnections: () => 900,
        apply: (s) => applied.push(s),
        source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '127.0.0.1', [5473, port])] },
      });
      await b.tick();
      // Unknown load: no peer is known to have room, so the capacity (900 × 1.2) and no rebalancing.
      expect(applied.at(-1)).toMatchObject({ target: 1080, rebalancing: false });
      await waitUntil(() => closedEarly, 'the peer\'s reply socket closed before its end');
      // Socket buffers hold a few MiB at most: far less than the 64 MiB was ever written.
      expect(written).toBeLessThan(total / 4);
      expect(written).toBeGreaterThan(MAX_LOAD_REPLY_BYTES);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('looks again every intervalMs on the injected clock, and stops', async () => {
    const clock = new FakeClock();
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock, nodeCount: () => 1, ownConnections: () => 0, apply: () => undefined,
      source: { list: async () => [] }, fetchLoad: async () => { throw new Error('unused'); },
    });
    b.start();
    await clock.advanceAsync(0);
    expect(b.ticks).toBe(1);
    await clock.advanceAsync(10_000);
    expect(b.ticks).toBe(2);
    await b.stop();
    await clock.advanceAsync(30_000);
    expect(b.ticks).toBe(2);
  });

  it('gives up a look at the slices that hangs after LIST_TIMEOUT_MS: stop() (and so a shutdown) is not held by it', async () => {
    const clock = new FakeClock();
    const applied: Share[] = [];
    let lists = 0;
    const b = new ReplicaBalancer({
      ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock, nodeCount: () => 1, ownConnections: () => 0, apply: (s) => applied.push(s),
      // A black-holed API server: the request never answers.
      source: { list: () => { lists++; return new Promise(() => undefined); } }, fetchLoad: async () => { throw new Error('unused'); },
    });
    b.start();
    await clock.advanceAsync(0);
    expect(b.ticks).toBe(1);
    let stopped = false;
    void b.stop().then(() => (stopped = true));
    await clock.advanceAsync(LIST_TIMEOUT_MS - 1);
    expect(stopped).toBe(false);
    await clock.advanceAsync(1);
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(true);
    expect(applied).toEqual([]);
    // The next look waits for the same request instead of starting another.
    const next = b.tick();
    await clock.advanceAsync(LIST_TIMEOUT_MS);
    await next;
    expect(lists).toBe(1);
  });

  it('over --http-tls believes its peers at every look, not only while the first connection is kept alive', async () => {
    // A resumed TLS session carries no certificate: with a session cache, every look after the
    // peer closed the kept-alive connection found none to pin, and the peer's load was unknown.
    const ca = await createCa('cattail-test-ca');
    const ours = await issue(ca, { cn: 'cattail.calico-system.svc', usage: 'server', dnsSans: ['cattail.calico-system.svc'] });
    const srv = https.createServer({ cert: ours.certPem, key: ours.keyPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ serverId: 'peer', connections: 0, targetConnections: null, ready: true }));
    });
    srv.keepAliveTimeout = 50;
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const applied: Share[] = [];
      const b = new ReplicaBalancer({
        ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(), loadScheme: 'https', ownCertFingerprint: () => new X509Certificate(ours.certPem).fingerprint256,
        nodeCount: () => 900, ownConnections: () => 900, apply: (x) => applied.push(x),
        source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '127.0.0.1', [5473, (srv.address() as AddressInfo).port])] },
      });
      for (let look = 0; look < 3; look++) {
        await b.tick();
        expect(applied.at(-1), `look ${look}`).toMatchObject({ target: 450, rebalancing: true });
        // Past the peer's keep-alive: the next look opens a new connection.
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });

  it('over --http-tls asks its peers on https and believes only a peer presenting its own certificate', async () => {
    const ca = await createCa('cattail-test-ca');
    const ours = await issue(ca, { cn: 'cattail.calico-system.svc', usage: 'server', dnsSans: ['cattail.calico-system.svc'] });
    const stranger = await issue(ca, { cn: 'cattail.calico-system.svc', usage: 'server', dnsSans: ['cattail.calico-system.svc'] });
    const fingerprint = new X509Certificate(ours.certPem).fingerprint256;
    const peer = async (cert: { certPem: string; keyPem: string }, connections: number): Promise<https.Server> => {
      const srv = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ serverId: 'peer', connections, targetConnections: null, ready: true }));
      });
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      return srv;
    };
    const good = await peer(ours, 0);
    const bad = await peer(stranger, 0);
    const portOf = (srv: https.Server): number => (srv.address() as AddressInfo).port;
    try {
      const share = async (port: number): Promise<Share | undefined> => {
        const applied: Share[] = [];
        const b = new ReplicaBalancer({
          ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock: new FakeClock(), loadScheme: 'https', ownCertFingerprint: () => fingerprint,
          nodeCount: () => 900, ownConnections: () => 900, apply: (x) => applied.push(x),
          source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '127.0.0.1', [5473, port])] },
        });
        await b.tick();
        return applied.at(-1);
      };
      // The peer with our certificate has room: the even share, and it is hinted.
      expect(await share(portOf(good))).toMatchObject({ target: 450, rebalancing: true });
      // One with another certificate (same CA, same name) is a peer whose load is unknown.
      expect(await share(portOf(bad))).toMatchObject({ target: 1080, rebalancing: false });

      // A rotation: this replica's certificate changes (its copy of the Secret was updated first).
      // A peer still presenting the previous one is believed for PREVIOUS_CERT_GRACE_MS, no longer.
      let own = fingerprint;
      let port = portOf(good);
      const clock = new FakeClock();
      const applied: Share[] = [];
      const b = new ReplicaBalancer({
        ...names, service: 'calico-system/cattail', intervalMs: 10_000, clock, loadScheme: 'https', ownCertFingerprint: () => own,
        nodeCount: () => 900, ownConnections: () => 900, apply: (x) => applied.push(x),
        source: { list: async () => [slice('cattail-a', '10.0.0.1', [5473, 9093]), slice('cattail-b', '127.0.0.1', [5473, port])] },
      });
      await b.tick();
      expect(applied.at(-1)).toMatchObject({ target: 450 });
      own = new X509Certificate(stranger.certPem).fingerprint256; // "stranger" is now our new certificate
      await b.tick();
      expect(applied.at(-1), 'the previous certificate, within the grace').toMatchObject({ target: 450 });
      port = portOf(bad);
      await b.tick();
      expect(applied.at(-1), 'the new one').toMatchObject({ target: 450 });
      port = portOf(good);
      await clock.advanceAsync(PREVIOUS_CERT_GRACE_MS);
      await b.tick();
      expect(applied.at(-1), 'the previous certificate, after the grace').toMatchObject({ target: 1080, rebalancing: false });
    } finally {
      for (const srv of [good, bad]) {
        srv.closeAllConnections();
        await new Promise<void>((resolve) => srv.close(() => resolve()));
      }
    }
  });
});
