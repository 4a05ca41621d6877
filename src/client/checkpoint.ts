/**
 * The agent's checkpoint (`connect({ stateDir })`, `cattail agent --state-dir`): each feed's
 * verified state with what proves it (revision, resume token, watermarks, digest), so a restarted
 * agent (every calico-node upgrade restarts every agent) resumes or rebases (PROTOCOL.md §7, §7.1)
 * and receives what changed while it was down instead of a full snapshot.
 *
 * Format (version 1), one file per client `<stateDir>/cattail-agent.ckpt`:
 *   "CTLCKPT\n" (8 bytes) ‖ u32be version ‖ u32be bodyLength ‖ body (plain msgpack) ‖ SHA-256(body)
 * The body: `{ node, feeds: [{ name, revision, tokenRevision, token, watermarks, retired?, digest, model?, entries: [[key, bytes]…] }] }`.
 * `model` (the data model the server announced, PROTOCOL.md §3.2) is optional: files written
 * before it have none, which reads as the protocol's default, `calico.v1`. `retired` (the
 * resources applied once that the feed no longer carries, §8 "A feed's resources") is optional
 * too: absent when there are none, and in files written before it.
 *
 * Trust nothing read back: a wrong magic, version, length, checksum, shape or a digest that does
 * not match the entries makes the checkpoint ignored (with a coded reason), never half-applied.
 * A checkpoint of another node (a copied state directory) is ignored too. Writes are atomic
 * (a temporary file, fsync, rename, fsync of the directory): a crash leaves the old or the new file.
 * Only verified states are written (the digest matched at the saved revision), so a checkpoint is
 * never less trustworthy than the connection it came from.
 */
import { MAX_WATERMARKS, MAX_WATERMARKS_BYTES, isClusterName } from '../../proto/types.js';
import { aboveWatermarkBounds } from './watermarks.js';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { computeDigest } from '../../proto/digest.js';
import { writeFileAtomic } from '../atomic-file.js';
import { packDetached } from '../msgpack-pack.js';
import { seal, unseal } from '../sealed-file.js';
import { CattailError } from '../errors.js';

const MAGIC = Buffer.from('CTLCKPT\n', 'latin1');
export const CHECKPOINT_VERSION = 1;
export const CHECKPOINT_FILE = 'cattail-agent.ckpt';
/**
 * A checkpoint larger than this is neither read nor written, in bytes. The file holds the agent's
 * state (an unscoped 150,000-pod felix feed is ~25 MB), and reading it takes its size in memory
 * before any check: a garbage file of gigabytes on the state volume would otherwise cost the
 * agent that much at every start (an OOM kill under a container's limit, every time).
 */
export const MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024;

const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true });

export interface FeedCheckpoint {
  readonly name: string;
  readonly revision: number;
  readonly tokenRevision: number;
  readonly token: Uint8Array;
  readonly watermarks: Readonly<Record<string, string>>;
  /** Retired resources' last applied watermarks (feed-state.ts `retiredWatermarks`); undefined: none. */
  readonly retired?: Readonly<Record<string, string>> | undefined;
  readonly digest: Uint8Array;
  /** The feed's data model as the server announced it; undefined: none announced (calico.v1). */
  readonly model?: string | undefined;
  readonly entries: ReadonlyMap<string, Buffer>;
}

export interface Checkpoint {
  readonly node: string;
  /** The WELCOME `cluster` the state came from (§8 "Another cluster"); undefined: none announced. */
  readonly cluster?: string | undefined;
  readonly feeds: readonly FeedCheckpoint[];
}

/** Encodes a checkpoint file (pure; the caller writes it). */
export function encodeCheckpoint(cp: Checkpoint): Buffer {
  const body = packDetached(
    packr,
    {
      node: cp.node,
      ...(cp.cluster !== undefined ? { cluster: cp.cluster } : {}),
      feeds: cp.feeds.map((f) => ({
        name: f.name, revision: f.revision, tokenRevision: f.tokenRevision, token: Buffer.from(f.token),
        watermarks: { ...f.watermarks }, ...(f.retired !== undefined && Object.keys(f.retired).length > 0 ? { retired: { ...f.retired } } : {}), digest: Buffer.from(f.digest), ...(f.model !== undefined ? { model: f.model } : {}), entries: [...f.entries],
      })),
    },
  );
  return seal(MAGIC, CHECKPOINT_VERSION, body);
}

function bad(message: string, details?: Record<string, unknown>): CattailError {
  return new CattailError('CATTAIL_CLIENT_CHECKPOINT_INVALID', message, details === undefined ? undefined : { details });
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

/** Decodes and verifies a checkpoint file. @throws CattailError CATTAIL_CLIENT_CHECKPOINT_INVALID */
export function decodeCheckpoint(buf: Buffer): Checkpoint {
  const body = unseal(buf, MAGIC, CHECKPOINT_VERSION, 'agent checkpoint', bad);
  let raw: unknown;
  try {
    raw = packr.unpack(body);
  } catch (err) {
    throw bad(`checkpoint body does not decode: ${(err as Error).message}`);
  }
  if (!isObj(raw) || typeof raw['node'] !== 'string' || !Array.isArray(raw['feeds'])) throw bad('checkpoint body has the wrong shape');
  const cluster = raw['cluster'];
  if (cluster !== undefined && !isClusterName(cluster)) throw bad('checkpoint cluster has the wrong shape');
  const feeds: FeedCheckpoint[] = [];
  for (const f of raw['feeds'] as unknown[]) {
    if (!isObj(f) || typeof f['name'] !== 'string' || !Number.isSafeInteger(f['revision']) || !Number.isSafeInteger(f['tokenRevision'])
      || !isBytes(f['token']) || !isBytes(f['digest']) || !isObj(f['watermarks']) || !Array.isArray(f['entries'])
      || (f['model'] !== undefined && (typeof f['model'] !== 'string' || f['model'] === ''))
      || (f['retired'] !== undefined && !isObj(f['retired']))) {
      throw bad('checkpoint feed has the wrong shape');
    }
    const entries = new Map<string, Buffer>();
    for (const e of f['entries'] as unknown[]) {
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !isBytes(e[1])) throw bad(`checkpoint entry of feed ${f['name']} has the wrong shape`);
      entries.set(e[0], Buffer.from(e[1]));
    }
    const strings = (m: Record<string, unknown>): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(m)) {
        if (typeof v !== 'string') throw bad(`checkpoint watermark ${k} of feed ${f['name']} is not a string`);
        out[k] = v;
      }
      return out;
    };
    const watermarks = strings(f['watermarks']);
    const retired = isObj(f['retired']) ? strings(f['retired']) : {};
    // Above the protocol's bound (PROTOCOL.md §8) every later STATUS would be refused (4002), and
    // a HELLO's notBefore (both maps together) would pass what servers accept.
    if (aboveWatermarkBounds({ ...retired, ...watermarks }) !== undefined || Object.keys(retired).some((r) => Object.hasOwn(watermarks, r))) {
      throw bad(`checkpoint watermarks of feed ${f['name']} are above the protocol's bound (${MAX_WATERMARKS} resources, ${MAX_WATERMARKS_BYTES} bytes, applied and retired together) or retire a resource they hold`, { feed: f['name'] });
    }
    // The entries must be the state the digest names: a checkpoint is verified, never trusted.
    const digest = Buffer.from(f['digest']);
    if (!computeDigest(entries).equals(digest)) throw bad(`checkpoint of feed ${f['name']} does not hash to its digest`, { feed: f['name'] });
    feeds.push({
      name: f['name'], revision: f['revision'] as number, tokenRevision: f['tokenRevision'] as number, token: Buffer.from(f['token']), watermarks,
      ...(Object.keys(retired).length > 0 ? { retired } : {}), digest,
      ...(typeof f['model'] === 'string' ? { model: f['model'] } : {}), entries,
    });
  }
  return { node: raw['node'], ...(typeof cluster === 'string' ? { cluster } : {}), feeds };
}

/** Writes `cp` atomically into `dir`. */
export async function writeCheckpoint(dir: string, cp: Checkpoint, maxBytes = MAX_CHECKPOINT_BYTES): Promise<number> {
  const buf = encodeCheckpoint(cp);
  // Written, it would be refused at the next start: keep the previous file instead.
  if (buf.length > maxBytes) throw new CattailError('CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED', `checkpoint of ${buf.length} bytes is above the ${maxBytes}-byte bound; not written`, { details: { bytes: buf.length, maxBytes } });
  return writeFileAtomic(dir, CHECKPOINT_FILE, buf);
}

/**
 * Reads the checkpoint of `dir` for `node`: undefined when there is none; a checkpoint that fails
 * any check is reported through `onInvalid` and treated as none.
 */
export async function readCheckpoint(dir: string, node: string, onInvalid: (err: CattailError) => void, maxBytes = MAX_CHECKPOINT_BYTES): Promise<Checkpoint | undefined> {
  let buf: Buffer;
  try {
    const path = join(dir, CHECKPOINT_FILE);
    const { size } = await stat(path);
    if (size > maxBytes) {
      onInvalid(bad(`checkpoint is ${size} bytes, above the ${maxBytes}-byte bound`, { bytes: size, maxBytes }));
      return undefined;
    }
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    onInvalid(bad(`checkpoint cannot be read: ${(err as Error).message}`));
    return undefined;
  }
  try {
    const cp = decodeCheckpoint(buf);
    if (cp.node !== node) throw bad(`checkpoint belongs to node ${JSON.stringify(cp.node)}, not ${JSON.stringify(node)}`, { node: cp.node });
    return cp;
  } catch (err) {
    onInvalid(err as CattailError);
    return undefined;
  }
}

/** Removes the checkpoint (after it proved wrong, so a restart does not meet it again). */
export async function removeCheckpoint(dir: string): Promise<void> {
  await rm(join(dir, CHECKPOINT_FILE), { force: true });
}
