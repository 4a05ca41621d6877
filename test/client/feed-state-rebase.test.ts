/**
 * FeedState and a rebase (PROTOCOL.md §7.1): which watermarks it offers, and how it takes a
 * WELCOME `rebase` (the new replica's revision, an empty catch-up when nothing changed, the digest).
 */
import { describe, expect, it } from 'vitest';
import { FeedState } from '../../src/client/internal.js';
import { FeedView } from '../../src/client/feed-view.js';
import { fullDigest, pack } from './helpers/fake-server.js';

const b = (v: unknown): Buffer => pack(v);

function synced(entries: [string, Buffer][], watermarks: Record<string, string>): FeedState {
  const fs = new FeedState('felix');
  fs.snapshotBegin(4, entries.length, 0);
  fs.snapshotChunk(4, entries);
  fs.snapshotEnd({ revision: 4, digest: fullDigest(entries), watermarks, status: 'in-sync', stale: false, token: Buffer.from('t4') });
  return fs;
}

describe('client units - rebase', () => {
  it('counts the skips in its history: a resync after the first load, a unit deleting keys it did not hold', () => {
    const fs = synced([['a', b(1)]], { pods: '10' });
    expect(fs.historySkips).toBe(0);
    // Ordinary units: no skip.
    fs.deltaFrame(4, 5, false, [['b', b(2)]], ['a']);
    expect(fs.historySkips).toBe(0);
    // A compacted unit carrying the tombstone of a key created and deleted after what we held.
    expect(fs.deltaFrame(5, 7, false, [], ['gone'])).toBeUndefined();
    expect(fs.historySkips).toBe(1);
    // A resync, even one that changes nothing.
    fs.startConnection('snapshot');
    fs.snapshotBegin(9, 1, 0);
    fs.snapshotChunk(9, [['b', b(2)]]);
    fs.snapshotEnd({ revision: 9, digest: fullDigest([['b', b(2)]]), watermarks: { pods: '12' }, status: 'in-sync', stale: false, token: Buffer.from('t9') });
    expect(fs.historySkips).toBe(2);
  });

  it('offers its watermarks only while they describe the held state', () => {
    const fs = synced([['a', b(1)]], { pods: '10' });
    expect(fs.rebaseWatermarks()).toEqual({ pods: '10' });
    // A DELTA after the last STATUS moves the state past the watermarks.
    fs.deltaFrame(4, 5, false, [['b', b(2)]], []);
    expect(fs.rebaseWatermarks()).toBeUndefined();
    const st = fs.status({ revision: 5, status: 'in-sync', stale: false, watermarks: { pods: '11' }, digest: fullDigest([['a', b(1)], ['b', b(2)]]), token: Buffer.from('t5') });
    expect(st.kind).toBe('applied');
    expect(fs.rebaseWatermarks()).toEqual({ pods: '11' });
    fs.dropToken();
    expect(fs.rebaseWatermarks()).toBeUndefined();
    expect(synced([['a', b(1)]], {}).rebaseWatermarks()).toBeUndefined();
  });

  it('adopts the rebase revision, accepts an empty catch-up from it, and checks the digest after it', () => {
    const entries: [string, Buffer][] = [['a', b(1)], ['b', b(2)]];
    const fs = synced(entries, { pods: '10' });
    fs.startConnection('rebase', 900);
    // The held revision stays the old replica's until the rebase's DELTA is applied.
    expect(fs.revision).toBe(4);
    expect(fs.deltaFrame(900, 900, false, [], [])).toBeUndefined();
    expect(fs.revision).toBe(900);
    expect(fs.status({ revision: 900, status: 'in-sync', stale: false, watermarks: { pods: '10' }, digest: fullDigest(entries), token: Buffer.from('u900') }).kind).toBe('applied');
    // A later empty DELTA outside a catch-up is still a gap.
    expect(() => fs.deltaFrame(900, 900, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REVISION_GAP' }));
    // A rebase the new replica cannot back: the digest says so.
    fs.startConnection('rebase', 40);
    fs.deltaFrame(40, 41, false, [['c', b(3)]], []);
    expect(() => fs.status({ revision: 41, status: 'in-sync', stale: false, watermarks: { pods: '12' }, digest: fullDigest([['c', b(3)]]), token: Buffer.from('u41') })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }),
    );
  });

  it('refuses watermarks that together name more than MAX_WATERMARKS resources, before changing anything', () => {
    const fs = synced([['a', b(1)]], { pods: '10' });
    const names = (from: number, n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`r${from + i}`, '1']));
    // Each STATUS stays within the codec's bound; the union (never forgotten) would not.
    expect(fs.status({ revision: 4, status: 'resyncing', stale: false, watermarks: { pods: '10', ...names(0, 40) }, token: Buffer.from('t4') }).kind).toBe('applied');
    const before = fs.rebaseWatermarks();
    expect(Object.keys(before ?? {}).length).toBe(41);
    expect(() => fs.status({ revision: 4, status: 'resyncing', stale: false, watermarks: { pods: '11', ...names(40, 30) }, token: Buffer.from('t4b') })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }),
    );
    expect(fs.rebaseWatermarks()).toEqual(before);
    // Or more bytes than MAX_WATERMARKS_BYTES together (long ids, few of them).
    const long = (from: number, n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${from + i}${'x'.repeat(200)}`, '1']));
    expect(() => fs.status({ revision: 4, status: 'resyncing', stale: false, watermarks: { pods: '11', ...long(0, 15) }, token: Buffer.from('t4c') })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }),
    );
    expect(fs.status({ revision: 4, status: 'in-sync', stale: false, watermarks: { pods: '12', ...names(0, 40) }, token: Buffer.from('t4d'), digest: fullDigest([['a', b(1)]]) }).kind).toBe('applied');
    // A snapshot's watermarks are held to the same bound, and a refused snapshot leaves the state.
    fs.snapshotBegin(5, 1, 0);
    fs.snapshotChunk(5, [['z', b(9)]]);
    expect(() => fs.snapshotEnd({ revision: 5, digest: fullDigest([['z', b(9)]]), watermarks: { pods: '13', ...names(0, 40), ...names(500, 30) }, status: 'in-sync', stale: false, token: Buffer.from('t5') })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR' }),
    );
    expect(fs.revision).toBe(4);
    expect([...fs.entries.keys()]).toEqual(['a']);
  });

  it('a snapshot cut off before its END leaves state, revision and token: the token\'s replica resumes it', () => {
    const entries: [string, Buffer][] = [['a', b(1)], ['b', b(2)]];
    const fs = synced(entries, { pods: '10' });
    // Another replica answers with a snapshot; the connection is lost in the middle of it.
    fs.startConnection('snapshot');
    fs.snapshotBegin(70, 3, 0);
    fs.snapshotChunk(70, [['x', b(9)]]);
    expect(fs.revision).toBe(4);
    expect(fs.checkpoint()?.revision).toBe(4);
    // Back on the token's replica: its catch-up from 4 applies (it was a revision gap, 4014).
    fs.startConnection('resume');
    expect(fs.deltaFrame(4, 6, false, [['c', b(3)]], [])).toMatchObject({ revision: 6 });
    expect([...fs.entries.keys()].sort()).toEqual(['a', 'b', 'c']);
  });

  it('a rebase cut off before its DELTA is not compared with the new replica\'s numbering on a later resume', () => {
    const fs = synced([['a', b(1)]], { pods: '10' });
    fs.deltaFrame(4, 7, false, [['b', b(2)]], []);
    fs.status({ revision: 7, status: 'in-sync', stale: false, watermarks: { pods: '11' }, digest: fullDigest([['a', b(1)], ['b', b(2)]]), token: Buffer.from('t7') });
    // The new replica's revisions are lower than ours: 3 says nothing about our 7.
    fs.startConnection('rebase', 3);
    fs.startConnection('resume');
    expect(fs.deltaFrame(7, 8, false, [['c', b(3)]], [])).toMatchObject({ revision: 8 });
  });

  it('drops the old replica\'s token once a rebase DELTA is applied, until the new replica\'s STATUS brings its own', () => {
    const entries: [string, Buffer][] = [['a', b(1)]];
    const fs = synced(entries, { pods: '10' });
    fs.startConnection('rebase', 900);
    fs.deltaFrame(900, 901, false, [['b', b(2)]], []);
    // Lost here, the next HELLO must not present the old token for a state that is not its own,
    // and no checkpoint may be taken of it (nothing verified it in this replica's numbering).
    expect(fs.token).toBeUndefined();
    expect(fs.verifiedRevision).toBeUndefined();
    expect(fs.rebaseWatermarks()).toBeUndefined();
    expect(fs.notBeforeWatermarks()).toEqual({ pods: '10' });
    fs.status({ revision: 901, status: 'in-sync', stale: false, watermarks: { pods: '12' }, digest: fullDigest([['a', b(1)], ['b', b(2)]]), token: Buffer.from('u901') });
    expect(fs.token?.toString()).toBe('u901');
  });

  it('a frozen copy of a view (what a dump writes from) keeps one state while units are applied', () => {
    const fs = synced([['a', b(1)], ['c', b(3)]], { pods: '10' });
    const view = new FeedView(fs, () => undefined as never, (x) => x.toString('hex'));
    const frozen = view.frozen();
    fs.deltaFrame(4, 5, false, [['b', b(2)], ['c', b(4)]], ['a']);
    expect(frozen.entries.map(([k, v]) => [k, frozen.decode(v)])).toEqual([['a', b(1).toString('hex')], ['c', b(3).toString('hex')]]);
    expect([...view.keys()].sort()).toEqual(['b', 'c']);
  });
});
