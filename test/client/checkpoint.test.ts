/**
 * The agent's checkpoint (`connect({ stateDir })`): a restarted agent loads its verified state and
 * receives only what changed while it was down (resume on the same replica, rebase on another),
 * never a snapshot; a corrupt, foreign or other-version checkpoint is reported and ignored; a
 * checkpoint is rejected unless its entries hash to its digest.
 */
import { computeDigest } from '../../proto/digest.js';
import { execFileSync } from 'node:child_process';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Client } from '../../src/client/index.js';
import { CHECKPOINT_FILE, MAX_CHECKPOINT_BYTES, decodeCheckpoint, encodeCheckpoint, readCheckpoint, writeCheckpoint } from '../../src/client/checkpoint.js';
import type { CattailError } from '../../src/errors.js';
import { CheckpointKeeper } from '../../src/client/checkpointing.js';
import { FeedState } from '../../src/client/internal.js';
import { FakeClock } from '../../src/clock.js';
import { type ServerHandle } from '../../src/server/server.js';
import { waitUntil } from '../support/wait.js';
import { type ScriptedReplica, scriptedReplica } from '../support/replica.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

const replica = (serverId: string): Promise<ScriptedReplica> => scriptedReplica(serverId, cleanups);

function pods(n: number, gen: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) out[`/pods/demo/p${String(i).padStart(4, '0')}`] = { i, gen, pad: 'x'.repeat(200) };
  return out;
}

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cattail-ckpt-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function agent(url: string, stateDir: string, node = 'node-1'): Client {
  const c = connect({ endpoints: [url], feeds: ['felix'], node, stateDir, checkpointIntervalMs: 0, ackIntervalMs: 0 });
  // close(), not destroy(): it resolves once the checkpoint writes under way are done, so the
  // state directory's removal after it finds no temporary file appearing (ENOTEMPTY in CI).
  cleanups.push(() => c.close());
  return c;
}

const storeDigest = (s: ServerHandle): string => s.stores.get('felix')!.current().digest.toString('hex');
const sameAsStore = (c: Client, s: ServerHandle): boolean => c.inSync && c.feed('felix').status.verifiedRevision === s.stores.get('felix')!.revision;

describe('client - checkpoint and restart', () => {
  it('a restarted agent resumes from its checkpoint and receives only what changed while it was down', async () => {
    const { server, upstream } = await replica('ck-a');
    upstream.apply('felix', pods(2_000, 0), { status: 'in-sync', watermarks: { pods: '100' } });
    const d = dir();
    const first = agent(server.url, d);
    await first.whenInSync();
    const fullBytes = first.stats.bytesReceived;
    await first.close();
    expect(first.stats.checkpoint?.written).toBeGreaterThanOrEqual(1);
    // Down for a while: 10 pods change, one goes.
    upstream.apply('felix', { ...pods(10, 1), '/pods/demo/p1999': null }, { watermarks: { pods: '101' } });
    const second = agent(server.url, d);
    const seen: string[] = [];
    second.on('change', (b) => seen.push(b.cause));
    await waitUntil(() => sameAsStore(second, server), 'the restarted agent caught up');
    expect(second.stats.checkpoint).toMatchObject({ restored: 1, problem: undefined });
    expect(second.stats.snapshotsApplied).toBe(0);
    expect(second.stats.resumes).toBe(1);
    expect(second.stats.bytesReceived).toBeLessThan(fullBytes / 10);
    expect(seen[0]).toBe('snapshot'); // the restored state handed to the host first, then the delta
    expect(second.feed('felix').has('/pods/demo/p1999')).toBe(false);
    expect(second.feed('felix').status.verifiedRevision).toBe(server.stores.get('felix')!.revision);
    expect(storeDigest(server)).toBeTruthy();
  });

  it('on another replica (the old one gone), it rebases from the checkpoint instead of taking a snapshot', async () => {
    const a = await replica('ck-a');
    const b = await replica('ck-b');
    for (const r of [a, b]) r.upstream.apply('felix', pods(1_000, 0), { status: 'in-sync', watermarks: { pods: '100' } });
    const d = dir();
    const first = agent(a.server.url, d);
    await first.whenInSync();
    await first.close();
    // B applies the same upstream changes, in two batches of its own.
    b.upstream.apply('felix', pods(5, 1), { watermarks: { pods: '101' } });
    b.upstream.apply('felix', { '/pods/demo/p0999': null }, { watermarks: { pods: '102' } });
    const second = agent(b.server.url, d);
    await waitUntil(() => sameAsStore(second, b.server), 'caught up on B');
    expect(second.stats.rebases).toBe(1);
    expect(second.stats.snapshotsApplied).toBe(0);
  });

  it('a checkpoint kept across a cluster rebuilt on the same hosts (resourceVersions from 1 again) is replaced by the new cluster\'s snapshot, not refused for ever', async () => {
    const old = await replica('ck-old');
    old.upstream.clusterName = 'ca:old';
    old.upstream.apply('felix', pods(50, 0), { status: 'in-sync', watermarks: { pods: '90000' } });
    const d = dir();
    const first = agent(old.server.url, d);
    await first.whenInSync();
    expect(first.cluster).toBe('ca:old');
    await first.close();
    expect(decodeCheckpoint(readFileSync(join(d, CHECKPOINT_FILE))).cluster).toBe('ca:old');
    // The new cluster: other objects, and resourceVersions far below the old ones.
    const rebuilt = await replica('ck-new');
    rebuilt.upstream.clusterName = 'ca:new';
    rebuilt.upstream.apply('felix', pods(20, 7), { status: 'in-sync', watermarks: { pods: '400' } });
    const second = agent(rebuilt.server.url, d);
    // Before, every replica of the new cluster refused its watermarks (4015), for good.
    await waitUntil(() => sameAsStore(second, rebuilt.server), 'in sync with the rebuilt cluster', { timeoutMs: 10_000 });
    expect(second.stats.checkpoint).toMatchObject({ restored: 1 });
    expect(second.stats.snapshotsApplied).toBe(1);
    expect(second.cluster).toBe('ca:new');
    expect(second.feed('felix').size).toBe(20);
    expect(second.feed('felix').status.watermarks).toEqual({ pods: '400' });
    await second.close();
    expect(decodeCheckpoint(readFileSync(join(d, CHECKPOINT_FILE))).cluster).toBe('ca:new');
  });

  it('ignores a corrupt, foreign-node or other-version checkpoint with a coded reason, and snapshots', async () => {
    const { server, upstream } = await replica('ck-a');
    upstream.apply('felix', pods(50, 0), { status: 'in-sync', watermarks: { pods: '100' } });
    const d = dir();
    const first = agent(server.url, d);
    await first.whenInSync();
    await first.close();
    const good = readFileSync(join(d, CHECKPOINT_FILE));
    const cases: [string, Buffer, string, RegExp][] = [
      ['bit flip', Buffer.from(good).fill(7, 40, 41), 'node-1', /checksum/],
      ['truncated', good.subarray(0, good.length - 5), 'node-1', /truncated/],
      ['other version', (() => { const b = Buffer.from(good); b.writeUInt32BE(99, 8); return b; })(), 'node-1', /version 99/],
      ['another node', good, 'node-2', /belongs to node "node-1"/],
    ];
    for (const [what, bytes, node, why] of cases) {
      // A directory per case: the previous case's agent may still be writing its own checkpoint
      // after destroy(), over the bytes this case plants (a good one: restored 1, seen in CI).
      const cd = dir();
      writeFileSync(join(cd, CHECKPOINT_FILE), bytes);
      const c = agent(server.url, cd, node);
      await c.whenInSync();
      expect(c.stats.checkpoint?.restored, what).toBe(0);
      expect(c.stats.checkpoint?.problem, what).toMatch(/^CATTAIL_CLIENT_CHECKPOINT_INVALID: /);
      expect(c.stats.checkpoint?.problem, what).toMatch(why);
      expect(c.stats.snapshotsApplied, what).toBe(1);
      expect(c.feed('felix').size, what).toBe(50);
      c.destroy();
    }
  });

  it('never trusts a checkpoint whose entries do not hash to its digest', () => {
    const entries = new Map([['/k', Buffer.from([1, 2, 3])]]);
    const cp = { node: 'n', feeds: [{ name: 'felix', revision: 3, tokenRevision: 3, token: Buffer.from([9]), watermarks: { pods: '5' }, digest: Buffer.alloc(8), entries }] };
    expect(() => decodeCheckpoint(encodeCheckpoint(cp))).toThrow(/does not hash to its digest/);
  });

  it('refuses a checkpoint whose watermarks are above the protocol\'s bound (every STATUS would then be refused)', () => {
    const entries = new Map([['/k', Buffer.from([1, 2, 3])]]);
    const digest = computeDigest([...entries]);
    const cp = (n: number): Parameters<typeof encodeCheckpoint>[0] => ({
      node: 'n', feeds: [{ name: 'felix', revision: 3, tokenRevision: 3, token: Buffer.from([9]), watermarks: Object.fromEntries(Array.from({ length: n }, (_, i) => [`r${i}`, '5'])), digest, entries }],
    });
    expect(decodeCheckpoint(encodeCheckpoint(cp(64))).feeds[0]?.watermarks).toHaveProperty('r63');
    expect(() => decodeCheckpoint(encodeCheckpoint(cp(65)))).toThrow(/above the protocol's bound/);
  });

  it('keeps the announced model, and hands the host no restored feed of a model the agent does not apply', async () => {
    const entries = new Map<string, Buffer>([['/pods/demo/a', Buffer.from([0xa1, 0x61])]]);
    const feed = (model?: string) => ({ name: 'felix', revision: 4, tokenRevision: 4, token: Buffer.from('t'), watermarks: { pods: '1' }, digest: computeDigest(entries), ...(model !== undefined ? { model } : {}), entries });
    const restore = async (model: string | undefined, models?: Record<string, string[]>): Promise<{ keeper: CheckpointKeeper; state: FeedState; batches: number }> => {
      const d = dir();
      writeFileSync(join(d, CHECKPOINT_FILE), encodeCheckpoint({ node: 'node-1', feeds: [feed(model)] }));
      const state = new FeedState('felix');
      const keeper = new CheckpointKeeper({ dir: d, node: 'node-1', intervalMs: 0, clock: new FakeClock(), feeds: new Map([['felix', { state }]]), ...(models !== undefined ? { models } : {}) });
      return { keeper, state, batches: (await keeper.restore()).length };
    };
    // Round trip of the model; no restriction: restored, its model known before any WELCOME.
    expect(decodeCheckpoint(encodeCheckpoint({ node: 'n', feeds: [feed('libcalico.v2')] })).feeds[0]!.model).toBe('libcalico.v2');
    const open = await restore('libcalico.v2');
    expect([open.batches, open.state.model]).toEqual([1, 'libcalico.v2']);
    // The agent now applies only libcalico.v3: not handed over, with a coded reason.
    const other = await restore('libcalico.v2', { felix: ['libcalico.v3'] });
    expect(other.batches).toBe(0);
    expect(other.state.size).toBe(0);
    expect(other.keeper.problem?.code).toBe('CATTAIL_CLIENT_CHECKPOINT_INVALID');
    // A file without a model (written before it was kept) reads as calico.v1.
    expect((await restore(undefined, { felix: ['libcalico.v3'] })).batches).toBe(0);
    expect((await restore(undefined, { felix: ['calico.v1'] })).batches).toBe(1);
  });

  it('takes no checkpoint while a WELCOME has announced another model and its snapshot has not ended', () => {
    const entries: [string, Buffer][] = [['/pods/demo/a', Buffer.from([0xa1, 0x61])]];
    const fs = new FeedState('felix');
    const snapshot = (revision: number): void => {
      fs.snapshotBegin(revision, 1, 0);
      fs.snapshotChunk(revision, entries);
      fs.snapshotEnd({ revision, digest: computeDigest(new Map(entries)), watermarks: { pods: String(revision) }, status: 'in-sync', stale: false, token: Buffer.from(`t${revision}`) });
    };
    fs.model = 'libcalico.v2';
    snapshot(4);
    expect(fs.checkpoint()?.model).toBe('libcalico.v2');
    // A rollout: the next replica announces libcalico.v3; the held entries are still v2's bytes.
    fs.model = 'libcalico.v3';
    expect(fs.checkpointKey()).toBeUndefined();
    expect(fs.checkpoint()).toBeUndefined();
    snapshot(9);
    expect(fs.checkpoint()?.model).toBe('libcalico.v3');
  });

  it('a due write with nothing newly verified neither writes nor restarts the interval; the next verified STATUS is written', async () => {
    // A scoped feed with scope.watermarks: a STATUS without digest after every unit, one with a
    // digest about once a second (PROTOCOL.md §4.7). Only the latter's state may be saved.
    const d = dir();
    const clock = new FakeClock();
    const entries: [string, Buffer][] = [['/pods/demo/a', Buffer.from([0xa1, 0x61])]];
    const fs = new FeedState('felix');
    fs.snapshotBegin(4, 1, 0);
    fs.snapshotChunk(4, entries);
    fs.snapshotEnd({ revision: 4, digest: computeDigest(new Map(entries)), watermarks: { pods: '10' }, status: 'in-sync', stale: false, token: Buffer.from('t4') });
    const keeper = new CheckpointKeeper({ dir: d, node: 'node-1', intervalMs: 1_000, clock, feeds: new Map([['felix', { state: fs }]]) });
    const saved = (): number => decodeCheckpoint(readFileSync(join(d, CHECKPOINT_FILE))).feeds[0]!.revision;
    keeper.maybeWrite();
    await keeper.flush();
    expect(saved()).toBe(4);
    const written = keeper.written;
    // A unit to revision 5, then its STATUS without digest: applied, not verified.
    const b: [string, Buffer] = ['/pods/demo/b', Buffer.from([0xa1, 0x62])];
    fs.deltaFrame(4, 5, false, [b], []);
    fs.status({ revision: 5, status: 'in-sync', stale: false, watermarks: { pods: '11' }, token: Buffer.from('t5') });
    await clock.advanceAsync(1_000);
    keeper.maybeWrite();
    await keeper.flush();
    expect(keeper.written).toBe(written + 1); // the flush only: the due write had nothing to save
    expect(saved()).toBe(4);
    // The STATUS with digest at 5 a moment later: written at once (the interval was not restarted).
    await clock.advanceAsync(10);
    fs.status({ revision: 5, status: 'in-sync', stale: false, watermarks: { pods: '11' }, token: Buffer.from('t5'), digest: computeDigest(new Map([...entries, b])) });
    keeper.maybeWrite();
    // What was verified is taken now: the next unit, applied before the queued write runs, is not in it.
    fs.deltaFrame(5, 6, false, [['/pods/demo/c', Buffer.from([0xa1, 0x63])]], []);
    await keeper.flush();
    expect(saved()).toBe(5);
    expect(keeper.written).toBe(written + 3);
  });

  it('writes one operation at a time: a discard and a close() beside it leave a whole file of the right feeds', async () => {
    const d = dir();
    const synced = (name: string, entries: [string, Buffer][]): FeedState => {
      const fs = new FeedState(name);
      fs.snapshotBegin(4, entries.length, 0);
      fs.snapshotChunk(4, entries);
      fs.snapshotEnd({ revision: 4, digest: computeDigest(new Map(entries)), watermarks: { pods: '10' }, status: 'in-sync', stale: false, token: Buffer.from(`t-${name}`) });
      return fs;
    };
    const big = (n: number): [string, Buffer][] => Array.from({ length: n }, (_, i) => [`/pods/demo/p${i}`, Buffer.alloc(2_000, i % 251)]);
    const a = synced('felix', big(2_000));
    const b = synced('bgp', big(2_000));
    const keeper = new CheckpointKeeper({ dir: d, node: 'node-1', intervalMs: 0, clock: new FakeClock(), feeds: new Map([['felix', { state: a }], ['bgp', { state: b }]]) });
    keeper.maybeWrite();
    // felix turned out wrong (a 4014) while that write runs, and the host closes at once.
    a.dropToken();
    const discarded = keeper.discard('felix');
    const flushed = keeper.flush();
    await Promise.all([discarded, flushed]);
    expect(keeper.problem).toBeUndefined();
    const cp = decodeCheckpoint(readFileSync(join(d, CHECKPOINT_FILE)));
    expect(cp.feeds.map((f) => f.name)).toEqual(['bgp']);
    expect(keeper.written).toBe(3);
  });

  it('a state volume that stops answering costs the agent its checkpoint, not its start or its close() (checkpointIoMaxMs)', async () => {
    const { server, upstream } = await replica('ck-stall');
    upstream.apply('felix', pods(50, 0), { status: 'in-sync' });
    const d = dir();
    // FIFOs where the files are: reading the checkpoint, and opening the temporary file of a
    // write, block until the other end opens, as calls on a hung volume do.
    const file = join(d, CHECKPOINT_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    execFileSync('mkfifo', [file, tmp]);
    const unblock = (fifo: string, read: boolean): Promise<void> => new Promise((resolve) => {
      if (read) {
        const r = createReadStream(fifo);
        r.on('error', () => resolve());
        r.on('end', () => resolve()).resume();
      } else {
        const w = createWriteStream(fifo);
        w.on('error', () => resolve());
        w.end(() => resolve());
      }
    });
    const c = connect({ endpoints: [server.url], feeds: ['felix'], node: 'node-1', stateDir: d, checkpointIntervalMs: 0, ackIntervalMs: 0, checkpointIoMaxMs: 300 });
    try {
      // Before, the first connection waited for the read for good: idle, no status.
      await c.whenInSync();
      expect(c.stats.checkpoint?.restored).toBe(0);
      expect(c.stats.checkpoint?.problem).toMatch(/^CATTAIL_CLIENT_CHECKPOINT_INVALID: reading the checkpoint .* took more than 300 ms/);
      // The first verified state's write hangs on its temporary file; close() waits for it at most the bound.
      const t0 = Date.now();
      await c.close();
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(c.stats.checkpoint?.problem).toMatch(/^CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED: writing the checkpoint .* took more than 300 ms/);
      expect(c.stats.checkpoint?.written).toBe(0);
    } finally {
      await unblock(file, false);
      await unblock(tmp, true);
    }
  });
});

describe('client - the checkpoint file\'s size bound (MAX_CHECKPOINT_BYTES)', () => {
  it('a file above the bound is refused before it is read (garbage of gigabytes must not be loaded at every start)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-ckpt-size-'));
    try {
      // Sparse: its size is above the bound, its blocks are not there.
      writeFileSync(join(dir, CHECKPOINT_FILE), '');
      truncateSync(join(dir, CHECKPOINT_FILE), MAX_CHECKPOINT_BYTES + 1);
      const problems: CattailError[] = [];
      expect(await readCheckpoint(dir, 'node-a', (e) => problems.push(e))).toBeUndefined();
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatchObject({ code: 'CATTAIL_CLIENT_CHECKPOINT_INVALID', details: { bytes: MAX_CHECKPOINT_BYTES + 1, maxBytes: MAX_CHECKPOINT_BYTES } });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a state above the bound is not written (it would be refused at the next start); the previous file stays', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-ckpt-size-'));
    try {
      const entries = new Map([['/k', Buffer.from([0xa1, 0x61])]]);
      const feed = { name: 'felix', revision: 3, tokenRevision: 3, token: Buffer.from('t3'), watermarks: { pods: '7' }, digest: computeDigest(entries), entries };
      await writeCheckpoint(dir, { node: 'node-a', cluster: undefined, feeds: [feed] });
      const before = readFileSync(join(dir, CHECKPOINT_FILE));
      const big = new Map([...entries, ['/big', Buffer.alloc(4_096, 0xa0)]]);
      await expect(writeCheckpoint(dir, { node: 'node-a', cluster: undefined, feeds: [{ ...feed, revision: 4, entries: big, digest: computeDigest(big) }] }, 2_048)).rejects.toMatchObject({ code: 'CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED' });
      expect(readFileSync(join(dir, CHECKPOINT_FILE)).equals(before)).toBe(true);
      // And a bound below the file's size refuses it at read.
      const problems: CattailError[] = [];
      expect(await readCheckpoint(dir, 'node-a', (e) => problems.push(e), before.length - 1)).toBeUndefined();
      expect(await readCheckpoint(dir, 'node-a', () => undefined, before.length)).toMatchObject({ node: 'node-a' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
