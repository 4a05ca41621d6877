/**
 * Atomic file replacement shared by the agent's and the replica's checkpoints: a temporary file,
 * fsync, rename, fsync of the directory. A crash at any point leaves either the old or the new
 * file, never a torn one (the readers still verify a checksum, since disks lie).
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `data` to `<dir>/<file>` atomically; returns the bytes written. */
export async function writeFileAtomic(dir: string, file: string, data: Buffer): Promise<number> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, file);
  // One name per process, reused by every write: a write cut off (a kill, an OOM, a power loss)
  // leaves its partial copy of the state, and the next write overwrites it. A name of its own per
  // write (tried) left one such file per cut-off write for good, up to ~100 MB each for a replica.
  // Writers of one file in a process run one after another (checkpointing.ts, warm-state.ts);
  // two processes of one PID on one directory (two containers, each PID 1) is a misconfiguration
  // whose torn file the checksum catches.
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // A failed write (disk full, I/O error) leaves no partial copy of the state behind.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  // The rename itself must survive a power loss: sync the directory entry.
  const d = await open(dir, 'r').catch(() => undefined);
  if (d !== undefined) {
    await d.sync().catch(() => undefined);
    await d.close();
  }
  return data.length;
}
