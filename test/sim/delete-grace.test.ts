/**
 * HTTP DELETE of a pod with `podDeleteGraceMs`: MODIFIED with deletionTimestamp first, DELETED
 * after the grace (clock time); `gracePeriodSeconds=0` and the default (0) delete at once.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { RawWatch, type Loose } from './helpers.js';
import { simFixture } from '../support/sim.js';

const { start, track } = simFixture();

const pod = (name: string): Loose => ({ metadata: { name, namespace: 'default' }, spec: { containers: [] } });

describe('sim graceful pod DELETE', () => {
  it('marks, then deletes after the grace; gracePeriodSeconds=0 is immediate; a recreated pod is not deleted by the old timer', async () => {
    const clock = new FakeClock();
    const s = await start({ clock, podDeleteGraceMs: 5_000 });
    s.admin.create('pods', pod('a'));
    s.admin.create('pods', pod('b'));
    const w = await RawWatch.open(`${s.url}/api/v1/namespaces/default/pods?watch=true&resourceVersion=${s.admin.currentRv()}`);
    track(w);
    const del = await fetch(`${s.url}/api/v1/namespaces/default/pods/a`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as Loose).metadata.deletionTimestamp).toBe('2026-01-01T00:00:00Z');
    expect((await fetch(`${s.url}/api/v1/namespaces/default/pods/b?gracePeriodSeconds=0`, { method: 'DELETE' })).status).toBe(200);
    await w.until(() => w.events.length === 2);
    expect(w.events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['MODIFIED a', 'DELETED b']);
    clock.advance(5_000);
    await w.until(() => w.events.length === 3);
    expect(w.events[2]?.type).toBe('DELETED');
    expect(s.admin.get('pods', 'default', 'a')).toBeUndefined();

    s.admin.create('pods', pod('c'));
    await fetch(`${s.url}/api/v1/namespaces/default/pods/c`, { method: 'DELETE' });
    s.admin.delete('pods', 'default', 'c');
    s.admin.create('pods', pod('c')); // same name, not terminating
    clock.advance(5_000);
    expect(s.admin.get('pods', 'default', 'c')).toBeDefined();
  });
});
