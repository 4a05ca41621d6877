/**
 * FeedState and a feed's resources (PROTOCOL.md §8 "A feed's resources"): a resource the
 * feed's definition no longer carries is retired at a snapshot whose WELCOME lists the feed's
 * resources, stays out of the held state's watermarks, is still sent as notBefore, and is held
 * against a server that names it again. Also through the checkpoint.
 */
import { describe, expect, it } from 'vitest';
import { FeedState } from '../../src/client/internal.js';
import { decodeCheckpoint, encodeCheckpoint } from '../../src/client/checkpoint.js';
import { fullDigest, pack } from './helpers/fake-server.js';

const POOLS = 'ippools.crd.projectcalico.org';
const b = (v: unknown): Buffer => pack(v);

function snapshot(fs: FeedState, revision: number, entries: [string, Buffer][], watermarks: Record<string, string>, resources?: string[]) {
  fs.startConnection('snapshot', undefined, resources);
  fs.snapshotBegin(revision, entries.length, 0);
  fs.snapshotChunk(revision, entries);
  return fs.snapshotEnd({ revision, digest: fullDigest(entries), watermarks, status: 'in-sync', stale: false, token: Buffer.from(`t${revision}`) });
}

describe('client units - a feed\'s resources', () => {
  it('retires a resource the WELCOME does not list, offers it only as notBefore, and holds a server that names it again to it', () => {
    const fs = new FeedState('wl');
    expect(snapshot(fs, 4, [['/pods/a', b(1)], ['/pool/p', b(2)]], { pods: '10', [POOLS]: '8' }).kind).toBe('applied');

    // A server of an older kind (no `resources`): the resource it does not name is behind, as always.
    expect(snapshot(fs, 5, [['/pods/a', b(1)]], { pods: '12' })).toMatchObject({ kind: 'behind', behind: [{ resource: POOLS, applied: '8' }] });
    // Listed, but without a watermark (a replica that has not listed it yet): behind too.
    expect(snapshot(fs, 5, [['/pods/a', b(1)]], { pods: '12' }, ['pods', POOLS])).toMatchObject({ kind: 'behind' });
    // A listed resource stays held: pods older than applied is behind even with the list.
    expect(snapshot(fs, 5, [['/pods/a', b(1)]], { pods: '9' }, ['pods'])).toMatchObject({ kind: 'behind', behind: [{ resource: 'pods' }] });
    expect(fs.entries.size).toBe(2);

    // The feed's definition dropped the pools: retired, the state replaced.
    const r = snapshot(fs, 6, [['/pods/a', b(1)]], { pods: '12' }, ['pods']);
    expect(r).toMatchObject({ kind: 'applied', batch: { deletes: ['/pool/p'] } });
    expect(fs.appliedWatermarks).toEqual({ pods: '12' });
    expect(fs.retiredWatermarks).toEqual({ [POOLS]: '8' });
    // The held state's watermarks name pods only (a rebase continues that state); the retired
    // resource goes to the HELLO as notBefore, alone or beside them.
    expect(fs.rebaseWatermarks()).toEqual({ pods: '12' });
    expect(fs.retiredNotBefore()).toEqual({ [POOLS]: '8' });
    expect(fs.notBeforeWatermarks()).toEqual({ pods: '12', [POOLS]: '8' });
    // STATUS on that server: pods only, in sync.
    expect(fs.status({ revision: 6, status: 'in-sync', stale: false, watermarks: { pods: '13' }, digest: fullDigest([['/pods/a', b(1)]]), token: Buffer.from('u6') }).kind).toBe('applied');
    expect(fs.retiredWatermarks).toEqual({ [POOLS]: '8' });

    // A server carrying the pools again, behind what was applied of them: refused, state kept.
    expect(snapshot(fs, 7, [['/pods/a', b(1)]], { pods: '14', [POOLS]: '7' }, ['pods', POOLS])).toMatchObject({ kind: 'behind', behind: [{ resource: POOLS, applied: '8', offered: '7' }] });
    // Even one that does not list its resources (an older server) is held to a retired resource it names.
    expect(snapshot(fs, 7, [['/pods/a', b(1)]], { pods: '14', [POOLS]: '7' })).toMatchObject({ kind: 'behind', behind: [{ resource: POOLS }] });
    expect(fs.retiredWatermarks).toEqual({ [POOLS]: '8' });
    // One at or past it: the resource is back in the held state.
    expect(snapshot(fs, 8, [['/pods/a', b(1)], ['/pool/q', b(3)]], { pods: '14', [POOLS]: '9' }, ['pods', POOLS]).kind).toBe('applied');
    expect(fs.appliedWatermarks).toEqual({ pods: '14', [POOLS]: '9' });
    expect(fs.retiredWatermarks).toEqual({});
    expect(fs.notBeforeWatermarks()).toEqual({ pods: '14', [POOLS]: '9' });
  });

  it('holds every applied resource a snapshot names, listed or not: an unlisted one cannot come back older', () => {
    const fs = new FeedState('wl');
    snapshot(fs, 4, [['/pods/a', b(1)], ['/pool/p', b(2)]], { pods: '10', [POOLS]: '100' });
    // The list lacks the pools, yet the snapshot names them (a server of a mixed definition): older is behind.
    expect(snapshot(fs, 5, [['/pods/a', b(1)], ['/pool/p', b(9)]], { pods: '12', [POOLS]: '50' }, ['pods'])).toMatchObject({ kind: 'behind', behind: [{ resource: POOLS, applied: '100', offered: '50' }] });
    expect(fs.appliedWatermarks).toEqual({ pods: '10', [POOLS]: '100' });
    // Named no older: taken, and the resource stays in the state it is part of.
    expect(snapshot(fs, 6, [['/pods/a', b(1)], ['/pool/p', b(9)]], { pods: '12', [POOLS]: '100' }, ['pods']).kind).toBe('applied');
    expect(fs.appliedWatermarks).toEqual({ pods: '12', [POOLS]: '100' });
    expect(fs.retiredWatermarks).toEqual({});
  });

  it('a resume or rebase WELCOME retires nothing (it continues a state of the same definition)', () => {
    const fs = new FeedState('wl');
    snapshot(fs, 4, [['/pods/a', b(1)]], { pods: '10', [POOLS]: '8' });
    fs.startConnection('resume', undefined, ['pods']);
    const st = fs.status({ revision: 4, status: 'in-sync', stale: false, watermarks: { pods: '11' }, digest: fullDigest([['/pods/a', b(1)]]), token: Buffer.from('u4') });
    expect(st).toMatchObject({ kind: 'behind', behind: [{ resource: POOLS }] });
    expect(fs.retiredWatermarks).toEqual({});
  });

  it('keeps retired watermarks within §8\'s bounds beside the applied ones, dropping retired ones to fit', () => {
    const fs = new FeedState('wl');
    const many = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`r${String(i).padStart(2, '0')}.x`, '5']));
    snapshot(fs, 4, [], many);
    // The new definition carries 10 other resources: 70 would pass the bound of 64.
    const fresh = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`n${i}.y`, '7']));
    expect(snapshot(fs, 5, [], fresh, Object.keys(fresh)).kind).toBe('applied');
    expect(fs.appliedWatermarks).toEqual(fresh);
    expect(Object.keys(fs.retiredWatermarks)).toHaveLength(54);
    // Dropped by name, last first.
    expect(Object.keys(fs.retiredWatermarks).sort().at(-1)).toBe('r53.x');
  });

  it('carries retired watermarks through the checkpoint, and refuses one that retires a resource it holds or passes the bounds', () => {
    const fs = new FeedState('wl');
    snapshot(fs, 4, [['/pods/a', b(1)], ['/pool/p', b(2)]], { pods: '10', [POOLS]: '8' });
    snapshot(fs, 6, [['/pods/a', b(1)]], { pods: '12' }, ['pods']);
    const cp = fs.checkpoint();
    expect(cp?.retired).toEqual({ [POOLS]: '8' });
    const back = decodeCheckpoint(encodeCheckpoint({ node: 'n1', feeds: [cp!] }));
    const restored = new FeedState('wl');
    restored.restore(back.feeds[0]!);
    expect(restored.retiredWatermarks).toEqual({ [POOLS]: '8' });
    expect(restored.notBeforeWatermarks()).toEqual({ pods: '12', [POOLS]: '8' });
    expect(restored.rebaseWatermarks()).toEqual({ pods: '12' });
    // The checkpoint key moves with the retired watermarks too (a keeper writes when they change).
    expect(restored.checkpointKey()).toBe(fs.checkpointKey());

    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return undefined;
    };
    const overlapping = { ...cp!, retired: { pods: '3' } };
    expect(code(() => decodeCheckpoint(encodeCheckpoint({ node: 'n1', feeds: [overlapping] })))).toBe('CATTAIL_CLIENT_CHECKPOINT_INVALID');
    const tooMany = { ...cp!, retired: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`r${i}.x`, '1'])) };
    expect(code(() => decodeCheckpoint(encodeCheckpoint({ node: 'n1', feeds: [tooMany] })))).toBe('CATTAIL_CLIENT_CHECKPOINT_INVALID');
  });
});
