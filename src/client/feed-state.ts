/**
 * One feed's local copy and the rules for changing it. No I/O and no timers: the connection feeds
 * it decoded messages and acts on what it returns (a change batch to emit, a coded error to close
 * with, replica-behind to fail over). Keeping the rules here lets tests drive every case without a
 * socket.
 *
 * Invariants:
 * - `entries` changes only when a unit completes (a SNAPSHOT_END that passed its checks, the last
 *   frame of a DELTA unit). A connection that dies mid-unit leaves the state exactly as it was.
 * - `digest` always equals the §10 digest of `entries`.
 * - A change batch lists only real changes: upserts whose bytes differ from what is held,
 *   deletions of keys that were held. A resync that returns the same data emits nothing.
 * - `appliedWatermarks` only moves forward: a snapshot whose watermarks are older for any resource
 *   is refused before it touches the state (PROTOCOL.md §8).
 * - A resource leaves `appliedWatermarks` only for `retiredWatermarks`, when a snapshot replaces
 *   the state from a server whose feed no longer carries it (§8 "A feed's resources"), and comes
 *   back from there no older. Together they are everything ever applied, within §8's bounds.
 */
import { CattailError } from '../errors.js';
import { unexpected } from './close-errors.js';
import type { FeedCheckpoint } from './checkpoint.js';
import { IncrementalDigest } from './digest.js';
import { bucketOfHashHi, hasBucket } from '../../proto/bucket-set.js';
import { entryHashInto } from '../../proto/digest.js';
import { MAX_WATERMARKS, MAX_WATERMARKS_BYTES } from '../../proto/types.js';
import { isResourceVersion } from '../../proto/resource-version.js';
import { aboveWatermarkBounds, behindResources, mergeWatermarks, type BehindResource, type Watermarks } from './watermarks.js';

/** `[key, value]` with the value's msgpack bytes (PROTOCOL.md §3.1). */
export type RawEntry = readonly [key: string, value: Uint8Array];

/** Server-reported sync status of a feed, or `unknown` while no live connection has reported one. */
export type FeedSync = 'unknown' | 'waiting' | 'resyncing' | 'in-sync';

/** One applied unit's real changes, values still as bytes (the client decodes them for events). */
export interface RawChangeBatch {
  feed: string;
  revision: number;
  /** `snapshot`: the state was replaced by a (re)sync and reconciled; `delta`: a DELTA unit. */
  cause: 'snapshot' | 'delta';
  upserts: RawEntry[];
  deletes: string[];
  /**
   * A DELTA unit's upserts whose value equals the one held (not in `upserts`): a key that changed
   * and came back at the server between what this client saw (A→B→A), which the server sends as
   * a change (its store's Update.force). Only relays use them (client.ts passes them on in raw
   * mode): a second tier must record them as changes too, or a rebase between its replicas leaves
   * an agent holding B with B.
   */
  reasserted?: RawEntry[];
}

export interface SnapshotEndInput {
  revision: number;
  digest: Uint8Array;
  watermarks: Watermarks;
  status: 'waiting' | 'resyncing' | 'in-sync';
  stale: boolean;
  token: Uint8Array;
}

export interface StatusInput {
  revision: number;
  status: 'waiting' | 'resyncing' | 'in-sync';
  stale: boolean;
  watermarks: Watermarks;
  digest?: Uint8Array | undefined;
  token: Uint8Array;
}

/** What completing a unit or reading a status did. */
export type ApplyResult =
  | { kind: 'applied'; batch: RawChangeBatch | undefined; statusChanged: boolean }
  | { kind: 'behind'; behind: BehindResource[] };

/**
 * What a STATUS did: as a unit, or `repair` (its digest did not match and the connection can
 * repair, §7.2): the status is recorded but not verified; send REPAIR_REQUEST with `sums`.
 */
export type StatusResult =
  | ApplyResult
  | { kind: 'repair'; revision: number; sums: Buffer; statusChanged: boolean };

/** What a completed repair changed (client counters). */
export interface RepairOutcome {
  /** Upserts and deletions the repair really applied (byte-equal upserts are not counted). */
  entries: number;
}

interface PendingSnapshot {
  revision: number;
  expected: number;
  rawBytes: number;
  entries: Map<string, Buffer>;
  digest: IncrementalDigest;
}

interface PendingDelta {
  from: number;
  to: number;
  upserts: Map<string, Buffer>;
  deletes: Set<string>;
  /** The unit is a rebase's (startConnection('rebase')): the state becomes the new replica's. */
  rebase: boolean;
}

function stateError(code: 'CATTAIL_CLIENT_REVISION_GAP' | 'CATTAIL_CLIENT_DIGEST_MISMATCH' | 'CATTAIL_CLIENT_REPAIR_FAILED', message: string, details: Record<string, unknown>): CattailError {
  return new CattailError(code, message, { details });
}


export class FeedState {
  readonly entries = new Map<string, Buffer>();
  private readonly digest = new IncrementalDigest();
  /**
   * Replica-local revision of the applied state, in the numbering of the server whose unit made it
   * (it stays while a snapshot or rebase from another server is under way: startConnection);
   * undefined before any state.
   */
  revision: number | undefined;
  /** Last resume token and the revision it was issued at. */
  token: Uint8Array | undefined;
  tokenRevision: number | undefined;
  /** The watermarks the held state was applied at, per resource the feed carried when it was (the union, §8). */
  appliedWatermarks: Record<string, string> = {};
  /**
   * Resources applied once that the feed's definition no longer carries (a snapshot from a server
   * whose WELCOME listed the feed's `resources` without them), at the last resourceVersion
   * applied. Not in the held state, so never offered for a rebase; sent as `notBefore`, so a
   * replica that still carries one is held to it, and checked again when a server names one.
   */
  retiredWatermarks: Record<string, string> = {};
  /** The feed's resources as this connection's WELCOME listed them (with a snapshot; §8). */
  private carried: readonly string[] | undefined;
  sync: FeedSync = 'unknown';
  /** The data model the server announced for the feed (WELCOME `model`; undefined from older servers). Set with welcomeModel(). */
  model: string | undefined;
  /**
   * The model the held entries are in: the announced one when a snapshot of it completed (or the
   * checkpoint's, restored). A WELCOME announcing another model changes `model` at once, while
   * the entries stay the old model's until its snapshot ends: no checkpoint is taken meanwhile.
   */
  private entriesModel: string | undefined;
  stale = false;
  /** The revision at which the digest last matched the server's (SNAPSHOT_END or STATUS). */
  verifiedRevision: number | undefined;
  /**
   * Times the held state skipped part of the feed's history (FeedStatus.historySkips): a snapshot
   * that replaced a loaded state, or a DELTA unit that deleted keys not held (created and deleted
   * between two units this client received).
   */
  historySkips = 0;
  /** True once any snapshot was applied: reconciliation then emits deletions for vanished keys. */
  private loaded = false;
  private snapshot: PendingSnapshot | undefined;
  private delta: PendingDelta | undefined;
  /** Catch-up after resume: the first DELTA may start at the token's revision (see `deltaFrame`). */
  private resumeFrom: number | undefined;
  /**
   * WELCOME said `snapshot` and its SNAPSHOT_END has not come: the held revision is another
   * server's numbering (or another store's), which this connection's DELTA and STATUS must never be
   * compared with (PROTOCOL.md §2.1), so neither is taken before the snapshot (4002). Compared,
   * a DELTA whose `fromRevision` happened to equal the held one was applied onto a state of
   * another numbering, and a STATUS at that revision was taken as this server's word on it.
   */
  private snapshotDue = false;
  /**
   * A rebase's revision on the new replica (WELCOME): its DELTA starts there. Kept apart from
   * `revision`, which stays the held state's (the token's replica's numbering) until that DELTA is
   * applied: a connection lost before it leaves the state, the token and their revision as they
   * were, and a resume on the old replica compares like with like.
   */
  private rebaseFrom: number | undefined;
  /**
   * `appliedWatermarks` describe exactly the held state: the last unit applied was followed by a
   * SNAPSHOT_END or STATUS at its revision. Only then may they be offered for a rebase (§7.1):
   * deltas applied after the last STATUS moved the state past them.
   */
  private watermarksExact = false;
  /**
   * Range repair (PROTOCOL.md §7.2). `canRepair`: both sides advertised `repair.buckets` on the
   * current connection. `repair` moves requested → announced (REPAIR read: the next DELTA unit
   * replaces `buckets`) → applied (the unit is in; the next STATUS with a digest must match, or
   * the repair failed). Reset by every new connection and by a snapshot.
   */
  canRepair = false;
  private repair: { phase: 'requested' } | { phase: 'announced'; from: number; to: number; buckets: Buffer } | { phase: 'applied' } | undefined;
  /** Set when a repair's DELTA unit completes; the connection reads and clears it for counters. */
  lastRepair: RepairOutcome | undefined;

  constructor(readonly name: string) {}

  get size(): number {
    return this.entries.size;
  }

  /** Snapshot progress for displays: entries received so far and the announced total. */
  get snapshotProgress(): { received: number; total: number; rawBytes: number } | undefined {
    const s = this.snapshot;
    return s === undefined ? undefined : { received: s.entries.size, total: s.expected, rawBytes: s.rawBytes };
  }

  /**
   * A new connection answered this feed with `mode`. Pending units of the old connection are
   * dropped (they were never applied). The held state, its revision and its token stay what they
   * are until a unit of the new connection replaces them: a snapshot cut off before its END, or a
   * rebase before its DELTA, changed nothing, and the next connection (perhaps to the token's
   * replica, which then resumes) starts from that state. Clearing the revision at a snapshot's
   * start made that resume a revision gap (4014), a lost checkpoint and a full download. After
   * `resume` the server continues from the presented token's revision.
   */
  /**
   * The model a WELCOME announced for the feed. A resume or rebase continues the held entries
   * under the same feed definition (the token's projection, §7), so they are in that model: a
   * checkpoint written before models existed (none recorded) was otherwise never taken again
   * after such a continuation, as no snapshot came to set the entries' model (a restart then fell
   * back to that old file). A snapshot sets it at its end (the entries are the old model's until then).
   */
  welcomeModel(model: string | undefined, mode: 'resume' | 'rebase' | 'snapshot'): void {
    this.model = model;
    if (mode !== 'snapshot' && this.loaded) this.entriesModel = model;
  }

  startConnection(mode: 'resume' | 'rebase' | 'snapshot', rebaseRevision?: number, resources?: readonly string[]): void {
    // Only a snapshot replaces the whole state, so only its list may retire a resource: a resume
    // or rebase continues a state of the same feed definition (the token's projection, §7).
    this.carried = mode === 'snapshot' ? resources : undefined;
    this.snapshot = undefined;
    this.delta = undefined;
    this.repair = undefined;
    this.sync = 'unknown';
    this.resumeFrom = undefined;
    this.rebaseFrom = undefined;
    this.snapshotDue = mode === 'snapshot';
    if (mode === 'rebase' && rebaseRevision !== undefined) {
      // The new replica vouches that our state equals its state at this revision as far as the
      // coming DELTA does not say otherwise; the STATUS digest after it checks the claim.
      this.rebaseFrom = rebaseRevision;
    } else if (mode === 'resume') {
      this.resumeFrom = this.tokenRevision;
    }
  }

  /** The watermarks applied, retired ones included, for HELLO's `notBefore` (PROTOCOL.md §8); undefined before any. */
  notBeforeWatermarks(): Record<string, string> | undefined {
    const all = this.everApplied();
    return Object.keys(all).length === 0 ? undefined : { ...all };
  }

  /** The retired watermarks, for HELLO's `notBefore` beside rebase `watermarks` (§4.1); undefined when none. */
  retiredNotBefore(): Record<string, string> | undefined {
    return Object.keys(this.retiredWatermarks).length === 0 ? undefined : { ...this.retiredWatermarks };
  }

  /** The watermarks to offer with the token for a rebase (PROTOCOL.md §7.1), or undefined. */
  rebaseWatermarks(): Record<string, string> | undefined {
    if (!this.watermarksExact || this.token === undefined || Object.keys(this.appliedWatermarks).length === 0) return undefined;
    return { ...this.appliedWatermarks };
  }

  /**
   * What checkpoint() would save, as a string that changes whenever that would (revision, token
   * revision, watermarks), or undefined when it would save nothing: a keeper compares it before it
   * copies the entries.
   */
  checkpointKey(): string | undefined {
    const at = this.checkpointable();
    return at === undefined ? undefined : `${at.revision}|${at.tokenRevision}|${this.model ?? ''}|${JSON.stringify(this.appliedWatermarks)}|${JSON.stringify(this.retiredWatermarks)}`;
  }

  /** The revision and token a checkpoint would stand for, or undefined when none may be taken now. */
  private checkpointable(): { revision: number; tokenRevision: number; token: Uint8Array } | undefined {
    if (!this.watermarksExact || this.revision === undefined || this.verifiedRevision !== this.revision) return undefined;
    if (this.token === undefined || this.tokenRevision === undefined || this.model !== this.entriesModel) return undefined;
    return { revision: this.revision, tokenRevision: this.tokenRevision, token: this.token };
  }

  /**
   * The state to checkpoint (checkpoint.ts), or undefined unless the held state is exactly the one
   * the server's digest matched at its revision, with a token and the watermarks that describe it.
   */
  checkpoint(): FeedCheckpoint | undefined {
    const at = this.checkpointable();
    if (at === undefined) return undefined;
    return {
      name: this.name, revision: at.revision, tokenRevision: at.tokenRevision, token: at.token,
      watermarks: { ...this.appliedWatermarks }, ...(Object.keys(this.retiredWatermarks).length > 0 ? { retired: { ...this.retiredWatermarks } } : {}), digest: this.currentDigest(), ...(this.entriesModel !== undefined ? { model: this.entriesModel } : {}), entries: new Map(this.entries),
    };
  }

  /**
   * Takes a verified checkpoint as the held state, before any connection: the next HELLO presents
   * its token and watermarks, so the server resumes or rebases instead of sending a snapshot.
   * Returns the entries as one change batch for the host.
   */
  restore(cp: FeedCheckpoint): RawChangeBatch {
    this.entries.clear();
    const digest = new IncrementalDigest();
    for (const [k, v] of cp.entries) {
      this.entries.set(k, v);
      digest.add(k, v);
    }
    this.digest.adopt(digest);
    this.loaded = true;
    this.model = cp.model;
    this.entriesModel = cp.model;
    this.revision = cp.revision;
    this.verifiedRevision = cp.revision;
    this.token = cp.token;
    this.tokenRevision = cp.tokenRevision;
    this.appliedWatermarks = { ...cp.watermarks };
    this.retiredWatermarks = { ...(cp.retired ?? {}) };
    this.watermarksExact = true;
    return { feed: this.name, revision: cp.revision, cause: 'snapshot', upserts: [...this.entries], deletes: [] };
  }

  /** The connection is gone: the state stays, its sync status is no longer confirmed by anyone. */
  endConnection(): void {
    this.snapshot = undefined;
    this.delta = undefined;
    this.repair = undefined;
    this.sync = 'unknown';
  }

  /** Forget the resume token (after a digest mismatch or gap: the next connection must snapshot). */
  dropToken(): void {
    this.token = undefined;
    this.tokenRevision = undefined;
  }

  /**
   * The held state came from another cluster (§8 "Another cluster"): its watermarks are that
   * cluster's resourceVersions and its token another replica set's. Forgotten, so that this
   * cluster's snapshot is not refused as older than them; the entries stay until it replaces them.
   */
  forgetCluster(): void {
    this.appliedWatermarks = {};
    this.retiredWatermarks = {};
    this.watermarksExact = false;
    this.dropToken();
  }

  snapshotBegin(revision: number, expected: number, rawBytes: number): void {
    if (this.snapshot !== undefined || this.delta !== undefined) throw unexpected(`SNAPSHOT_BEGIN inside an unfinished unit of feed ${this.name}`, { feed: this.name });
    this.snapshot = { revision, expected, rawBytes, entries: new Map(), digest: new IncrementalDigest() };
  }

  snapshotChunk(revision: number, entries: readonly RawEntry[]): void {
    const s = this.snapshot;
    if (s === undefined) throw unexpected(`SNAPSHOT_CHUNK without SNAPSHOT_BEGIN on feed ${this.name}`, { feed: this.name });
    if (revision !== s.revision) throw unexpected(`SNAPSHOT_CHUNK revision ${revision} inside snapshot ${s.revision} of feed ${this.name}`, { feed: this.name });
    for (const [key, value] of entries) {
      // Decoded values are views into the frame; copying releases the frame (up to maxFrameBytes)
      // instead of pinning it for as long as any one of its values lives.
      const copy = Buffer.from(value);
      const prev = s.entries.get(key);
      if (prev !== undefined) s.digest.remove(key, prev);
      s.entries.set(key, copy);
      s.digest.add(key, copy);
    }
    // Refused as soon as it holds more than it announced, not at END: a broken or hostile peer
    // cannot make the client collect without bound (its memory is the announced count and a chunk).
    if (s.entries.size > s.expected) {
      this.snapshot = undefined;
      throw this.snapshotRefused(`feed ${this.name}: snapshot ${s.revision} announced ${s.expected} entries and already holds ${s.entries.size}`, {
        feed: this.name, revision: s.revision, expected: s.expected, received: s.entries.size,
      });
    }
  }

  /**
   * An incoming snapshot failed its own check (count or digest): 4014 as any state check, but
   * nothing was applied, so the held state is as verified as before and `snapshotOnly` tells the
   * client to keep its token and checkpoint. Taken for a mismatch of the held state, they were
   * dropped: a restart lost its checkpoint, and the token's replica, which could resume, sent a
   * full snapshot. Not while a range repair is under way (false then): a STATUS of this
   * connection found the held state wrong, and the snapshot was to mend it.
   */
  private snapshotRefused(message: string, details: Record<string, unknown>): CattailError {
    return stateError('CATTAIL_CLIENT_DIGEST_MISMATCH', message, { ...details, snapshotOnly: this.repair === undefined });
  }

  /** Completes a snapshot: checks count, digest and watermarks, then reconciles and replaces the state. */
  snapshotEnd(end: SnapshotEndInput): ApplyResult {
    const s = this.snapshot;
    if (s === undefined) throw unexpected(`SNAPSHOT_END without SNAPSHOT_BEGIN on feed ${this.name}`, { feed: this.name });
    if (end.revision !== s.revision) throw unexpected(`SNAPSHOT_END revision ${end.revision} inside snapshot ${s.revision} of feed ${this.name}`, { feed: this.name });
    this.snapshot = undefined;
    // The unit is over whatever its checks find: refused, the connection ends with it.
    this.snapshotDue = false;
    if (s.entries.size !== s.expected) {
      throw this.snapshotRefused(`feed ${this.name}: snapshot ${s.revision} announced ${s.expected} entries but held ${s.entries.size}`, {
        feed: this.name, revision: s.revision, expected: s.expected, received: s.entries.size,
      });
    }
    const got = s.digest.digest();
    if (!got.equals(Buffer.from(end.digest))) {
      throw this.snapshotRefused(`feed ${this.name}: snapshot ${s.revision} digest ${hex(end.digest)} but its entries hash to ${got.toString('hex')}`, {
        feed: this.name, revision: s.revision, expected: hex(end.digest), computed: got.toString('hex'),
      });
    }
    // Before anything changes: a refusal must leave the state as it was.
    this.checkDecimal(end.watermarks);
    const floor = this.floorFor(end.watermarks, this.carried);
    const behind = behindResources(floor, end.watermarks);
    if (behind.length > 0) return { kind: 'behind', behind };
    const accepted = this.acceptedWatermarks(floor, end.watermarks);

    const upserts: RawEntry[] = [];
    const deletes: string[] = [];
    for (const [key, value] of s.entries) {
      const old = this.entries.get(key);
      if (old === undefined || !old.equals(value)) upserts.push([key, value]);
    }
    if (this.loaded) {
      for (const key of this.entries.keys()) if (!s.entries.has(key)) deletes.push(key);
      this.historySkips++;
    }
    this.entries.clear();
    for (const [k, v] of s.entries) this.entries.set(k, v);
    this.digest.adopt(s.digest);
    this.loaded = true;
    this.entriesModel = this.model;
    this.revision = s.revision;
    this.resumeFrom = undefined;
    this.token = Buffer.from(end.token);
    this.tokenRevision = s.revision;
    this.appliedWatermarks = accepted.applied;
    this.retiredWatermarks = accepted.retired;
    this.watermarksExact = true;
    this.stale = end.stale;
    this.sync = end.status;
    this.verifiedRevision = s.revision;
    // A snapshot (the server's fallback for a repair too large to send, §7.2) settles any repair.
    this.repair = undefined;
    const batch = upserts.length + deletes.length > 0 ? { feed: this.name, revision: s.revision, cause: 'snapshot' as const, upserts, deletes } : undefined;
    return { kind: 'applied', batch, statusChanged: true };
  }

  /**
   * One DELTA frame. Returns the applied batch on the unit's last frame (undefined when nothing
   * really changed), or null while the unit continues.
   */
  deltaFrame(from: number, to: number, more: boolean, upserts: readonly RawEntry[], deletes: readonly string[]): RawChangeBatch | undefined | null {
    if (this.snapshot !== undefined) throw unexpected(`DELTA inside a snapshot of feed ${this.name}`, { feed: this.name });
    if (this.snapshotDue) throw unexpected(`DELTA ${from}→${to} before the snapshot of feed ${this.name} (WELCOME mode snapshot)`, { feed: this.name, from, to });
    let d = this.delta;
    if (d === undefined) {
      // After a resume the server continues from the token's revision, which may be older than the
      // applied one when deltas arrived after the last STATUS. The compacted catch-up holds the
      // latest value of every key changed since the token, so applying it on top of the newer
      // state yields the same state as applying it to the token's state (byte-equal upserts are
      // then filtered out as non-changes).
      const rebase = this.rebaseFrom !== undefined;
      const catchUp = rebase
        ? from === this.rebaseFrom
        : this.resumeFrom !== undefined && from === this.resumeFrom && this.revision !== undefined && from <= this.revision;
      // A rebase's DELTA starts at the new replica's revision, never at the held one (another numbering).
      const okFrom = rebase ? catchUp : from === this.revision || catchUp;
      // A catch-up from the current revision is empty and moves nothing (to = from, §7); so may
      // a repair's unit when the server did not move (§7.2): it replaces buckets, not revisions.
      const r = this.repair;
      const repairing = r?.phase === 'announced';
      // First: after a REPAIR the next unit MUST have its revisions (§7.2 step 3, else 4002),
      // whatever else is wrong with it; a gap check first answered a wrong `from` with 4014.
      if (repairing && (r.from !== from || r.to !== to)) {
        throw unexpected(`DELTA ${from}→${to} after REPAIR ${r.from}→${r.to} of feed ${this.name}`, { feed: this.name });
      }
      if (!okFrom || to < from || (to === from && !catchUp && !repairing)) {
        throw stateError('CATTAIL_CLIENT_REVISION_GAP', `feed ${this.name}: DELTA ${from}→${to} does not follow the applied revision ${String(this.revision)}`, {
          feed: this.name, from, to, applied: this.revision,
        });
      }
      d = { from, to, upserts: new Map(), deletes: new Set(), rebase };
      this.delta = d;
    } else if (d.from !== from || d.to !== to) {
      throw unexpected(`DELTA ${from}→${to} inside the unit ${d.from}→${d.to} of feed ${this.name}`, { feed: this.name });
    }
    for (const [key, value] of upserts) {
      d.deletes.delete(key);
      d.upserts.set(key, Buffer.from(value));
    }
    for (const key of deletes) {
      d.upserts.delete(key);
      d.deletes.add(key);
    }
    if (more) return null;
    this.delta = undefined;
    this.resumeFrom = undefined;
    this.rebaseFrom = undefined;
    this.watermarksExact = false;
    // The state is the new replica's now; the old replica's token no longer describes it. Kept,
    // a connection lost before the STATUS with the new token brought it back to the old replica,
    // whose catch-up from its own revision would land on the new replica's state (a mix that can
    // be older than what was applied). Without a token the next HELLO gets a snapshot, no older
    // than the applied watermarks (notBefore).
    if (d.rebase) {
      this.dropToken();
      // Verified in the old replica's numbering: until this replica's digest matches, nothing is.
      this.verifiedRevision = undefined;
    }
    const realUpserts: RawEntry[] = [];
    const realDeletes: string[] = [];
    let reasserted: RawEntry[] | undefined;
    // A repair's unit resends every entry of the repaired buckets, most of them unchanged: not
    // news to a relay (forced, they were a tier-2 DELTA of up to half the state to every agent).
    const repairing = this.repair?.phase === 'announced';
    for (const [key, value] of d.upserts) {
      const old = this.entries.get(key);
      if (old !== undefined && old.equals(value)) {
        if (!repairing) (reasserted ??= []).push([key, value]);
        continue;
      }
      if (old !== undefined) this.digest.remove(key, old);
      this.entries.set(key, value);
      this.digest.add(key, value);
      realUpserts.push([key, value]);
    }
    let unheld = 0;
    for (const key of d.deletes) {
      const old = this.entries.get(key);
      if (old === undefined) {
        unheld++;
        continue;
      }
      this.digest.remove(key, old);
      this.entries.delete(key);
      realDeletes.push(key);
    }
    const r = this.repair;
    if (r?.phase === 'announced') {
      // §7.2: the unit held every entry of the repaired buckets; what else is held there goes.
      // One entry hash per held key (the client keeps no per-key hash; see digest.ts).
      const h = new Uint32Array(2);
      for (const [key, value] of this.entries) {
        if (d.upserts.has(key)) continue;
        entryHashInto(key, value, h);
        if (!hasBucket(r.buckets, bucketOfHashHi(h[0] as number))) continue;
        this.digest.remove(key, value);
        this.entries.delete(key);
        realDeletes.push(key);
      }
      this.repair = { phase: 'applied' };
      this.lastRepair = { entries: realUpserts.length + realDeletes.length };
    }
    this.revision = d.to;
    if (unheld > 0) this.historySkips++;
    if (realUpserts.length + realDeletes.length === 0 && reasserted === undefined) return undefined;
    return { feed: this.name, revision: d.to, cause: 'delta', upserts: realUpserts, deletes: realDeletes, ...(reasserted !== undefined ? { reasserted } : {}) };
  }

  /** A STATUS: checks revision, digest and (when in sync) watermarks, then records it. */
  status(st: StatusInput): StatusResult {
    if (this.snapshot !== undefined || this.delta !== undefined) throw unexpected(`STATUS inside an unfinished unit of feed ${this.name}`, { feed: this.name });
    if (this.snapshotDue) throw unexpected(`STATUS at revision ${st.revision} before the snapshot of feed ${this.name} (WELCOME mode snapshot)`, { feed: this.name, revision: st.revision });
    if (st.revision !== this.revision) {
      throw stateError('CATTAIL_CLIENT_REVISION_GAP', `feed ${this.name}: STATUS at revision ${st.revision} but the applied revision is ${String(this.revision)}`, {
        feed: this.name, status: st.revision, applied: this.revision,
      });
    }
    // §4.7: the STATUS of a transition to in-sync carries a digest; one without (scope.watermarks)
    // only moves the token and watermarks of a feed already in sync. Taken, it would report in
    // sync (whenInSync, the syncer's InSync) with no digest ever checked.
    if (st.digest === undefined && st.status === 'in-sync' && this.sync !== 'in-sync') {
      throw unexpected(`feed ${this.name}: an in-sync STATUS without digest before any with one`, { feed: this.name, revision: st.revision });
    }
    // Before anything changes: a refusal must leave the state as it was.
    this.checkDecimal(st.watermarks);
    const floor = this.floorFor(st.watermarks, undefined);
    const accepted = this.acceptedWatermarks(floor, st.watermarks);
    const wasRepairing = this.repair !== undefined;
    let repairAsk: { revision: number; sums: Buffer } | undefined;
    if (st.digest !== undefined) {
      const mine = this.digest.digest();
      const r = this.repair;
      if (!mine.equals(Buffer.from(st.digest))) {
        if (r?.phase === 'applied') {
          throw stateError('CATTAIL_CLIENT_REPAIR_FAILED', `feed ${this.name}: after a range repair, STATUS at revision ${st.revision} has digest ${hex(st.digest)} but the local state hashes to ${mine.toString('hex')}`, {
            feed: this.name, revision: st.revision, expected: hex(st.digest), computed: mine.toString('hex'),
          });
        }
        // A repair is under way (r is requested or announced): statuses before its answer still
        // see the old divergence. Otherwise ask for one when the connection can (§7.2).
        if (r === undefined) {
          if (!this.canRepair) {
            throw stateError('CATTAIL_CLIENT_DIGEST_MISMATCH', `feed ${this.name}: STATUS at revision ${st.revision} has digest ${hex(st.digest)} but the local state hashes to ${mine.toString('hex')}`, {
              feed: this.name, revision: st.revision, expected: hex(st.digest), computed: mine.toString('hex'),
            });
          }
          this.repair = { phase: 'requested' };
          repairAsk = { revision: st.revision, sums: this.digest.sumsBytes() };
        }
      } else {
        this.verifiedRevision = st.revision;
      }
      // A matching digest settles a repair (or makes an outstanding one moot: its answer still
      // comes and converges to the same state, checked again by the next STATUS).
      if (r?.phase === 'applied' && this.verifiedRevision === st.revision) this.repair = undefined;
    }
    if (st.status === 'in-sync') {
      const behind = behindResources(floor, st.watermarks);
      if (behind.length > 0) return { kind: 'behind', behind };
    }
    // A repair starting or ending changes `inSync` (below) even when the server's status does not.
    const statusChanged = this.sync !== st.status || this.stale !== st.stale || wasRepairing !== (this.repair !== undefined);
    this.appliedWatermarks = accepted.applied;
    this.retiredWatermarks = accepted.retired;
    this.watermarksExact = true;
    this.token = Buffer.from(st.token);
    this.tokenRevision = st.revision;
    this.sync = st.status;
    this.stale = st.stale;
    if (repairAsk !== undefined) return { kind: 'repair', ...repairAsk, statusChanged };
    return { kind: 'applied', batch: undefined, statusChanged };
  }

  /** Applied and retired watermarks together; the applied map itself (not a copy) when none is retired, as on every STATUS but after a definition change. */
  private everApplied(): Readonly<Record<string, string>> {
    return Object.keys(this.retiredWatermarks).length === 0 ? this.appliedWatermarks : mergeWatermarks(this.appliedWatermarks, this.retiredWatermarks);
  }

  /**
   * What a state at `offered` must not be behind (§8): the watermarks applied, of the resources
   * the feed carries when `carried` lists them (a snapshot's WELCOME), retired ones among them
   * included; and every resource ever applied that `offered` names, whatever the list says (a
   * server that names a resource has it in its state, and it must not be older than ours).
   */
  private floorFor(offered: Watermarks, carried: readonly string[] | undefined): Record<string, string> {
    const all = this.everApplied();
    const floor: Record<string, string> = carried === undefined ? { ...this.appliedWatermarks } : {};
    if (carried !== undefined) for (const r of carried) if (Object.hasOwn(all, r)) floor[r] = all[r] as string;
    for (const r of Object.keys(all)) if (Object.hasOwn(offered, r)) floor[r] = all[r] as string;
    return floor;
  }

  /**
   * The applied and retired watermarks once a state at `offered`, not behind `floor`, is taken:
   * applied is the floor with `offered` merged in; every other resource applied before is retired
   * at its last value. Each message names at most MAX_WATERMARKS resources (the codec checks), but
   * the union is kept across messages (forgetting a resource could take the state back in time),
   * so a server naming new resources in every STATUS could grow it, and with it the HELLO, past
   * the server's inbound limit: every replica would then refuse the client. Applied watermarks past
   * §8's bounds are a protocol error; retired ones are dropped to fit beside them (by name, last
   * first), since the server the client now follows does not carry them.
   */
  /**
   * §8: a watermark is a decimal resourceVersion. One that is not has no order: kept, no later
   * state could be judged against it, and a relay (tier 2) whose store refuses it dropped every
   * batch that carried it, its agents quietly diverging. A protocol error (4002) instead.
   */
  private checkDecimal(offered: Watermarks): void {
    for (const [r, v] of Object.entries(offered)) {
      if (!isResourceVersion(v)) throw unexpected(`feed ${this.name}: the server's watermark for ${r} is not a decimal resourceVersion`, { feed: this.name, resource: r });
    }
  }

  private acceptedWatermarks(floor: Record<string, string>, offered: Watermarks): { applied: Record<string, string>; retired: Record<string, string> } {
    const applied = mergeWatermarks(floor, offered);
    const above = aboveWatermarkBounds(applied);
    if (above !== undefined) {
      throw unexpected(`feed ${this.name}: the server's watermarks name ${above.resources} resources in ${above.bytes} bytes together, more than ${MAX_WATERMARKS} or ${MAX_WATERMARKS_BYTES} bytes`, { feed: this.name, ...above });
    }
    const retired: Record<string, string> = {};
    const before = this.everApplied();
    const gone = Object.keys(before).filter((r) => !Object.hasOwn(applied, r)).sort();
    for (const r of gone) retired[r] = before[r] as string;
    while (gone.length > 0 && aboveWatermarkBounds({ ...applied, ...retired }) !== undefined) delete retired[gone.pop() as string];
    return { applied, retired };
  }

  /**
   * REPAIR (§7.2): the next DELTA unit of this feed, `from → to`, replaces the content of `buckets`.
   * Only an answer to our REPAIR_REQUEST, outside any unit, at the applied revision.
   */
  repairFrame(from: number, to: number, buckets: Buffer): void {
    if (this.snapshot !== undefined || this.delta !== undefined) throw unexpected(`REPAIR inside an unfinished unit of feed ${this.name}`, { feed: this.name });
    if (this.repair?.phase !== 'requested') throw unexpected(`REPAIR for feed ${this.name}, which asked for none`, { feed: this.name });
    if (from !== this.revision) {
      throw stateError('CATTAIL_CLIENT_REVISION_GAP', `feed ${this.name}: REPAIR ${from}→${to} does not follow the applied revision ${String(this.revision)}`, { feed: this.name, from, to, applied: this.revision });
    }
    this.repair = { phase: 'announced', from, to, buckets: Buffer.from(buckets) };
  }

  /** Current digest of the held state (tests and diagnostics). */
  currentDigest(): Buffer {
    return this.digest.digest();
  }

  /**
   * In sync on a live connection. Deltas after an in-sync STATUS keep it: the protocol never
   * leaves in-sync, and a digest mismatch at the next check repairs or closes the connection.
   */
  get inSync(): boolean {
    // Not while a range repair is under way: the state is known to differ until the STATUS after
    // the repair matches (the client shows `syncing` for that round trip).
    return this.sync === 'in-sync' && this.repair === undefined;
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
