/**
 * Atomic file replacement shared by the agent's and the replica's checkpoints: a temporary file,
 * fsync, rename, fsync of the directory. A crash at any point leaves either the old or the new
 * file, never a torn one (the readers still verify a checksum, since disks lie).
 */
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `data` to `<dir>/<file>` atomically; returns the bytes written. */
export async function writeFileAtomic(dir: string, file: string, data: Buffer): Promise<number> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, file);
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  // The rename itself must survive a power loss: sync the directory entry.
  const d = await open(dir, 'r').catch(() => undefined);
  if (d !== undefined) {
    await d.sync().catch(() => undefined);
    await d.close();
  }
  return data.length;
}
