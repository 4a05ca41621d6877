/**
 * Per-request faults (DESIGN.md "Simulated API server", part 2): each one happens when asked, shows
 * in `faults` by kind, and does not touch a request it was not aimed at.
 */
import { describe, expect, it } from 'vitest';
import { startSim, type FaultRule, type Sim } from '../../src/sim/index.js';
import { getJson, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';
import { RawConn } from './raw-conn.js';

const { start, track } = simFixture({ nodes: 2, podsPerNode: 3, seed: 11 });

async function watch(s: Sim, client: string, path = `/api/v1/pods?watch=true&resourceVersion=${s.admin.currentRv()}`): Promise<RawConn> {
  const c = await RawConn.open(s.port, path, { 'X-Client-Id': client });
  track(c);
  return c;
}

let seq = 0;
function newPod(s: Sim): void {
  s.admin.create('pods', { metadata: { name: `p-${++seq}`, namespace: 'default' }, spec: { containers: [] } });
}

/** Opens a faulted and a control watch, makes `events` pods, and returns both once settled. */
async function faultedWatch(rule: Omit<FaultRule, 'clientId'>, events: number, settled: (c: RawConn) => boolean): Promise<{ s: Sim; bad: RawConn; good: RawConn }> {
  const s = await start();
  expect(s.admin.counters().faults).toEqual({});
  s.faults.add({ ...rule, clientId: 'victim' });
  const bad = await watch(s, 'victim');
  const good = await watch(s, 'bystander');
  if (rule.kind !== 'no_headers') await bad.until(() => bad.parsed().status === 200, 'headers');
  // One at a time: a client reads each line before the next (an RST drops unread data on Linux).
  for (let i = 0; i < events; i++) {
    newPod(s);
    await good.until(() => good.parsed().lines.length === i + 1, 'control event');
  }
  await bad.until(() => settled(bad), `${rule.kind} to show`);
  await good.until(() => good.parsed().lines.length === events, 'control events');
  expect(good.closed).toBe(false);
  expect(s.admin.counters().faults).toEqual({ [rule.kind]: 1 });
  return { s, bad, good };
}

describe('sim faults: watch streams', () => {
  it('reset: a TCP RST after N events, no terminating chunk', async () => {
    const { s, bad } = await faultedWatch({ kind: 'reset', afterEvents: 1 }, 2, (c) => c.closed);
    expect(bad.reset).toBe(true);
    expect(bad.parsed().lines.length).toBe(1);
    expect(bad.parsed().terminated).toBe(false);
    expect(s.admin.counters().watchesClosed).toMatchObject({ 'pods,fault': 1 });
  });

  it('reset_mid_line: half a JSON line, then a TCP RST', async () => {
    const { bad } = await faultedWatch({ kind: 'reset_mid_line', afterEvents: 1 }, 2, (c) => c.closed);
    expect(bad.reset).toBe(true);
    const { body, terminated } = bad.parsed();
    expect(terminated).toBe(false);
    const [first, partial] = body.split('\n');
    expect(JSON.parse(first as string).type).toBe('ADDED');
    expect(partial?.length).toBeGreaterThan(0);
    expect(() => JSON.parse(partial as string)).toThrow();
  });

  it('fin_no_terminator: a FIN without the terminating chunk', async () => {
    const { bad } = await faultedWatch({ kind: 'fin_no_terminator', afterEvents: 1 }, 2, (c) => c.closed);
    expect(bad.fin).toBe(true);
    expect(bad.reset).toBe(false);
    expect(bad.parsed().lines.length).toBe(1);
    expect(bad.parsed().terminated).toBe(false);
  });

  it('blackhole: 200 headers, then silence while others get events', async () => {
    const { bad } = await faultedWatch({ kind: 'blackhole' }, 2, (c) => c.parsed().status === 200);
    expect(bad.parsed().body).toBe('');
    expect(bad.closed).toBe(false);
  });

  it('no_headers: the request is never answered, while others get events', async () => {
    const { bad } = await faultedWatch({ kind: 'no_headers' }, 2, () => true);
    expect(bad.raw()).toBe('');
    expect(bad.closed).toBe(false);
  });

  it('close_after_headers: a clean empty stream, repeatedly (times), then normal watches again', async () => {
    const s = await start();
    s.faults.add({ kind: 'close_after_headers', clientId: 'looper', times: 3 });
    for (let i = 0; i < 3; i++) {
      const c = await watch(s, 'looper');
      await c.until(() => c.parsed().terminated, 'clean end');
      expect(c.parsed()).toMatchObject({ status: 200, body: '', terminated: true });
    }
    const ok = await watch(s, 'looper');
    newPod(s);
    await ok.until(() => ok.parsed().lines.length === 1, 'a normal watch');
    expect(s.admin.counters().faults).toEqual({ close_after_headers: 3 });
    expect(s.faults.rules()).toEqual([]);
  });

  for (const [kind, code, reason] of [
    ['error_500', 500, 'InternalError'],
    ['error_504', 504, 'Timeout'],
    ['error_410', 410, 'Expired'],
  ] as const) {
    it(`${kind}: an in-stream ERROR ${code}, then a clean close`, async () => {
      const { bad } = await faultedWatch({ kind, afterEvents: 1 }, 2, (c) => c.parsed().terminated);
      const lines = bad.parsed().lines.map((l) => JSON.parse(l) as Loose);
      expect(lines.map((l) => l.type)).toEqual(['ADDED', 'ERROR']);
      expect(lines[1].object).toMatchObject({ kind: 'Status', code, reason });
    });
  }

  it('error_410_keep_open: the ERROR 410 arrives and the stream goes on', async () => {
    const { bad } = await faultedWatch({ kind: 'error_410_keep_open', afterEvents: 1 }, 3, (c) => c.parsed().lines.length === 4);
    expect(bad.parsed().lines.map((l) => (JSON.parse(l) as Loose).type)).toEqual(['ADDED', 'ERROR', 'ADDED', 'ADDED']);
    expect(bad.parsed().terminated).toBe(false);
  });

  it('malformed_json: one line that is not JSON, then valid events', async () => {
    const { bad } = await faultedWatch({ kind: 'malformed_json', afterEvents: 1 }, 2, (c) => c.parsed().lines.length === 3);
    const lines = bad.parsed().lines;
    expect(() => JSON.parse(lines[1] as string)).toThrow();
    expect((JSON.parse(lines[2] as string) as Loose).type).toBe('ADDED');
  });

  it('http_410, unauthorized, forbidden: HTTP statuses on list and watch, per resource', async () => {
    const s = await start();
    const cases = [
      ['http_410', 410, 'Expired'],
      ['unauthorized', 401, 'Unauthorized'],
      ['forbidden', 403, 'Forbidden'],
    ] as const;
    for (const [kind, code, reason] of cases) {
      const id = s.faults.add({ kind, resource: 'pods' });
      for (const q of ['', '?watch=true']) {
        const r = await getJson(`${s.url}/api/v1/pods${q}`);
        expect(r.status, `${kind} ${q}`).toBe(code);
        expect(r.body).toMatchObject({ kind: 'Status', code, reason });
      }
      expect((await getJson(`${s.url}/api/v1/nodes`)).status).toBe(200); // other resources untouched
      s.faults.remove(id);
    }
    expect((await getJson(`${s.url}/api/v1/pods`)).status).toBe(200);
    expect(s.admin.counters().faults).toEqual({ http_410: 2, unauthorized: 2, forbidden: 2 });
    expect(s.admin.counters().status410).toEqual({ http: 2 });
  });

  it('selection by User-Agent (no X-Client-Id) and by probability, reproducible from the seed', async () => {
    const statuses = async (): Promise<number[]> => {
      const s = await startSim({ seed: 21 });
      try {
        s.faults.add({ kind: 'unauthorized', clientId: 'kubectl/v1.34' });
        expect((await fetch(`${s.url}/api/v1/pods`, { headers: { 'user-agent': 'kubectl/v1.34' } })).status).toBe(401);
        expect((await fetch(`${s.url}/api/v1/pods`, { headers: { 'user-agent': 'other/1.0' } })).status).toBe(200);
        s.faults.clear();
        s.faults.add({ kind: 'forbidden', verb: 'LIST', probability: 0.5 });
        const out: number[] = [];
        for (let i = 0; i < 40; i++) out.push((await fetch(`${s.url}/api/v1/namespaces`)).status);
        expect(s.admin.counters().faults).toEqual({ unauthorized: 1, forbidden: out.filter((x) => x === 403).length });
        return out;
      } finally {
        await s.close();
      }
    };
    const a = await statuses();
    expect(a.filter((x) => x === 403).length).toBeGreaterThan(5);
    expect(a.filter((x) => x === 200).length).toBeGreaterThan(5);
    expect(await statuses()).toEqual(a);
  });

  it('expire_continue: 410 Expired with a fresh continue token that still works', async () => {
    const s = await start();
    const first = await getJson(`${s.url}/api/v1/pods?limit=2`);
    const token = first.body.metadata.continue as string;
    s.faults.add({ kind: 'expire_continue', times: 1 });
    s.admin.create('namespaces', { metadata: { name: 'moves-the-rv' } });
    expect((await getJson(`${s.url}/api/v1/pods?limit=2`)).status).toBe(200); // no continue: not affected
    const gone = await getJson(`${s.url}/api/v1/pods?limit=2&continue=${token}`);
    expect(gone.status).toBe(410);
    expect(gone.body).toMatchObject({ reason: 'Expired', code: 410 });
    const fresh = gone.body.metadata.continue as string;
    expect(fresh).not.toBe(token);
    const next = await getJson(`${s.url}/api/v1/pods?limit=2&continue=${fresh}`);
    expect(next.status).toBe(200);
    expect(next.body.items.map((p: Loose) => p.metadata.name)).toEqual(s.admin.list('pods').slice(2, 4).map((p: Loose) => p.metadata.name));
    expect(s.admin.counters().faults).toEqual({ expire_continue: 1 });
    expect(s.admin.counters().continueExpired).toBe(1);
  });

  it('largeObject: a ~1.5 MB object goes through list, get and watch', async () => {
    const s = await start();
    const w = await watch(s, 'big');
    const o = s.faults.largeObject();
    await w.until(() => w.parsed().lines.length === 1, 'the large event', 10_000);
    expect(w.parsed().lines[0]?.length).toBeGreaterThan(1_500_000);
    const got = await fetch(`${s.url}/api/v1/namespaces/default/pods/${(o as Loose).metadata.name}`);
    expect((await got.text()).length).toBeGreaterThan(1_500_000);
    expect(s.admin.counters().faults).toEqual({ large_object: 1 });
  });
});
