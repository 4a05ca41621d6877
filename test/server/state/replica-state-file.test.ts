import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CattailError } from '../../../src/errors.js';
import { REPLICA_CHECKPOINT_FILE, type ReplicaCheckpoint } from '../../../src/server/state/replica-checkpoint.js';
import { readReplicaState, writeReplicaState } from '../../../src/server/state/replica-state-file.js';

const cp: ReplicaCheckpoint = { identity: 'id', resources: [{ name: 'pods', resourceVersion: '7', views: [{ id: 'v', values: [['ns/a', Buffer.from([0x80])]], owned: [] }] }] };
let dir: string;
beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'cattail-state-')); });
afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

describe('replica state file', () => {
  it('writes atomically (no temporary left) and reads back', async () => {
    const bytes = await writeReplicaState(dir, cp, 1 << 20);
    expect(await readdir(dir)).toEqual([REPLICA_CHECKPOINT_FILE]);
    expect((await readFile(join(dir, REPLICA_CHECKPOINT_FILE))).length).toBe(bytes);
    const errs: CattailError[] = [];
    const got = await readReplicaState(dir, 'id', 1 << 20, (e) => errs.push(e));
    expect(errs).toEqual([]);
    expect(got?.resources[0]?.resourceVersion).toBe('7');
  });

  it('absent is undefined without a report; truncated, foreign and oversized are reported and ignored', async () => {
    const errs: CattailError[] = [];
    expect(await readReplicaState(dir, 'id', 1 << 20, (e) => errs.push(e))).toBeUndefined();
    expect(errs).toEqual([]);
    const bytes = await writeReplicaState(dir, cp, 1 << 20);
    expect(await readReplicaState(dir, 'other', 1 << 20, (e) => errs.push(e))).toBeUndefined();
    expect(await readReplicaState(dir, 'id', bytes - 1, (e) => errs.push(e))).toBeUndefined();
    await truncate(join(dir, REPLICA_CHECKPOINT_FILE), bytes - 3);
    expect(await readReplicaState(dir, 'id', 1 << 20, (e) => errs.push(e))).toBeUndefined();
    await writeFile(join(dir, REPLICA_CHECKPOINT_FILE), 'garbage');
    expect(await readReplicaState(dir, 'id', 1 << 20, (e) => errs.push(e))).toBeUndefined();
    expect(errs.map((e) => e.code)).toEqual(Array(4).fill('CATTAIL_SERVER_STATE_INVALID'));
    expect(errs.map((e) => e.message)).toEqual([
      expect.stringMatching(/another cluster/), expect.stringMatching(/bound/), expect.stringMatching(/truncated/), expect.stringMatching(/bad magic/),
    ]);
  });
});
