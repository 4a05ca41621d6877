/**
 * The replica's checkpoint format (`cattail serve --state-dir`, issue #18 "Warm restart"): each
 * resource's objects as the upstream keeps them for relist diffing and projection, with the
 * resourceVersion its watch would resume from. Pure: encoding and verification only; the writer
 * and the loader live beside the upstream.
 *
 * Format (version 1), `<stateDir>/cattail-replica.ckpt`, in the shared envelope (sealed-file.ts):
 *   "CTLRSTA\n" ‖ u32be version ‖ u32be bodyLength ‖ body (plain msgpack) ‖ SHA-256(body)
 * The body: `{ identity, resources: [{ name, resourceVersion, objects: [[key, json]…] }] }`.
 *
 * `identity` names what the objects are valid for (the cluster, the options and projection version
 * that shaped them): a checkpoint of another identity is foreign and ignored, never trusted, because
 * resuming a watch from another cluster's resourceVersion would silently serve wrong state.
 * Objects are stored as their JSON text, not re-encoded: that is the form a relist compares against.
 */
import { Packr } from 'msgpackr';
import { CattailError } from '../../errors.js';
import { seal, unseal } from '../../sealed-file.js';

const MAGIC = Buffer.from('CTLRSTA\n', 'latin1');
export const REPLICA_CHECKPOINT_VERSION = 1;
export const REPLICA_CHECKPOINT_FILE = 'cattail-replica.ckpt';

const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true });

export interface ResourceCheckpoint {
  readonly name: string;
  readonly resourceVersion: string;
  /** key (namespace/name) → the object's JSON text. */
  readonly objects: ReadonlyMap<string, string>;
}

export interface ReplicaCheckpoint {
  readonly identity: string;
  readonly resources: readonly ResourceCheckpoint[];
}

function bad(message: string, details?: Record<string, unknown>): CattailError {
  return new CattailError('CATTAIL_SERVER_STATE_INVALID', message, details === undefined ? undefined : { details });
}

/**
 * Encodes a checkpoint. @throws CattailError CATTAIL_SERVER_STATE_INVALID when the file would
 * exceed `maxBytes` (the caller keeps the previous checkpoint and reports it).
 */
export function encodeReplicaCheckpoint(cp: ReplicaCheckpoint, maxBytes: number): Buffer {
  const body = Buffer.from(packr.pack({
    identity: cp.identity,
    resources: cp.resources.map((r) => ({ name: r.name, resourceVersion: r.resourceVersion, objects: [...r.objects] })),
  }));
  const file = seal(MAGIC, REPLICA_CHECKPOINT_VERSION, body);
  if (file.length > maxBytes) throw bad(`replica checkpoint would be ${file.length} bytes, above the ${maxBytes}-byte bound`, { bytes: file.length, maxBytes });
  return file;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Decodes and verifies a checkpoint written for `identity`.
 * @throws CattailError CATTAIL_SERVER_STATE_INVALID (corrupt, truncated, other version, foreign)
 */
export function decodeReplicaCheckpoint(buf: Buffer, identity: string): ReplicaCheckpoint {
  const body = unseal(buf, MAGIC, REPLICA_CHECKPOINT_VERSION, 'replica checkpoint', bad);
  let raw: unknown;
  try {
    raw = packr.unpack(body);
  } catch (err) {
    throw bad(`replica checkpoint body does not decode: ${(err as Error).message}`);
  }
  if (!isObj(raw) || typeof raw['identity'] !== 'string' || !Array.isArray(raw['resources'])) throw bad('replica checkpoint body has the wrong shape');
  if (raw['identity'] !== identity) throw bad('replica checkpoint was written for another cluster, options or projection version', { identity: raw['identity'] });
  const resources: ResourceCheckpoint[] = [];
  for (const r of raw['resources'] as unknown[]) {
    if (!isObj(r) || typeof r['name'] !== 'string' || typeof r['resourceVersion'] !== 'string' || r['resourceVersion'] === '' || !Array.isArray(r['objects'])) {
      throw bad('replica checkpoint resource has the wrong shape');
    }
    const objects = new Map<string, string>();
    for (const o of r['objects'] as unknown[]) {
      if (!Array.isArray(o) || o.length !== 2 || typeof o[0] !== 'string' || typeof o[1] !== 'string') throw bad(`replica checkpoint object of ${r['name']} has the wrong shape`, { resource: r['name'] });
      objects.set(o[0], o[1]);
    }
    resources.push({ name: r['name'], resourceVersion: r['resourceVersion'], objects });
  }
  return { identity, resources };
}
