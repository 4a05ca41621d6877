/**
 * The envelope of Cattail's state files (the agent's and the replica's checkpoints):
 *   magic (8 bytes) ‖ u32be version ‖ u32be bodyLength ‖ body ‖ SHA-256(body)
 * Pure (no I/O). `unseal` trusts nothing: a wrong magic, version, length or checksum is reported
 * through `bad` (each file kind has its own coded error), so a torn or foreign file is never parsed.
 */
import { createHash } from 'node:crypto';
import type { CattailError } from './errors.js';

/** Wraps `body` in the envelope. */
export function seal(magic: Buffer, version: number, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(version, 0);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([magic, head, body, createHash('sha256').update(body).digest()]);
}

/** Returns the verified body of `buf`. @throws whatever `bad` returns */
export function unseal(
  buf: Buffer, magic: Buffer, version: number, what: string,
  bad: (message: string, details?: Record<string, unknown>) => CattailError,
): Buffer {
  if (buf.length < magic.length + 8 + 32 || !buf.subarray(0, magic.length).equals(magic)) throw bad(`not a Cattail ${what} (bad magic)`);
  const got = buf.readUInt32BE(magic.length);
  if (got !== version) throw bad(`${what} format version ${got}, this build reads ${version}`, { version: got });
  const len = buf.readUInt32BE(magic.length + 4);
  const start = magic.length + 8;
  if (buf.length !== start + len + 32) throw bad(`${what} is ${buf.length} bytes, its header says ${start + len + 32} (truncated or padded)`);
  const body = buf.subarray(start, start + len);
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(start + len))) throw bad(`${what} checksum does not match (corrupt)`);
  return body;
}
