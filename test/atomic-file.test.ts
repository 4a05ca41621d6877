import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../src/atomic-file.js';

const dirs: string[] = [];
const scratch = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'cattail-atomic-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole and leaves no temporary file', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'state'), 'old');
    expect(await writeFileAtomic(dir, 'state', Buffer.from('new state'))).toBe(9);
    expect(readFileSync(join(dir, 'state'), 'utf8')).toBe('new state');
    expect(readdirSync(dir)).toEqual(['state']);
  });

  it('a write cut off before its rename leaves a temporary file that the next write reuses: none piles up', async () => {
    const dir = scratch();
    // What a write killed after writing its temporary file leaves behind.
    writeFileSync(join(dir, `state.${process.pid}.tmp`), Buffer.alloc(64 * 1024, 0x78));
    await writeFileAtomic(dir, 'state', Buffer.from('whole'));
    expect(readdirSync(dir)).toEqual(['state']);
    expect(readFileSync(join(dir, 'state'), 'utf8')).toBe('whole');
  });

  it('a write that fails removes its temporary file and keeps the previous state', async () => {
    const dir = scratch();
    // The target is a directory that is not empty: the rename fails after the data was written.
    mkdirSync(join(dir, 'state'));
    writeFileSync(join(dir, 'state', 'keep'), 'x');
    await expect(writeFileAtomic(dir, 'state', Buffer.from('new'))).rejects.toThrow();
    // Before, the temporary copy stayed behind for good.
    expect(readdirSync(dir)).toEqual(['state']);
    expect(readFileSync(join(dir, 'state', 'keep'), 'utf8')).toBe('x');
  });
});
