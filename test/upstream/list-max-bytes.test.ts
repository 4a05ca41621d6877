/**
 * The byte cap on upstream LIST bodies (upstreamListMaxBytes, src/server/upstream/list.ts): a page
 * above it ends that request with CATTAIL_UPSTREAM_LIST_TOO_LARGE, never the process; the read
 * stops at the cap; the reflector halves the resource's page size and lists again, and restores
 * it once a list succeeded.
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { LIST_PAGE_KEEP_MS } from '../../src/server/upstream/reflector-core.js';
import { FakeClock } from '../../src/clock.js';
import { createLogger } from '../../src/log.js';
import type { UpstreamHandle, UpstreamOptions } from '../../src/server/upstream/index.js';
import { UpstreamFailure } from '../../src/server/upstream/failure.js';
import { readBody, Watchdog } from '../../src/server/upstream/stream.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';
import { upstreamOnFakeApi } from '../support/upstream.js';
import { waitUntil } from '../support/wait.js';
import { customFeed, expectedState, pod, RecordingSink, sameState } from './helpers.js';

const PODS_FEED = { name: 'pods', resources: [{ resource: 'pods' }] };
const podsFeed = customFeed(PODS_FEED);
const CAP = 2 * 1024 * 1024; // the option's minimum
const PAD = 400 * 1024; // per pod: 8 pods (3.2 MB) are above the cap, 4 (1.6 MB) below

let server: FakeApiServer;
type LogLine = { level: number; msg: string; code?: string; pageSize?: number };

async function setup(opts: Partial<UpstreamOptions> = {}): Promise<{ clock: FakeClock; sink: RecordingSink; up: UpstreamHandle; logs: LogLine[] }> {
  const logs: LogLine[] = [];
  const logger = createLogger('info', 'test', { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const started = await upstreamOnFakeApi({ customFeeds: [PODS_FEED], random: () => 0, watchList: false, logger, upstreamListMaxBytes: CAP, ...opts });
  server = started.server;
  return { clock: started.clock, sink: new RecordingSink(), up: started.up, logs };
}

const objects = (id: string): KubeObject[] => [...(server.store.get(id)?.values() ?? [])];
const converged = (sink: RecordingSink): boolean => sameState(sink.state.get('pods'), expectedState(podsFeed, objects));
const metric = async (up: UpstreamHandle, name: 'listTooLarge' | 'listPageSize'): Promise<number> => (await up.metrics[name].get()).values.reduce((n, v) => n + v.value, 0);
const listLimits = (): number[] => server.requests.filter((r) => !r.watch).map((r) => Number(new URLSearchParams(r.query).get('limit')));

function bigPod(name: string, ip: string): KubeObject & { metadata: { name: string } } {
  const p = pod(name, { ip });
  return { ...p, metadata: { ...p.metadata, annotations: { padding: name.padEnd(PAD, 'x') } } };
}

describe('upstream LIST byte cap (upstreamListMaxBytes)', () => {
  it('ends a page above the cap with CATTAIL_UPSTREAM_LIST_TOO_LARGE, halves the page size, lists everything, and restores the size', async () => {
    const { clock, sink, up, logs } = await setup({ listPageSize: 8 });
    for (let i = 0; i < 12; i++) server.upsert('pods', bigPod(`p${String(i).padStart(2, '0')}`, `10.0.0.${i + 1}`));
    up.start(sink);
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    expect(converged(sink)).toBe(true);
    expect(sink.state.get('pods')?.size).toBe(12);
    // 8 items: too large; then 4 per page (3 pages) succeed.
    expect(listLimits()).toEqual([8, 4, 4, 4]);
    expect(await metric(up, 'listTooLarge')).toBe(1);
    const halved = logs.find((l) => l.code === 'CATTAIL_UPSTREAM_LIST_TOO_LARGE');
    expect(halved).toMatchObject({ pageSize: 4 });
    expect(logs.some((l) => /next list uses listPageSize again/.test(l.msg))).toBe(false);
    expect(up.health()[0]).toMatchObject({ synced: true, stale: false });

    // Kept: a relist within the hour (after an expired watch) asks for 4 at once, reads nothing
    // above the cap, and converges with the change made meanwhile.
    server.changeWhileDisconnected(() => server.upsert('pods', bigPod('p99', '10.0.1.1')));
    server.endWatches();
    await waitUntil(() => listLimits().length >= 5 && converged(sink), { clock });
    expect(listLimits()[4]).toBe(4);
    expect(await metric(up, 'listTooLarge')).toBe(1);
    expect(sink.state.get('pods')?.size).toBe(13);

    // An hour after the last too-large body, a list that succeeds puts listPageSize back.
    await clock.advanceAsync(LIST_PAGE_KEEP_MS);
    const before = listLimits().length;
    server.changeWhileDisconnected(() => server.upsert('pods', bigPod('p98', '10.0.1.2')));
    server.endWatches();
    await waitUntil(() => listLimits().length > before && converged(sink), { clock });
    expect(logs.some((l) => /next list uses listPageSize again/.test(l.msg))).toBe(true);
    const after = listLimits().length;
    server.changeWhileDisconnected(() => server.upsert('pods', bigPod('p97', '10.0.1.3')));
    server.endWatches();
    await waitUntil(() => listLimits().length > after, { clock });
    expect(listLimits()[after]).toBe(8);
  });

  it('stops reading at the cap when the server ignores limit, and keeps the replica up, unsynced and retrying', async () => {
    const { clock, sink, up, logs } = await setup({ listPageSize: 4 });
    server.upsert('pods', pod('a'));
    // One endless-looking body (64 MiB, chunked), whatever the limit: the cap must end the read.
    const total = 64 * 1024 * 1024;
    const sent: number[] = [];
    server.intercept = (info, _req, res) => {
      if (info.watch) return false;
      const i = sent.push(0) - 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(256 * 1024, ' ');
      const pump = (): void => {
        while ((sent[i] as number) < total) {
          sent[i] = (sent[i] as number) + chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end('{"items":[]}');
      };
      res.on('error', () => undefined);
      pump();
      return true;
    };
    up.start(sink);
    await waitUntil(() => sent.length >= 4, { clock });
    // Page sizes 4, 2, 1, then 1 again (at the floor: backoff, an error line).
    expect(listLimits().slice(0, 4)).toEqual([4, 2, 1, 1]);
    await waitUntil(() => logs.some((l) => l.level >= 50 && l.code === 'CATTAIL_UPSTREAM_LIST_TOO_LARGE'), { clock });
    // Each read stopped at the cap: the server never got to write the whole body.
    for (const n of sent.slice(0, 3)) expect(n).toBeLessThan(total / 4);
    expect(await metric(up, 'listTooLarge')).toBeGreaterThanOrEqual(3);
    expect(await metric(up, 'listPageSize')).toBe(1);
    expect(up.health()[0]).toMatchObject({ synced: false });
    expect(up.ready()).toBe(false);
    // The server behaves again: the list goes through (at one item per page) and the size is restored.
    server.intercept = undefined;
    await waitUntil(() => sink.status.get('pods') === 'in-sync', { clock });
    expect(converged(sink)).toBe(true);
  });

  it('a body whose text cannot be built (above V8\'s largest string) rejects the read, coded; nothing throws out of the stream handler', async () => {
    const res = Object.assign(new PassThrough(), { headers: {} }) as unknown as IncomingMessage & PassThrough;
    const watchdog = new Watchdog(new FakeClock(), 60_000, () => undefined);
    // What Buffer#toString throws for a body above ~512 Mi characters, without allocating one.
    const tooLong = Object.assign(new Error('Cannot create a string longer than 0x1fffffe8 characters'), { code: 'ERR_STRING_TOO_LONG' });
    const spy = vi.spyOn(Buffer.prototype, 'toString').mockImplementationOnce(() => {
      throw tooLong;
    });
    try {
      const read = readBody(res, watchdog, new AbortController().signal, CAP, () => new UpstreamFailure('body-too-large', 'unused'));
      res.end(Buffer.from('{"items":[]}'));
      const err = await read.then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(UpstreamFailure);
      expect(err).toMatchObject({ code: 'CATTAIL_UPSTREAM_LIST_TOO_LARGE', kind: 'body-too-large', cause: tooLong });
      expect(res.destroyed).toBe(true);
    } finally {
      spy.mockRestore();
      watchdog.cancel();
    }
  });
});
