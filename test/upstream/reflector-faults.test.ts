import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { FakeClock } from '../../src/clock.js';
import type { UpstreamHandle, UpstreamOptions } from '../../src/server/upstream/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { upstreamOnFakeApi } from '../support/upstream.js';
import { customFeed, expectedState, pod, RecordingSink, sameState } from './helpers.js';
import { waitUntil } from '../support/wait.js';
import { hostileTally } from '../support/reliability-record.js';
import { workloadEndpointKey } from '../../src/server/upstream/projections/calico-keys.js';

const tally = hostileTally('upstream', false);

/**
 * The reflector against a server that misbehaves on purpose. Virtual time (FakeClock) drives
 * backoff, Retry-After and the watchdog; request counts are per virtual minute, so a hot loop
 * (which would issue requests as fast as real I/O allows) cannot pass.
 */
const PODS_FEED = { name: 'pods', resources: [{ resource: 'pods' }] };
const podsFeed = customFeed(PODS_FEED);

let server: FakeApiServer;

async function setup(opts: Partial<UpstreamOptions> = {}): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle }> {
  const started = await upstreamOnFakeApi({ customFeeds: [PODS_FEED], random: () => 0, watchList: false, ...opts });
  server = started.server;
  return { clock: started.clock, sink: new RecordingSink(), up: started.up };
}

const objects = (id: string): KubeObject[] => [...(server.store.get(id)?.values() ?? [])];
const converged = (sink: RecordingSink): boolean => sameState(sink.state.get('pods'), expectedState(podsFeed, objects));
const counter = async (up: UpstreamHandle, name: 'watchRestarts' | 'authErrors' | 'skipped' | 'relists', label?: Record<string, string>): Promise<number> =>
  (await up.metrics[name].get()).values.filter((v) => Object.entries(label ?? {}).every(([k, x]) => (v.labels as Record<string, unknown>)[k] === x)).reduce((n, v) => n + v.value, 0);

/**
 * The next watch request is answered with a 200 and the lines `lines()` gives then (each with its
 * newline), the stream left open unless `end`; later requests reach the server as usual.
 */
/** A watch line: pod `name` ADDED (its metadata patched by `meta`) at the server's RV + `ahead`. */
function added(name: string, ahead: number, meta: Record<string, unknown> = {}, ip?: string): string {
  const p = ip === undefined ? pod(name) : pod(name, { ip });
  return JSON.stringify({ type: 'ADDED', object: { ...p, kind: 'Pod', metadata: { ...p.metadata, ...meta, resourceVersion: String(server.rv + ahead) } } });
}

/** The well-formed event after the malformed ones: pod `ok` ADDED, which the stream must reach. */
const addedOk = (ahead: number): string => added('ok', ahead, {}, '10.0.0.7');

function nextWatchWrites(lines: () => string[], end = false): void {
  server.intercept = (info, _req, res) => {
    if (!info.watch) return false;
    server.intercept = undefined;
    res.writeHead(200, { 'content-type': 'application/json' });
    for (const l of lines()) res.write(`${l}\n`);
    if (end) res.end();
    return true;
  };
}

/**
 * Records the continue token of every LIST request (`pages`, '' for a first page); a request
 * `fails` picks (given its token, the tokens so far with it, and how many failed before) is
 * answered `status` with `body`. Watches reach the server as usual.
 */
function failListPages(fails: (cont: string, seen: string[], failedBefore: number) => boolean, status: number, body: object, headers: Record<string, string> = {}): { pages: string[]; failed: () => number } {
  const pages: string[] = [];
  let failed = 0;
  server.intercept = (info, _req, res) => {
    if (info.watch) return false;
    const cont = info.query.get('continue') ?? '';
    pages.push(cont);
    if (!fails(cont, pages, failed)) return false;
    failed++;
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    return true;
  };
  return { pages, failed: () => failed };
}

describe('reflector under faults', () => {
  it('survives a reset in the middle of a JSON line, applying nothing partial', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    server.intercept = (info, _req, res) => {
      if (!info.watch) return false;
      server.intercept = undefined;
      res.writeHead(200, { 'content-type': 'application/json' });
      const line = JSON.stringify({ type: 'ADDED', object: { ...pod('half'), kind: 'Pod', apiVersion: 'v1' } });
      res.write(line.slice(0, line.length / 2));
      setImmediate(() => res.socket?.destroy());
      return true;
    };
    server.endWatches();
    await waitUntil(() => (sink.state.get('pods')?.size ?? 0) > 0 && server.openWatches === 1 && server.count('pods', true) >= 3, { clock });
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => converged(sink), { clock });
    expect([...(sink.state.get('pods')?.keys() ?? [])].some((k) => k.endsWith('/half'))).toBe(false);
    expect(await counter(up, 'watchRestarts', { reason: 'network' })).toBe(1);
  });

  it('aborts a black-holed watch after the inactivity timeout and re-watches', async () => {
    const { clock, sink, up } = await setup({ watchInactivityTimeoutMs: 30_000 });
    server.upsert('pods', pod('a'));
    let blackholed = 0;
    server.intercept = (info, _req, res) => {
      if (!info.watch || blackholed > 0) return false;
      blackholed++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      return true; // headers, then silence forever
    };
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && blackholed === 1, { clock });
    const t0 = clock.monotonic();
    await waitUntil(() => server.openWatches === 1, { clock, stepMs: 500 });
    expect(clock.monotonic() - t0).toBeGreaterThanOrEqual(29_000);
    expect(await counter(up, 'watchRestarts', { reason: 'watchdog' })).toBe(1);
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => converged(sink), { clock });
  });

  it('honours Retry-After on 429 and never retries sooner', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    const times: number[] = [];
    server.intercept = (info, _req, res) => {
      times.push(clock.monotonic());
      if (info.n >= 3) return false;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'watch cache not ready' }));
      return true;
    };
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    for (let i = 1; i < 4; i++) expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(7_000);
    expect(converged(sink)).toBe(true);
  });

  for (const code of [401, 403]) {
    it(`is loud on ${code}: counted, authError, not ready, never "missing"`, async () => {
      const { clock, sink, up } = await setup();
      server.upsert('pods', pod('a'));
      server.intercept = (_info, _req, res) => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code, reason: code === 401 ? 'Unauthorized' : 'Forbidden', message: 'pods is forbidden: User "system:serviceaccount:calico-system:cattail" cannot list' }));
        return true;
      };
      up.start(sink);
      await waitUntil(() => server.requests.length >= 5, { clock, stepMs: 500 });
      const h = up.health()[0];
      expect(h?.authError).toMatch(new RegExp(`HTTP ${code}`));
      expect(h?.synced).toBe(false);
      expect(h?.missing).toBeUndefined();
      expect(up.ready()).toBe(false);
      expect(sink.status.get('pods')).toBe('resyncing');
      expect(await counter(up, 'authErrors', { code: String(code) })).toBeGreaterThanOrEqual(4);
      // The synced gauge has a series before the first sync (an alert on `== 0` needs one).
      const synced = async (): Promise<number | undefined> => (await up.metrics.synced.get()).values.find((v) => v.labels.resource === 'pods')?.value;
      expect(await synced()).toBe(0);
      server.intercept = undefined; // RBAC fixed / token rotated
      await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock, stepMs: 500 });
      expect(await synced()).toBe(1);
      expect(up.health()[0]?.authError).toBeUndefined();
      expect(up.ready()).toBe(true);
    });
  }

  it('re-reads a rotated token file after a 401', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-token-'));
    try {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'old-token');
      const { server, clock, up } = await upstreamOnFakeApi((srv) => {
        const kubeConfig = new KubeConfig();
        kubeConfig.loadFromClusterAndUser({ name: 'c', server: srv.url, skipTLSVerify: true }, { name: 'u', authProvider: { name: 'tokenFile', config: { tokenFile } } });
        return { kubeConfig, customFeeds: [PODS_FEED], random: () => 0, watchList: false };
      });
      const seen: string[] = [];
      // The API server accepts `token` alone (401 otherwise) and notes every Authorization it saw.
      const accepting = (token: string): FakeApiServer['intercept'] => (info, _req, res) => {
        const auth = String(info.headers.authorization);
        seen.push(auth);
        if (auth === `Bearer ${token}`) return false;
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code: 401, reason: 'Unauthorized', message: 'token expired' }));
        return true;
      };
      server.intercept = accepting('new-token');
      const sink = new RecordingSink();
      up.start(sink);
      await waitUntil(() => seen.length >= 1, { clock });
      writeFileSync(tokenFile, 'new-token'); // the kubelet rotates the projected token
      await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock, stepMs: 200 });
      expect(seen[0]).toBe('Bearer old-token');
      expect(seen.at(-1)).toBe('Bearer new-token');
      // The next rotation is followed without another 401: the file is read before each request.
      await waitUntil(() => server.openWatches === 1, { clock, stepMs: 200 });
      const authErrors = await counter(up, 'authErrors');
      writeFileSync(tokenFile, 'newer-token');
      server.intercept = accepting('newer-token');
      const before = seen.length;
      server.endWatches();
      await waitUntil(() => seen.length > before && server.openWatches === 1, { clock, stepMs: 200 });
      expect(seen.slice(before)).toEqual(['Bearer newer-token']);
      expect(await counter(up, 'authErrors')).toBe(authErrors);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs an exec credential plugin again after a 401, before its credential expires (client-node caches it until then)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-exec-'));
    try {
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'old-token');
      // The plugin: an ExecCredential with the file's token, valid for an hour.
      const plugin = `const fs=require('fs');process.stdout.write(JSON.stringify({apiVersion:'client.authentication.k8s.io/v1',kind:'ExecCredential',status:{token:fs.readFileSync(process.argv[1],'utf8').trim(),expirationTimestamp:new Date(Date.now()+3600e3).toISOString()}}))`;
      const { server, clock, up } = await upstreamOnFakeApi((srv) => {
        const kubeConfig = new KubeConfig();
        kubeConfig.loadFromClusterAndUser(
          { name: 'c', server: srv.url, skipTLSVerify: true },
          { name: 'u', exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', plugin, tokenFile], interactiveMode: 'Never' } },
        );
        return { kubeConfig, customFeeds: [PODS_FEED], random: () => 0, watchList: false };
      });
      const seen: string[] = [];
      server.intercept = (info, _req, res) => {
        const auth = String(info.headers.authorization);
        seen.push(auth);
        if (auth === 'Bearer new-token') return false;
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code: 401, reason: 'Unauthorized', message: 'token revoked' }));
        return true;
      };
      const sink = new RecordingSink();
      // Virtual time moves with real pauses: the plugin runs in real time, and the inactivity
      // watchdog (virtual) must not end every attempt before the plugin has answered.
      const until = async (done: () => boolean): Promise<void> => {
        for (let i = 0; i < 200 && !done(); i++) {
          await clock.advanceAsync(500);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      up.start(sink);
      await until(() => seen.length >= 1);
      writeFileSync(tokenFile, 'new-token'); // revoked and reissued before its expiry
      await until(() => sink.status.get('pods') === 'in-sync');
      expect(sink.status.get('pods')).toBe('in-sync');
      expect(seen[0]).toBe('Bearer old-token');
      expect(seen.at(-1)).toBe('Bearer new-token');
      expect(await counter(up, 'authErrors')).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('backs off on an in-stream 500 and re-watches from the same RV without relisting', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    const rv = server.rv;
    let errors = 0;
    server.intercept = (info, _req, res) => {
      if (!info.watch || errors >= 2) return false;
      errors++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 500, reason: 'InternalError', message: 'etcd unavailable' } }) + '\n');
      return true;
    };
    server.endWatches();
    await waitUntil(() => errors === 2 && server.openWatches === 1, { clock });
    expect(server.count('pods', false)).toBe(1);
    const watches = server.requests.filter((r) => r.watch).slice(1);
    for (const w of watches) expect(new URLSearchParams(w.query).get('resourceVersion')).toBe(String(rv));
    expect(await counter(up, 'watchRestarts', { reason: 'stream-error' })).toBe(2);
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => converged(sink), { clock });
  });

  it('restarts a list consistently when its continue token expires', async () => {
    const { clock, sink, up } = await setup({ listPageSize: 2 });
    for (let i = 0; i < 5; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    let expired = false;
    server.intercept = (info) => {
      if (!info.watch && info.query.get('continue') && !expired) {
        expired = true;
        server.rv++;
        server.compact(); // the token's snapshot is gone: the server answers 410
      }
      return false;
    };
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    expect(converged(sink)).toBe(true);
    expect(await counter(up, 'relists', { reason: 'continue-expired' })).toBe(1);
    const lists = server.requests.filter((r) => !r.watch);
    const restart = lists.findIndex((r, i) => i > 0 && !r.query.includes('continue'));
    expect(restart).toBeGreaterThan(0);
    expect(lists[restart]?.query).not.toContain('resourceVersion');
    // Nothing was delivered twice: one update per pod.
    expect(sink.updates('pods')).toBe(5);
  });

  it('a throttled continue page is asked again after Retry-After: the list goes on from it, not from page 1', async () => {
    const { clock, sink, up } = await setup({ listPageSize: 2 });
    for (let i = 0; i < 7; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    // The third page is throttled twice (APF), then served.
    const { pages, failed } = failListPages(
      (cont, seen, n) => seen.filter((c) => c !== '').length >= 2 && cont !== '' && n < 2 && seen.filter((c) => c === cont).length <= 2,
      429, { kind: 'Status', code: 429, reason: 'TooManyRequests' }, { 'retry-after': '3' },
    );
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock, stepMs: 500 });
    expect(converged(sink)).toBe(true);
    expect(failed()).toBe(2);
    // One first page, and the throttled token asked three times: 4 pages of 2 items, 2 retries.
    expect(pages.filter((c) => c === '')).toHaveLength(1);
    expect(pages).toHaveLength(6);
    expect(new Set(pages.slice(2)).size).toBe(2);
    expect(sink.updates('pods')).toBe(7);
    tally.add('paged list whose continue page is throttled (429)', 'that page asked again after Retry-After; the list goes on from it');
  });

  it('a continue page that times out (504 without "too large resource version") is asked again: the list goes on from it, no consistent relist', async () => {
    const { clock, sink, up } = await setup({ listPageSize: 2 });
    for (let i = 0; i < 7; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    // The second page times out once, as the API server's request filter answers a slow request.
    const { pages, failed } = failListPages((cont, _seen, n) => cont !== '' && n === 0, 504, {
      kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 504, reason: 'Timeout',
      message: 'Timeout: request did not complete within requested timeout - context deadline exceeded',
    });
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock, stepMs: 500 });
    expect(converged(sink)).toBe(true);
    expect(failed()).toBe(1);
    // Before, a 504 was "too large RV": the pages were thrown away and the list began again.
    expect(pages.filter((c) => c === '')).toHaveLength(1);
    expect(pages).toHaveLength(5);
    expect(pages[1]).toBe(pages[2]);
    expect(await counter(up, 'relists', { reason: 'too-large' })).toBe(0);
    tally.add('paged list whose continue page times out (504 Timeout, no ResourceVersionTooLarge cause)', 'that page asked again after backoff; the list goes on from it');
  });

  it('a relist that keeps failing at the same page turns the resource stale (pages fetched again confirm nothing)', async () => {
    const { clock, sink, up } = await setup({ listPageSize: 2, upstreamStaleAfterMs: 60_000 });
    for (let i = 0; i < 7; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    // From now on every list's third page is garbage (not retried as the same page: the list
    // starts over), and the watch ends at once with 410 so that the reflector must relist.
    let pagesServed = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch) {
        res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }));
        return true;
      }
      if (info.query.get('continue') === null) pagesServed = 0;
      if (++pagesServed < 3) return false;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"PodList","items":');
      return true;
    };
    server.endWatches();
    await waitUntil(() => up.health()[0]?.stale === true && sink.stale.get('pods') === true, 'stale', { clock, stepMs: 1_000, timeoutMs: 200_000 });
    // Each attempt got its second page, a page after the first: before, that counted as healthy.
    expect(server.requests.filter((r) => !r.watch && r.query.includes('continue')).length).toBeGreaterThan(4);
    server.intercept = undefined;
    await waitUntil(() => up.health()[0]?.stale === false && converged(sink), 'fresh again', { clock, stepMs: 1_000, timeoutMs: 200_000 });
  });

  it('a paged list left half-way is over once a WatchList commits: the next paged relist starts at page 1, not at its old continue token', async () => {
    const { clock, sink, up } = await setup({ watchList: true, listPageSize: 2, upstreamStaleAfterMs: 86_400_000 });
    for (let i = 0; i < 7; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    const isWatchList = (q: URLSearchParams): boolean => q.get('sendInitialEvents') === 'true';
    // Armed: the next plain watch gets 410 (a relist), and the next WatchList ends right after its
    // headers (ambiguous: paged LIST for an hour); `throttle` answers every continue page 429.
    let arm410 = true;
    let armAmbiguous = true;
    let throttle = true;
    const lists: (string | null)[] = [];
    server.intercept = (info, _req, res) => {
      if (info.watch && !isWatchList(info.query) && arm410) {
        arm410 = false;
        res.writeHead(410, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }));
        return true;
      }
      if (info.watch && isWatchList(info.query) && armAmbiguous) {
        armAmbiguous = false;
        res.writeHead(200, { 'content-type': 'application/json' }).end();
        return true;
      }
      if (info.watch) return false;
      lists.push(info.query.get('continue'));
      if (throttle && info.query.get('continue') !== null) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '300' }).end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests' }));
        return true;
      }
      return false;
    };
    server.endWatches();
    // The fallback LIST gets page 1 and is throttled at page 2, again and again (each attempt going
    // on from page 2) until the hour is over and a WatchList is tried, which commits.
    await waitUntil(() => lists.length >= 3, 'the fallback list throttled at its second page', { clock, stepMs: 1_000 });
    expect(lists.slice(0, 3).map((c) => c === null)).toEqual([true, false, false]);
    const watchListsBefore = server.requests.filter((r) => r.watch && r.query.includes('sendInitialEvents=true')).length;
    await waitUntil(() => server.requests.filter((r) => r.watch && r.query.includes('sendInitialEvents=true')).length > watchListsBefore && server.openWatches === 1,
      'WatchList tried again after the hour', { clock, stepMs: 10_000, timeoutMs: 4_000_000 });
    expect(lists.filter((c) => c === null)).toHaveLength(1);
    await waitUntil(() => converged(sink) && sink.status.get('pods') === 'in-sync', { clock });
    // A relist whose WatchList fails ambiguously again: its paged LIST starts over at page 1.
    throttle = false;
    arm410 = true;
    armAmbiguous = true;
    const listed = lists.length;
    server.upsert('pods', pod('late', { ip: '10.0.1.1' }));
    server.endWatches();
    await waitUntil(() => lists.length > listed && server.openWatches === 1 && converged(sink), 'relisted', { clock, stepMs: 1_000 });
    // Before, the half-done list of an hour ago was kept through the WatchList's commit and this
    // relist went on from its second page's old continue token.
    expect(lists[listed]).toBeNull();
    expect(sink.state.get('pods')?.size).toBe(8);
    tally.add('paged list left half-way (a throttled page), then a WatchList relist commits', 'the half-done list is dropped; the next paged relist starts at page 1');
  });

  it('an error response whose body never ends is read up to 64 KiB, then dropped: the reflector goes on', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    const trickles: NodeJS.Timeout[] = [];
    let closed = 0;
    let broken = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch || broken > 0) return false;
      broken++;
      // A broken proxy: 503 and a body that keeps coming, 4 KiB every 5 ms (real time), forever.
      res.writeHead(503, { 'content-type': 'application/json' });
      res.write('{"kind":"Status","code":503,"message":"');
      trickles.push(setInterval(() => res.write('x'.repeat(4096)), 5));
      res.on('close', () => closed++);
      return true;
    };
    try {
      up.start(sink);
      // Before, the read went on for as long as the body did and no other attempt was made.
      await waitUntil(() => closed === 1, 'the error response dropped', { timeoutMs: 5_000 });
      await waitUntil(() => sink.status.get('pods') === 'in-sync' && converged(sink), { clock, stepMs: 500 });
      expect(await counter(up, 'watchRestarts', { reason: 'http-503' })).toBe(1);
    } finally {
      for (const t of trickles) clearInterval(t);
    }
    tally.add('error response (503) whose body never ends', 'read up to 64 KiB, the response dropped; the status code decides (backoff)');
  });

  it('never hot-loops: a server that closes every watch at once gets a bounded number of requests', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    server.intercept = (info, _req, res) => {
      if (!info.watch) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
      return true;
    };
    up.start(sink);
    await waitUntil(() => clock.monotonic() >= 600_000, { clock, stepMs: 250, timeoutMs: 700_000 });
    const watches = server.count('pods', true);
    // 0.8-1.6 s doubling to 20-40 s: ~7 quick attempts, then one per 30 s ≈ 25 in ten minutes.
    expect(watches).toBeGreaterThan(5);
    expect(watches).toBeLessThan(40);
    expect(await counter(up, 'watchRestarts', { reason: 'short-watch' })).toBe(watches);
  });

  it('never hot-loops on 500s either, and resets the backoff after two healthy minutes', async () => {
    const { clock, sink, up } = await setup();
    let failing = true;
    server.intercept = (_info, _req, res) => {
      if (!failing) return false;
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"kind":"Status","code":500}');
      return true;
    };
    up.start(sink);
    await waitUntil(() => clock.monotonic() >= 300_000, { clock, stepMs: 250, timeoutMs: 400_000 });
    expect(server.requests.length).toBeLessThan(20);
    failing = false;
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock, stepMs: 250 });
  });

  it('ends the watch at a line that is not JSON and re-watches from the last applied RV, so the event it stood for comes again', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    // The next watch gets garbage where b's ADDED would be, then c's real event: skipping the
    // line and reading on moved the RV past b, and b was lost for good.
    nextWatchWrites(() => ['{not json}', JSON.stringify({ type: 'ADDED', object: server.store.get('pods')?.get('default/c') })], true);
    server.endWatches();
    // Written while no watch is open: only a watch from a's RV (history) carries them.
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    server.upsert('pods', pod('c', { ip: '10.0.0.3' }));
    await waitUntil(() => converged(sink), { clock, stepMs: 250 });
    expect(sink.state.get('pods')?.has('/pods/default/b')).toBe(true);
    expect(await counter(up, 'skipped', { reason: 'malformed' })).toBe(1);
    expect(await counter(up, 'watchRestarts', { reason: 'malformed' })).toBe(1);
    tally.add('watch line that is not JSON', 'counted (malformed); watch ended, re-watched from the last applied RV');
  });

  it('counts and skips an object without a name; the stream goes on', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    nextWatchWrites(() => [JSON.stringify({ type: 'ADDED', object: { kind: 'Pod', metadata: { namespace: 'x' } } }), addedOk(1)]);
    server.endWatches();
    await waitUntil(() => sink.state.get('pods')?.has('/pods/default/ok') === true, { clock });
    expect(await counter(up, 'skipped', { reason: 'malformed' })).toBe(1);
    expect(await counter(up, 'watchRestarts', { reason: 'malformed' })).toBe(0);
    tally.add('object without a name', 'counted (skipped, malformed), stream goes on');
  });

  it('counts and skips an object whose name holds a lone surrogate (it would reach agents as U+FFFD, one key for two); the stream goes on', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    // JSON.stringify writes the lone surrogates as \ud800 escapes, as a hostile server would.
    nextWatchWrites(() => [added('b\ud800', 1), added('c', 2, { namespace: 'x\udc00' }), addedOk(3)]);
    server.endWatches();
    await waitUntil(() => sink.state.get('pods')?.has('/pods/default/ok') === true, { clock });
    expect([...(sink.state.get('pods')?.keys() ?? [])].every((k) => k.isWellFormed())).toBe(true);
    expect(sink.state.get('pods')?.size).toBe(2);
    expect(await counter(up, 'skipped', { reason: 'malformed' })).toBe(2);
    expect(await counter(up, 'watchRestarts', { reason: 'malformed' })).toBe(0);
    tally.add('object name with a lone surrogate', 'counted (skipped, malformed), stream goes on');
  });

  it('refuses a resourceVersion that is not a decimal (malformed, backing off) instead of carrying it into watermarks', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    const batches = sink.batches.length;
    nextWatchWrites(() => [JSON.stringify({ type: 'ADDED', object: { ...pod('x', { ip: '10.0.0.9' }), kind: 'Pod', metadata: { ...pod('x').metadata, resourceVersion: 'abc' } } })]);
    server.endWatches();
    await waitUntil(async () => (await counter(up, 'watchRestarts', { reason: 'malformed' })) === 1, { clock, stepMs: 250 });
    // Nothing of that event reached a feed, and no batch carried its resourceVersion.
    expect(sink.state.get('pods')?.has('/pods/default/x')).toBe(false);
    expect(sink.batches.slice(batches).every((b) => b.batch.watermarks?.['pods'] !== 'abc')).toBe(true);
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => converged(sink), { clock, stepMs: 250 });
    tally.add('resourceVersion that is not a decimal', 'counted (malformed); watch ended, re-watched from the last applied RV');
  });

  it('after a relist, a pod recreated on another node whose projection fails keeps nothing of its old node', async () => {
    const felixPods = { name: 'weps', resources: [{ resource: 'pods', projection: 'libcalico' }] };
    const { clock, sink, up } = await setup({ customFeeds: [felixPods] });
    server.upsert('pods', pod('web-0', { node: 'node-a', ip: '10.1.0.5' }));
    server.upsert('pods', pod('other', { node: 'node-a', ip: '10.1.0.6' }));
    up.start(sink);
    const oldKey = workloadEndpointKey('node-a', 'default', 'web-0');
    await waitUntil(() => sink.status.get('weps') === 'in-sync' && sink.state.get('weps')?.has(oldKey) === true, { clock });
    // While no watch sees it: deleted, created again on node-b with an annotation the conversion
    // refuses (libcalico returns an error), then the history compacted: the next watch is a 410.
    server.changeWhileDisconnected(() => {
      server.remove('pods', 'default', 'web-0');
      const recreated = pod('web-0', { node: 'node-b', ip: '10.1.0.7' });
      recreated.metadata.annotations = { 'cni.projectcalico.org/allowedSourcePrefixes': '["10.0.0.1"]' };
      server.upsert('pods', recreated);
      server.upsert('pods', pod('other', { node: 'node-a', ip: '10.1.0.8' }));
    });
    server.endWatches();
    await waitUntil(() => (sink.state.get('weps')?.get(workloadEndpointKey('node-a', 'default', 'other'))?.includes(Buffer.from('10.1.0.8')) ?? false), { clock, stepMs: 250 });
    // Node A's agents no longer hold web-0 (its IP is no longer its), and node B has none yet.
    expect(sink.state.get('weps')?.has(oldKey)).toBe(false);
    expect(sink.state.get('weps')?.has(workloadEndpointKey('node-b', 'default', 'web-0'))).toBe(false);
    expect(await counter(up, 'skipped', { reason: 'projection' })).toBeGreaterThan(0);
  });

  it('after a relist, an object whose projection fails and names no keys without converting keeps its entry', async () => {
    const blocks = { name: 'blocks', resources: [{ resource: 'ipamblocks.crd.projectcalico.org', projection: 'libcalico' }] };
    const { clock, sink, up } = await setup({ customFeeds: [blocks] });
    const block = (cidr: string, seq: number): KubeObject & { metadata: { name: string } } => ({ metadata: { name: 'b1' }, spec: { cidr, allocations: [null], unallocated: [0], attributes: [], sequenceNumber: seq } });
    server.upsert('ipamblocks.crd.projectcalico.org', block('10.9.0.0/26', 1));
    up.start(sink);
    const key = '/calico/ipam/v2/assignment/ipv4/block/10.9.0.0-26';
    await waitUntil(() => sink.status.get('blocks') === 'in-sync' && sink.state.get('blocks')?.has(key) === true, { clock });
    // Its spec turns unreadable while no watch sees it; the relist's projection fails. Nothing
    // names the block's key but its conversion: what it had is kept, as on a watch.
    server.changeWhileDisconnected(() => server.upsert('ipamblocks.crd.projectcalico.org', block('not-a-cidr', 2)));
    server.endWatches();
    await waitUntil(async () => (await counter(up, 'skipped', { reason: 'projection' })) > 0 && server.openWatches === 1, { clock, stepMs: 250 });
    expect(sink.state.get('blocks')?.has(key)).toBe(true);
  });

  it('a live event before a WatchList\'s end whose projection fails keeps the value its initial event gave (the list\'s own), not the state before the list', async () => {
    const blocks = { name: 'blocks', resources: [{ resource: 'ipamblocks.crd.projectcalico.org', projection: 'libcalico' }] };
    const { clock, sink, up } = await setup({ customFeeds: [blocks], watchList: true });
    server.endBookmarkOnTick = true;
    const block = (cidr: string, seq: number): KubeObject & { metadata: { name: string } } => ({ metadata: { name: 'b1' }, spec: { cidr, allocations: [null], unallocated: [0], attributes: [], sequenceNumber: seq } });
    server.upsert('ipamblocks.crd.projectcalico.org', block('10.9.0.0/26', 1));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1, { clock });
    // Before the end bookmark, the block turns unreadable: the first list must still hold it.
    server.upsert('ipamblocks.crd.projectcalico.org', block('not-a-cidr', 2));
    await waitUntil(async () => (await counter(up, 'skipped', { reason: 'projection' })) > 0, { clock, stepMs: 100 });
    server.bookmark();
    const key = '/calico/ipam/v2/assignment/ipv4/block/10.9.0.0-26';
    await waitUntil(() => sink.status.get('blocks') === 'in-sync', { clock });
    expect(sink.state.get('blocks')?.has(key)).toBe(true);
  });

  it('reports a resource stale once no healthy watch was confirmed for upstreamStaleAfterMs', async () => {
    const { clock, sink, up } = await setup({ upstreamStaleAfterMs: 20_000, watchInactivityTimeoutMs: 10_000 });
    server.upsert('pods', pod('a'));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    // An idle open watch stays fresh for as long as it is idle: the watchdog re-watches (a 200
    // confirms health) before the stale age, without backing off.
    let flapped = false;
    await waitUntil(() => {
      flapped ||= up.health()[0]?.stale === true;
      return clock.monotonic() > 600_000;
    }, 'ten virtual minutes', { clock, stepMs: 500, timeoutMs: 700_000 });
    expect(flapped).toBe(false);
    expect(sink.stale.get('pods')).toBe(false);
    expect(await counter(up, 'watchRestarts', { reason: 'watchdog' })).toBeGreaterThan(40);
    // Cut off: every request now fails.
    server.intercept = (_i, req) => {
      req.socket.destroy();
      return true;
    };
    server.endWatches();
    await waitUntil(() => up.health()[0]?.stale === true && sink.stale.get('pods') === true, { clock, stepMs: 500 });
    expect(up.ready()).toBe(false);
    expect((await up.metrics.stale.get()).values[0]?.value).toBe(1);
    server.intercept = undefined;
    await waitUntil(() => up.health()[0]?.stale === false && sink.stale.get('pods') === false, { clock, stepMs: 500 });
    expect(sink.status.get('pods')).toBe('in-sync'); // never went back
  });

  it('never goes back in time: a lagging apiserver (504 too-large RV, or an older list) leads to a consistent relist', async () => {
    const { clock, sink, up } = await setup();
    for (let i = 0; i < 3; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    const appliedRv = server.rv;
    // The HA peer behind the load balancer lags: a NotOlderThan relist times out with 504, then
    // a list comes back older than what we applied (a stale RV=0-style answer).
    let lagging = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch || lagging >= 2) return false;
      lagging++;
      if (info.query.get('resourceVersionMatch') === 'NotOlderThan') {
        res.writeHead(504, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', code: 504, reason: 'Timeout', message: 'Too large resource version', details: { causes: [{ reason: 'ResourceVersionTooLarge' }], retryAfterSeconds: 1 } }));
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(appliedRv - 2) }, items: [] }));
      }
      return true;
    };
    server.changeWhileDisconnected(() => server.upsert('pods', pod('p9', { ip: '10.0.0.99' })));
    server.endWatches();
    await waitUntil(() => lagging === 2 && server.openWatches === 1 && converged(sink), { clock });
    // The stale empty list was never applied: no pod was ever deleted.
    expect(sink.batches.flatMap((b) => b.batch.updates).filter((u) => u.value === null)).toEqual([]);
    expect(await counter(up, 'relists', { reason: 'stale-list' })).toBe(1);
    const lists = server.requests.filter((r) => !r.watch);
    expect(lists.at(-1)?.query).not.toContain('resourceVersion');
  });

  it.each([false, true])('a server stuck behind what was applied (every relist older, every watch 410; WatchList %s) lets the resource go stale', async (watchList) => {
    const { clock, sink, up } = await setup({ watchList });
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && server.openWatches === 1, { clock });
    const appliedRv = server.rv;
    // etcd restored without a revision bump: everything the server answers is older than what we
    // applied. Watches: 410; lists: older; WatchList relists: a 200, the objects, an older end bookmark.
    server.intercept = (info, _req, res) => {
      if (info.watch && info.query.get('sendInitialEvents') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: { ...pod('a', { ip: '10.0.0.1' }), kind: 'Pod', apiVersion: 'v1', metadata: { ...pod('a').metadata, resourceVersion: String(appliedRv - 6) } } })}\n`);
        res.end(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(appliedRv - 5), annotations: { 'k8s.io/initial-events-end': 'true' } } } })}\n`);
        return true;
      }
      res.writeHead(info.watch ? 410 : 200, { 'content-type': 'application/json' });
      res.end(info.watch
        ? JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' })
        : JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(appliedRv - 5) }, items: [] }));
      return true;
    };
    server.endWatches();
    // Every answer comes "in time", yet none is taken: nothing moves, and the feed must say so.
    await waitUntil(() => up.health()[0]?.stale === true && sink.stale.get('pods') === true, { clock, stepMs: 1_000 });
    // One list refused as older; after it, one-item probes say the server is still behind.
    expect(await counter(up, 'relists', { reason: 'stale-list' })).toBeGreaterThanOrEqual(1);
    expect((await up.metrics.revisionProbes.get()).values.find((v) => v.labels.result === 'behind')?.value ?? 0).toBeGreaterThanOrEqual(1);
    // Never applied: nothing was deleted.
    expect(sink.batches.flatMap((b) => b.batch.updates).filter((u) => u.value === null)).toEqual([]);
    server.intercept = undefined;
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => up.health()[0]?.stale === false && converged(sink), { clock, stepMs: 500 });
  });

  it('refuses a paged list whose continue token comes again (no hot loop of page requests)', async () => {
    const { clock, sink, up } = await setup({ listPageSize: 2 });
    for (let i = 0; i < 5; i++) server.upsert('pods', pod(`p${i}`, { ip: `10.0.0.${i + 1}` }));
    let pages = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch) return false;
      pages++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(server.rv), continue: 'same-again' }, items: [] }));
      return true;
    };
    up.start(sink);
    await waitUntil(async () => (await counter(up, 'watchRestarts', { reason: 'malformed' })) >= 1, { clock });
    // The first page and the one that repeated its token: then a backoff, not a third page at once.
    expect(pages).toBe(2);
    server.intercept = undefined;
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && converged(sink), { clock, stepMs: 250 });
    tally.add('paged list whose continue token repeats', 'counted (malformed); the list abandoned, retried after a backoff');
  });

  it('a mass termination with 429 + Retry-After does not become a thundering herd', async () => {
    const { clock, sink, up } = await setup({ feeds: ['felix'], customFeeds: [] });
    up.start(sink);
    await waitUntil(() => sink.status.get('felix') === 'in-sync' && server.openWatches === up.health().length, { clock });
    const reflectors = up.health().length;
    // The watch cache re-initialises: every watch closed, then 60 s of 429 with Retry-After: 10.
    const start = clock.monotonic();
    const before = server.requests.length;
    server.intercept = (_info, _req, res) => {
      if (clock.monotonic() - start >= 60_000) return false;
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '10' });
      res.end(JSON.stringify({ kind: 'Status', code: 429, reason: 'TooManyRequests', message: 'storage is (re)initializing' }));
      return true;
    };
    server.endWatches();
    await waitUntil(() => clock.monotonic() - start >= 60_000, { clock, stepMs: 250, timeoutMs: 120_000 });
    const during = server.requests.length - before;
    // At most one request per 10 s per reflector (plus the first), never a storm.
    expect(during).toBeLessThanOrEqual(reflectors * 7);
    await waitUntil(() => server.openWatches === reflectors, { clock, stepMs: 250 });
    expect(up.ready()).toBe(true);
  });
});

describe('reflector against garbage from the API server', () => {
  /** Answers the next watch with these raw lines (and leaves it open), once. */
  function nextWatchSends(lines: string[]): void {
    server.intercept = (info, _req, res) => {
      if (!info.watch) return false;
      server.intercept = undefined;
      res.writeHead(200, { 'content-type': 'application/json' });
      for (const l of lines) res.write(`${l}\n`);
      return true;
    };
    server.endWatches();
  }
  const event = (type: string, object: unknown): string => JSON.stringify({ type, object });
  const podAt = (name: string, rv: number, ip: string, extra: Record<string, unknown> = {}): KubeObject => {
    const p = pod(name, { ip });
    return { ...p, kind: 'Pod', apiVersion: 'v1', metadata: { ...p.metadata, resourceVersion: String(rv) }, ...extra };
  };

  it('skips an event of the wrong kind and one whose resourceVersion goes backwards, then relists consistently', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    const rv = server.rv;
    nextWatchSends([
      event('ADDED', { kind: 'Node', apiVersion: 'v1', metadata: { name: 'intruder', resourceVersion: String(rv + 1) } }),
      event('ADDED', podAt('fresh', rv + 2, '10.0.0.2')),
      // Older than the event just applied: a stale copy of `a` that must not overwrite it.
      event('MODIFIED', podAt('a', rv - 50, '10.9.9.9')),
    ]);
    // The server's own history moved past the events it streamed (their RVs are real to it).
    server.rv = rv + 2;
    await waitUntil(() => server.openWatches === 1 && server.requests.filter((r) => !r.watch).length >= 2, { clock });
    expect(await counter(up, 'skipped', { reason: 'wrong-kind' })).toBe(1);
    expect(await counter(up, 'skipped', { reason: 'rv-backwards' })).toBe(1);
    expect(await counter(up, 'relists', { reason: 'stale-list' })).toBe(1);
    // The stale `a` (10.9.9.9) was never applied; the relist drops `fresh`, which the server does not hold.
    const applied = sink.batches.flatMap((b) => b.batch.updates).filter((u) => u.key === '/pods/default/a');
    expect(applied).toHaveLength(1);
    await waitUntil(() => converged(sink), { clock });
    expect(sink.state.get('pods')?.has('/pods//intruder')).toBe(false);
    tally.add('event of the wrong kind', 'counted (skipped, wrong-kind)');
    tally.add('resourceVersion that goes backwards', 'counted (skipped, rv-backwards), then one consistent relist');
  });

  it('refuses a list without a resourceVersion (malformed, backing off) and commits none of it', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    let refused = 0;
    server.intercept = (info, _req, res) => {
      if (info.watch || refused > 0) return false;
      refused++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: {}, items: [{ ...pod('ghost', { ip: '10.9.9.9' }), kind: 'Pod', apiVersion: 'v1' }] }));
      return true;
    };
    up.start(sink);
    await waitUntil(async () => (await counter(up, 'watchRestarts', { reason: 'malformed' })) === 1, { clock });
    expect(sink.state.get('pods')?.has('/pods/default/ghost') ?? false).toBe(false);
    await waitUntil(() => sink.status.get('pods') === 'in-sync' && converged(sink), { clock, stepMs: 250 });
    expect(refused).toBe(1);
    tally.add('list without a resourceVersion', 'counted (malformed); nothing committed, listed again after a backoff');
  });

  it('ignores a BOOKMARK older than what was applied: the next watch continues from the newest resourceVersion', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    const rv = server.rv;
    nextWatchSends([
      event('ADDED', podAt('fresh', rv + 2, '10.0.0.2')),
      event('BOOKMARK', { kind: 'Pod', apiVersion: 'v1', metadata: { resourceVersion: String(rv - 50) } }),
    ]);
    server.rv = rv + 2;
    await waitUntil(async () => (await counter(up, 'skipped', { reason: 'bookmark-backwards' })) === 1, { clock });
    // The watch ends; the next one must not replay rv - 50 … rv + 2 over the newer state.
    const watches = (): number => server.requests.filter((r) => r.watch && r.resource === 'pods').length;
    const before = watches();
    server.endWatches();
    await waitUntil(() => watches() > before, { clock });
    const last = server.requests.filter((r) => r.watch && r.resource === 'pods').at(-1);
    expect(new URLSearchParams(last?.query).get('resourceVersion')).toBe(String(rv + 2));
    expect(await counter(up, 'relists', { reason: 'stale-list' })).toBe(0);
    tally.add('BOOKMARK older than the applied resourceVersion', 'ignored, counted (skipped, bookmark-backwards)');
  });

  it('applies a duplicate ADDED as a no-op and handles an enormous object without a crash', async () => {
    const { clock, sink, up } = await setup();
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    const rv = server.rv;
    const huge = podAt('huge', rv + 2, '10.0.0.3', {});
    (huge.metadata as Record<string, unknown>)['annotations'] = { blob: 'z'.repeat(3 * 1024 * 1024) };
    const dup = podAt('dup', rv + 1, '10.0.0.2');
    nextWatchSends([event('ADDED', dup), event('ADDED', { ...dup, metadata: { ...dup.metadata, resourceVersion: String(rv + 1) } }), event('ADDED', huge)]);
    await waitUntil(() => sink.state.get('pods')?.has('/pods/default/huge') === true, { clock });
    expect(sink.batches.flatMap((b) => b.batch.updates).filter((u) => u.key === '/pods/default/dup')).toHaveLength(1);
    // The 3 MiB annotation is not something Felix reads: the projected value stays small.
    expect(sink.state.get('pods')?.get('/pods/default/huge')?.length).toBeLessThan(2_000);
    tally.add('duplicate ADDED', 'applied once (a no-op the second time)');
    tally.add('3 MiB object', 'applied; projected value under 2 KB');
  });

  it('fails a watch whose line never ends before it exhausts memory, and recovers', async () => {
    const { clock, sink, up } = await setup();
    server.upsert('pods', pod('a', { ip: '10.0.0.1' }));
    up.start(sink);
    await waitUntil(() => server.openWatches === 1 && sink.status.get('pods') === 'in-sync', { clock });
    // Every watch gets the endless line until one has failed on it: on a loaded machine the fake
    // clock (advanced while waiting) can end a watch by its own timeout before 16 Mi characters
    // arrived, and that watch proves nothing about the cap.
    let flooding = true;
    server.intercept = (info, _req, res) => {
      if (!info.watch || !flooding) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = 'x'.repeat(1024 * 1024);
      let sent = 0;
      const pump = (): void => {
        // 20 MiB without a newline: above the 16 Mi-character cap; the client gives up first.
        while (sent < 20 && res.write(chunk)) sent++;
        if (sent < 20 && !res.destroyed) res.once('drain', pump);
      };
      res.on('error', () => undefined);
      pump();
      return true;
    };
    server.endWatches();
    await waitUntil(async () => (await counter(up, 'watchRestarts', { reason: 'malformed' })) >= 1, { clock, stepMs: 250, timeoutMs: 1_200_000 });
    flooding = false;
    server.endWatches();
    await waitUntil(() => server.openWatches === 1, { clock, stepMs: 250 });
    tally.add('20 MiB line without a newline', 'watch failed at the 16 Mi-character cap (counted), re-watched');
    server.upsert('pods', pod('b', { ip: '10.0.0.2' }));
    await waitUntil(() => converged(sink), { clock });
  });
});
