import fc from 'fast-check';
import { compareResourceVersions } from '../../proto/index.js';
import { describe, expect, it } from 'vitest';
import {
  AsyncQueue,
  EndpointRotation,
  FeedState,
  IncrementalDigest,
  LocalCloseError,
  behindResources,
  connect,
  resolveOptions,
} from '../../src/client/internal.js';
import { fullDigest, pack } from './helpers/fake-server.js';

const b = (v: unknown): Buffer => pack(v);

function end(fs: FeedState, revision: number, entries: [string, Buffer][], watermarks: Record<string, string> = {}, status: 'in-sync' | 'resyncing' = 'in-sync') {
  return fs.snapshotEnd({ revision, digest: fullDigest(entries), watermarks, status, stale: false, token: Buffer.from(`t${revision}`) });
}

function snapshot(fs: FeedState, revision: number, entries: [string, Buffer][], watermarks: Record<string, string> = {}) {
  fs.snapshotBegin(revision, entries.length, 0);
  fs.snapshotChunk(revision, entries);
  return end(fs, revision, entries, watermarks);
}

describe('client units - digest', () => {
  it('the incremental digest equals the from-scratch PROTOCOL.md §10 digest under any inserts, replaces and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'é/x', ''), fc.option(fc.uint8Array({ maxLength: 8 }), { nil: undefined })), { maxLength: 40 }), (ops) => {
        const d = new IncrementalDigest();
        const state = new Map<string, Buffer>();
        for (const [k, v] of ops) {
          const old = state.get(k);
          if (old !== undefined) d.remove(k, old);
          if (v === undefined) state.delete(k);
          else {
            state.set(k, Buffer.from(v));
            d.add(k, Buffer.from(v));
          }
        }
        expect(d.digest().equals(fullDigest(state))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('the empty state hashes to SHA-256 of 2,048 zero bytes, truncated', () => {
    expect(new IncrementalDigest().digest().toString('hex')).toBe(fullDigest([]).toString('hex'));
    expect(new IncrementalDigest().digest().toString('hex')).toBe('e5a00aa9991ac8a5');
  });
});

describe('client units - feed state', () => {
  it('reconciles a snapshot after a gap: deletions for vanished keys, nothing for unchanged ones', () => {
    const fs = new FeedState('felix');
    const first = snapshot(fs, 5, [['a', b(1)], ['b', b(2)], ['c', b(3)]]);
    expect(first.kind === 'applied' && first.batch?.upserts.map(([k]) => k)).toEqual(['a', 'b', 'c']);
    fs.startConnection('snapshot');
    const second = snapshot(fs, 2, [['a', b(1)], ['c', b(30)], ['d', b(4)]]);
    expect(second.kind).toBe('applied');
    if (second.kind !== 'applied') return;
    expect(second.batch?.upserts.map(([k]) => k)).toEqual(['c', 'd']);
    expect(second.batch?.deletes).toEqual(['b']);
    expect(fs.revision).toBe(2);
    const third = snapshot(fs, 3, [['a', b(1)], ['c', b(30)], ['d', b(4)]]);
    expect(third.kind === 'applied' && third.batch).toBeUndefined();
  });

  it('refuses a snapshot with a wrong entry count or digest, and keeps the state', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)]]);
    fs.snapshotBegin(2, 2, 0);
    fs.snapshotChunk(2, [['a', b(9)]]);
    expect(() => end(fs, 2, [['a', b(9)]])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }));
    fs.snapshotBegin(2, 1, 0);
    fs.snapshotChunk(2, [['a', b(9)]]);
    expect(() => fs.snapshotEnd({ revision: 2, digest: Buffer.alloc(8), watermarks: {}, status: 'in-sync', stale: false, token: Buffer.alloc(1) })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }),
    );
    expect(fs.entries.get('a')).toEqual(b(1));
    expect(fs.revision).toBe(1);
    // More keys than announced: refused at the chunk that passes the count, not at END.
    fs.snapshotBegin(3, 2, 0);
    fs.snapshotChunk(3, [['x', b(1)], ['y', b(2)]]);
    expect(() => fs.snapshotChunk(3, [['z', b(3)]])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }));
    expect(fs.snapshotProgress).toBeUndefined();
    expect(fs.entries.get('a')).toEqual(b(1));
    expect(fs.revision).toBe(1);
  });

  it('marks a refused incoming snapshot snapshotOnly (the held state and its token stay), unless a repair found the held state wrong', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)]]);
    const token = fs.token;
    fs.startConnection('snapshot');
    fs.snapshotBegin(2, 1, 0);
    fs.snapshotChunk(2, [['a', b(9)]]);
    expect(() => fs.snapshotEnd({ revision: 2, digest: Buffer.alloc(8), watermarks: {}, status: 'in-sync', stale: false, token: Buffer.alloc(1) })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH', details: expect.objectContaining({ snapshotOnly: true }) }),
    );
    fs.snapshotBegin(2, 2, 0);
    fs.snapshotChunk(2, [['a', b(9)]]);
    expect(() => end(fs, 2, [['a', b(9)]])).toThrow(expect.objectContaining({ details: expect.objectContaining({ snapshotOnly: true }) }));
    fs.snapshotBegin(2, 1, 0);
    expect(() => fs.snapshotChunk(2, [['a', b(9)], ['b', b(9)]])).toThrow(expect.objectContaining({ details: expect.objectContaining({ snapshotOnly: true }) }));
    expect(fs.token).toBe(token);
    expect(fs.verifiedRevision).toBe(1);
    // A STATUS found the held state wrong and asked for a range repair; the server answers with an
    // in-band snapshot that fails its check: the held state is still known wrong.
    fs.startConnection('resume');
    fs.canRepair = true;
    expect(fs.status({ revision: 1, status: 'in-sync', stale: false, watermarks: {}, digest: Buffer.alloc(8), token: Buffer.from('t1') }).kind).toBe('repair');
    fs.snapshotBegin(3, 1, 0);
    fs.snapshotChunk(3, [['a', b(9)]]);
    expect(() => fs.snapshotEnd({ revision: 3, digest: Buffer.alloc(8), watermarks: {}, status: 'in-sync', stale: false, token: Buffer.alloc(1) })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH', details: expect.objectContaining({ snapshotOnly: false }) }),
    );
  });

  it('reports a DELTA\'s upserts of held values as reasserted (relays), but not those of a repair unit (its buckets resent whole)', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)], ['c', b(3)]]);
    fs.startConnection('resume');
    // A key that came back: news to a relay.
    expect(fs.deltaFrame(1, 2, false, [['a', b(1)], ['n', b(5)]], [])).toMatchObject({ upserts: [['n', b(5)]], reasserted: [['a', b(1)]] });
    // A repair: its unit holds every entry of the buckets, unchanged ones too; none of them is news.
    fs.canRepair = true;
    expect(fs.status({ revision: 2, status: 'in-sync', stale: false, watermarks: {}, digest: Buffer.alloc(8), token: Buffer.from('t2') }).kind).toBe('repair');
    fs.repairFrame(2, 2, Buffer.alloc(32, 0xff));
    const repaired = fs.deltaFrame(2, 2, false, [['a', b(1)], ['c', b(3)], ['n', b(5)]], []);
    expect(repaired?.reasserted).toBeUndefined();
  });

  it('in mode snapshot, refuses a DELTA or STATUS before the snapshot (4002): the held revision is another server\'s numbering', () => {
    const fs = new FeedState('felix');
    const entries: [string, Buffer][] = [['a', b(1)]];
    snapshot(fs, 5, entries);
    fs.startConnection('snapshot');
    // Equal to the held revision by chance: revisions of different servers are never compared (§2.1).
    expect(() => fs.deltaFrame(5, 6, false, [['b', b(2)]], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR', closeCode: 4002 }));
    expect(() => fs.status({ revision: 5, status: 'in-sync', stale: false, watermarks: {}, digest: fullDigest(entries), token: Buffer.from('x') })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_PROTOCOL_ERROR', closeCode: 4002 }),
    );
    expect([fs.revision, fs.sync, fs.size]).toEqual([5, 'unknown', 1]);
    // Once the snapshot is in, the connection goes on as any.
    snapshot(fs, 2, entries);
    expect(fs.deltaFrame(2, 3, false, [['b', b(2)]], [])?.revision).toBe(3);
    expect(fs.status({ revision: 3, status: 'in-sync', stale: false, watermarks: {}, digest: fullDigest([...entries, ['b', b(2)]]), token: Buffer.from('t3') }).kind).toBe('applied');
  });

  it('refuses a snapshot whose watermarks are behind, and keeps the state (a missing resource is behind too)', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)]], { pods: '100', nodes: '7' });
    fs.startConnection('snapshot');
    const r1 = snapshot(fs, 9, [], { pods: '99', nodes: '8' });
    expect(r1).toEqual({ kind: 'behind', behind: [{ resource: 'pods', applied: '100', offered: '99' }] });
    const r2 = snapshot(fs, 9, [], { pods: '100' });
    expect(r2).toEqual({ kind: 'behind', behind: [{ resource: 'nodes', applied: '7', offered: undefined }] });
    expect(fs.size).toBe(1);
    expect(snapshot(fs, 9, [], { pods: '1000', nodes: '7' }).kind).toBe('applied');
    expect(fs.appliedWatermarks).toEqual({ pods: '1000', nodes: '7' });
  });

  it('applies multi-frame deltas atomically at the last frame and rejects gaps', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)]]);
    expect(fs.deltaFrame(1, 2, true, [['b', b(2)]], [])).toBeNull();
    expect(fs.entries.has('b')).toBe(false);
    const batch = fs.deltaFrame(1, 2, false, [], ['a']);
    expect(batch).toEqual({ feed: 'felix', revision: 2, cause: 'delta', upserts: [['b', b(2)]], deletes: ['a'] });
    expect(() => fs.deltaFrame(5, 6, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REVISION_GAP' }));
    expect(() => fs.deltaFrame(2, 3, true, [], [])).not.toThrow();
    expect(() => fs.deltaFrame(2, 4, false, [], [])).toThrow(LocalCloseError);
  });

  it('accepts a resume catch-up from the token revision when deltas arrived after the last STATUS', () => {
    const fs = new FeedState('felix');
    snapshot(fs, 1, [['a', b(1)]]);
    fs.deltaFrame(1, 2, false, [['b', b(2)]], []);
    fs.startConnection('resume');
    const batch = fs.deltaFrame(1, 3, false, [['b', b(2)], ['c', b(3)]], []);
    expect(batch?.upserts.map(([k]) => k)).toEqual(['c']);
    expect(fs.revision).toBe(3);
    // Only the first delta after a resume may start there.
    expect(() => fs.deltaFrame(1, 4, false, [], [])).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REVISION_GAP' }));
  });

  it('checks STATUS revision and digest', () => {
    const fs = new FeedState('felix');
    const entries: [string, Buffer][] = [['a', b(1)]];
    snapshot(fs, 1, entries);
    expect(() => fs.status({ revision: 2, status: 'in-sync', stale: false, watermarks: {}, token: Buffer.alloc(1) })).toThrow(expect.objectContaining({ code: 'CATTAIL_CLIENT_REVISION_GAP' }));
    expect(() => fs.status({ revision: 1, status: 'in-sync', stale: false, watermarks: {}, digest: Buffer.alloc(8), token: Buffer.alloc(1) })).toThrow(
      expect.objectContaining({ code: 'CATTAIL_CLIENT_DIGEST_MISMATCH' }),
    );
    expect(fs.status({ revision: 1, status: 'in-sync', stale: true, watermarks: {}, digest: fullDigest(entries), token: Buffer.alloc(1) })).toEqual({ kind: 'applied', batch: undefined, statusChanged: true });
    expect(fs.stale).toBe(true);
  });
});

describe('client units - watermarks, backoff, endpoints, retry-after', () => {
  it('compares resourceVersions as unsigned integers', () => {
    expect(compareResourceVersions('9', '10')).toBe(-1);
    expect(compareResourceVersions('100', '99')).toBe(1);
    expect(compareResourceVersions('0042', '42')).toBe(0);
    expect(compareResourceVersions('18446744073709551616', '18446744073709551615')).toBe(1);
    expect(behindResources({ a: '5' }, { a: '5', b: '1' })).toEqual([]);
  });

  it('rotates endpoints, honours pins and tries hints first', () => {
    const r = new EndpointRotation(['ws://a', 'ws://b', 'ws://c'], () => 0.999);
    expect(r.endpoints).toEqual(['ws://a', 'ws://b', 'ws://c']);
    expect(r.next(0)).toEqual({ url: 'ws://a', waitMs: 0 });
    r.pin('ws://a', 1_000);
    r.advance('ws://a');
    expect(r.next(0)!.url).toBe('ws://b');
    r.hint(['ws://z', 'http://nope']);
    expect(r.next(0)!.url).toBe('ws://z');
    expect(r.next(0)!.url).toBe('ws://b');
    r.pin('ws://b', 500);
    r.pin('ws://c', 700);
    expect(r.next(0)).toEqual({ url: 'ws://b', waitMs: 500 });
  });
});

describe('client units - endpoint hints', () => {
  it('the newest hints replace the older ones (a message without any keeps them), and clearHints() forgets them', () => {
    const r = new EndpointRotation(['ws://a'], () => 0);
    r.hint(['ws://old1', 'ws://old2', 'ws://old3']);
    expect(r.next(0)!.url).toBe('ws://old1');
    // A later GOODBYE or 503 names other peers: the rest of the old advice is not tried first.
    r.hint(['ws://new1', 'ws://new2']);
    expect(r.next(0)!.url).toBe('ws://new1');
    r.hint([]);
    r.hint(['http://not-ws']);
    expect(r.next(0)!.url).toBe('ws://new2');
    expect(r.next(0)!.url).toBe('ws://a');
    // At most 16 of one message, the first ones.
    r.hint(Array.from({ length: 20 }, (_, i) => `ws://p${i}`));
    const got: string[] = [];
    for (let i = 0; i < 17; i++) got.push(r.next(0)!.url);
    expect(got).toEqual([...Array.from({ length: 16 }, (_, i) => `ws://p${i}`), 'ws://a']);
    // In sync: the advice was for getting there.
    r.hint(['ws://x', 'ws://y']);
    r.clearHints();
    expect(r.next(0)!.url).toBe('ws://a');
  });
});

describe('client units - rotation and re-discovery', () => {
  it('keeps its place when a look finds the same replicas in another order, and follows the endpoint it pointed at when the set changes', () => {
    const r = new EndpointRotation([], () => 0);
    r.replace(['ws://local', 'ws://p1', 'ws://p2', 'ws://p3'], 0);
    expect(r.next(0)!.url).toBe('ws://local');
    // The local replica fails without pinning itself (a handshake timeout): move on.
    r.advance('ws://local');
    expect(r.current).toBe('ws://p1');
    // The next look: local first again, the others reshuffled. It must not send us back.
    r.replace(['ws://local', 'ws://p3', 'ws://p1', 'ws://p2'], 0);
    expect(r.next(0)!.url).toBe('ws://p1');
    // A replica leaves and one comes: the rotation stays at the endpoint it pointed at.
    r.replace(['ws://local', 'ws://p4', 'ws://p1', 'ws://p3'], 0);
    expect(r.endpoints).toEqual(['ws://local', 'ws://p4', 'ws://p1', 'ws://p3']);
    expect(r.next(0)!.url).toBe('ws://p1');
    // The one it pointed at left: from the top.
    r.advance('ws://p1');
    expect(r.current).toBe('ws://p3');
    r.replace(['ws://local', 'ws://p1'], 0);
    expect(r.next(0)!.url).toBe('ws://local');
  });

  it('keeps a wait (Retry-After, GOODBYE) across a look that leaves the server out, until the wait ends', () => {
    const r = new EndpointRotation([], () => 0);
    r.replace(['ws://a', 'ws://b'], 0);
    // A refuses with Retry-After 5 s at t=0.
    r.pin('ws://a', 5_000);
    r.advance('ws://a');
    // t=1 s: only B is ready; t=3 s: A is back in the list.
    r.replace(['ws://b'], 1_000);
    r.replace(['ws://a', 'ws://b'], 3_000);
    expect(r.next(3_000)!.url).toBe('ws://b');
    r.pin('ws://b', 4_000);
    expect(r.next(3_000)).toEqual({ url: 'ws://b', waitMs: 1_000 });
  });
});

describe('client units - options and status queue', () => {
  it('validates options with coded errors that name the option', () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ endpoints: [], feeds: ['felix'] }, 'endpoints'],
      [{ endpoints: ['http://x'], feeds: ['felix'] }, 'endpoints'],
      [{ endpoints: ['ws://x'], feeds: [] }, 'feeds'],
      [{ endpoints: ['ws://x'], feeds: ['a', 'a'] }, 'feeds'],
      [{ endpoints: ['ws://x'], feeds: ['a'], reconnectJitter: 2 }, 'reconnectJitter'],
      [{ endpoints: ['ws://x'], feeds: ['a'], handshakeTimeoutMs: 0 }, 'handshakeTimeoutMs'],
      [{ endpoints: ['ws://x'], feeds: ['a'], reconnectInitialDelayMs: 100, reconnectMaxDelayMs: 10 }, 'reconnectMaxDelayMs'],
      [{ endpoints: ['ws://x'], feeds: ['a'], tls: { certFile: 'x' } }, 'tls.certFile'],
      [{ endpoints: ['ws://x'], feeds: ['a'], compression: ['zstd'] }, 'compression'],
      // Below the protocol's floor (§2.2): a server would refuse the HELLO with 4000.
      [{ endpoints: ['ws://x'], feeds: ['a'], maxFrameBytes: 4_095 }, 'maxFrameBytes'],
    ];
    for (const [o, name] of bad) {
      expect(() => resolveOptions(o as never), name).toThrow(expect.objectContaining({ code: 'CATTAIL_INVALID_ARGUMENT', message: expect.stringContaining(name) }));
      expect(() => connect(o as never)).toThrow(expect.objectContaining({ code: 'CATTAIL_INVALID_ARGUMENT' }));
    }
    const r = resolveOptions({ endpoints: ['ws://x'], feeds: ['a'] });
    expect(r).toMatchObject({ readTimeoutFactor: 3, ackIntervalMs: 1_000, maxFrameBytes: 1_048_576, compression: ['brotli', 'deflate'] });
    expect(resolveOptions({ endpoints: ['ws://x'], feeds: ['a'], maxFrameBytes: 4_096 }).maxFrameBytes).toBe(4_096);
  });

  it('bounds an unread status queue and stops on return()', async () => {
    let returned = false;
    const q = new AsyncQueue<number>(3, () => (returned = true));
    for (let i = 0; i < 5; i++) q.push(i);
    expect(q.dropped).toBe(2);
    expect((await q.next()).value).toBe(2);
    await q.return();
    expect(returned).toBe(true);
    expect((await q.next()).done).toBe(true);
  });

  it('a client closed before connecting emits closed and rejects waits', async () => {
    const c = connect({ endpoints: ['ws://127.0.0.1:9'], feeds: ['felix'] });
    const states: string[] = [];
    c.on('status', (e) => states.push(e.state));
    await c.close();
    expect(states).toEqual(['closed']);
    await expect(c.whenInSync()).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_CLOSED' });
  });
});
