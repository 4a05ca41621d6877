/**
 * The replica's checkpoint format (`cattail serve --state-dir`, issue #18 "Warm restart"): per
 * resource, the projected state its views hold (key → encoded value, and which keys each object
 * produced) with the resourceVersion that state stands for, so a restarted replica resumes its
 * watches from there instead of listing. Pure: encoding and verification only; the writer and the
 * loader are replica-state-file.ts and upstream/warm-state.ts.
 *
 * Why projected values, not the Kubernetes objects: the upstream never keeps the objects (that is
 * the point of projecting: a pod's endpoint value is ~13× smaller than the pod), and the views'
 * values plus their ownership index are exactly what a relist diff and a later delete need. The
 * identity below pins the projections that made them.
 *
 * Format (version 2), `<stateDir>/cattail-replica.ckpt`, in the shared envelope (sealed-file.ts):
 *   "CTLRSTA\n" ‖ u32be version ‖ u32be bodyLength ‖ body (plain msgpack) ‖ SHA-256(body)
 * The body: `{ identity, cluster?, resources: [{ name, resourceVersion, views: [{ id, values: [[key, bin]…],
 * owned: [[objectKey, [key…]]…] }] }] }`. Version 1 (never wired to a replica) stored object JSON.
 *
 * `identity` names what the state is valid for (the cluster, the feeds and projection version
 * that shaped it): a checkpoint of another identity is foreign and ignored, never trusted, because
 * resuming a watch from another cluster's resourceVersion would silently serve wrong state.
 * `cluster` (optional: absent in files of older builds, and while the name was not read) is the
 * cluster's name by its kube-system UID (upstream/cluster-name.ts). It is not part of `identity`
 * because it is known only after a request the file's loader makes at start: the API server
 * address and CA in `identity` are what a cluster built again on the same hosts may keep, its
 * kube-system UID is not (warm-state.ts compares the two).
 */
import { Packr } from 'msgpackr';
import { CattailError } from '../../errors.js';
import { exactBuffer } from '../../snapshot/index.js';
import { packDetached } from '../../msgpack-pack.js';
import { seal, unseal } from '../../sealed-file.js';
import { isClusterName } from '../../../proto/types.js';

const MAGIC = Buffer.from('CTLRSTA\n', 'latin1');
export const REPLICA_CHECKPOINT_VERSION = 2;
export const REPLICA_CHECKPOINT_FILE = 'cattail-replica.ckpt';

const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true });

/** One view of a resource (one projection and selector pair; upstream/resource-view.ts). */
export interface ViewCheckpoint {
  /** The view's identity (projection and selectors); a restore matches views by it. */
  readonly id: string;
  /** Store key → encoded value. */
  readonly values: readonly (readonly [string, Buffer])[];
  /** Object key → the keys it produced, for objects whose keys are not just their own key. */
  readonly owned: readonly (readonly [string, readonly string[]])[];
}

export interface ResourceCheckpoint {
  readonly name: string;
  /** The resourceVersion the views' state stands for; the watch resumes from it. */
  readonly resourceVersion: string;
  readonly views: readonly ViewCheckpoint[];
  /**
   * The resource was not served (an optional CRD that is not installed): no views, and
   * `resourceVersion` is the not-served evidence (upstream/not-served.ts) reported as its watermark.
   * Restored so the restored revision names it at the value agents hold, and they can rebase.
   */
  readonly notServed?: boolean;
}

export interface ReplicaCheckpoint {
  readonly identity: string;
  /** The cluster's name (kube-system UID) when the state was saved; undefined: not known then. */
  readonly cluster?: string | undefined;
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
  const body = packDetached(packr, { identity: cp.identity, ...(cp.cluster !== undefined ? { cluster: cp.cluster } : {}), resources: cp.resources });
  const file = seal(MAGIC, REPLICA_CHECKPOINT_VERSION, body);
  if (file.length > maxBytes) throw bad(`replica checkpoint would be ${file.length} bytes, above the ${maxBytes}-byte bound`, { bytes: file.length, maxBytes });
  return file;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;

function decodeView(v: unknown, resource: string): ViewCheckpoint {
  if (!isObj(v) || typeof v['id'] !== 'string' || !Array.isArray(v['values']) || !Array.isArray(v['owned'])) throw bad(`replica checkpoint view of ${resource} has the wrong shape`, { resource });
  const values: (readonly [string, Buffer])[] = [];
  for (const e of v['values'] as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !isBytes(e[1])) throw bad(`replica checkpoint value of ${resource} has the wrong shape`, { resource });
    // A copy of its own: msgpackr hands out slices of the file's buffer, and the resource views keep
    // unchanged values for good (a relist keeps the previous Buffer when equal), so one slice of it
    // pinned the whole file (~100 MB at 150k pods) for the life of the process. Exact-size, the
    // store takes the same Buffer without another copy (exactBuffer).
    values.push([e[0], exactBuffer(e[1])]);
  }
  const owned: (readonly [string, readonly string[]])[] = [];
  for (const e of v['owned'] as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || !Array.isArray(e[1]) || !(e[1] as unknown[]).every((k) => typeof k === 'string')) {
      throw bad(`replica checkpoint ownership entry of ${resource} has the wrong shape`, { resource });
    }
    owned.push([e[0], e[1] as string[]]);
  }
  return { id: v['id'], values, owned };
}

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
  if (raw['identity'] !== identity) throw bad('replica checkpoint was written for another cluster, feeds or projection version', { identity: raw['identity'] });
  const cluster = raw['cluster'];
  if (cluster !== undefined && !isClusterName(cluster)) throw bad('replica checkpoint cluster has the wrong shape');
  const resources: ResourceCheckpoint[] = [];
  for (const r of raw['resources'] as unknown[]) {
    if (!isObj(r) || typeof r['name'] !== 'string' || typeof r['resourceVersion'] !== 'string' || r['resourceVersion'] === '' || !Array.isArray(r['views'])) {
      throw bad('replica checkpoint resource has the wrong shape');
    }
    const name = r['name'];
    const notServed = r['notServed'];
    if (notServed !== undefined && typeof notServed !== 'boolean') throw bad('replica checkpoint resource has the wrong shape');
    if (notServed === true && (r['views'] as unknown[]).length > 0) throw bad('replica checkpoint: a resource not served holds views');
    resources.push({ name, resourceVersion: r['resourceVersion'], views: (r['views'] as unknown[]).map((v) => decodeView(v, name)), ...(notServed === true ? { notServed } : {}) });
  }
  return { identity, ...(typeof cluster === 'string' ? { cluster } : {}), resources };
}
