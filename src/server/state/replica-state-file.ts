/**
 * Reading and writing the replica's checkpoint file (format in replica-checkpoint.ts). The write
 * is atomic (atomic-file.ts): a crash leaves the previous checkpoint or the new one. A file that
 * fails any check is reported through `onInvalid` and treated as absent: the replica starts cold
 * rather than resume watches from a state it cannot prove.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import { CattailError } from '../../errors.js';
import { decodeReplicaCheckpoint, encodeReplicaCheckpoint, REPLICA_CHECKPOINT_FILE, type ReplicaCheckpoint } from './replica-checkpoint.js';

/** Writes `cp` into `dir` atomically; returns the bytes written. @throws CATTAIL_SERVER_STATE_INVALID above `maxBytes` */
export async function writeReplicaState(dir: string, cp: ReplicaCheckpoint, maxBytes: number): Promise<number> {
  return writeFileAtomic(dir, REPLICA_CHECKPOINT_FILE, encodeReplicaCheckpoint(cp, maxBytes));
}

/**
 * Loads the checkpoint of `dir` written for `identity`: undefined when there is none or it is not
 * usable (then `onInvalid` received the coded reason). A file above `maxBytes` is not even read.
 */
export async function readReplicaState(
  dir: string, identity: string, maxBytes: number, onInvalid: (err: CattailError) => void,
): Promise<ReplicaCheckpoint | undefined> {
  const path = join(dir, REPLICA_CHECKPOINT_FILE);
  try {
    const { size } = await stat(path);
    if (size > maxBytes) {
      onInvalid(new CattailError('CATTAIL_SERVER_STATE_INVALID', `replica checkpoint is ${size} bytes, above the ${maxBytes}-byte bound`, { details: { bytes: size, maxBytes } }));
      return undefined;
    }
    return decodeReplicaCheckpoint(await readFile(path), identity);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    onInvalid(err instanceof CattailError ? err : new CattailError('CATTAIL_SERVER_STATE_INVALID', `replica checkpoint cannot be read: ${(err as Error).message}`, { cause: err }));
    return undefined;
  }
}

/** Errors that say the directory can never hold a checkpoint as configured (not a passing state of the disk). */
const UNUSABLE_DIR = new Set(['EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EEXIST', 'EISDIR']);

/**
 * Whether `dir` can hold checkpoints, asked once at start: it is created if missing, and a probe
 * file written and removed in it. Resolves `undefined` when it can; a configuration that can never
 * work (read-only, not permitted, not a directory) comes back as the error's code, for the caller
 * to refuse the start with; any other failure (a full disk, a stalled volume, which the caller
 * bounds in time) resolves `undefined` too, since the periodic write retries and a load still
 * falls back to a cold start. Before this check, a --state-dir on a read-only root or owned by
 * another user was accepted, logged "no replica checkpoint; starting cold" and then failed every
 * interval in a warn line: warm restarts off without a word at start.
 */
export async function unusableStateDir(dir: string): Promise<{ code: string; message: string } | undefined> {
  const probe = join(dir, `.cattail-write-check.${process.pid}`);
  try {
    await mkdir(dir, { recursive: true });
    await writeFile(probe, '', { mode: 0o600 });
    await rm(probe, { force: true });
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    return UNUSABLE_DIR.has(code) ? { code, message: (err as Error).message } : undefined;
  }
}
