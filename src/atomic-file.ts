/**
 * Atomic file replacement shared by the agent's and the replica's checkpoints: a temporary file,
 * fsync, rename, fsync of the directory. A crash at any point leaves either the old or the new
 * file, never a torn one (the readers still verify a checksum, since disks lie).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `data` to `<dir>/<file>` atomically; returns the bytes written. */
export async function writeFileAtomic(dir: string, file: string, data: Buffer): Promise<number> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, file);
  // A name of its own per write: `<file>.<pid>.tmp` was shared by two writers of one PID (two
  // containers, each PID 1, on one state directory; two clients of one process), which then
  // truncated each other's file (the checksum caught it, at the price of a cold start).
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    // A failed write (disk full, I/O error) left its temporary file behind, a partial copy of
    // the state, for good.
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
