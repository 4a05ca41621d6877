/**
 * A reference model of the feed store (src/snapshot): a Map plus a per-revision log, with the
 * same API the server uses (store-port.ts). Deliberately naive (views copy, digests are recomputed)
 * so its behaviour is obviously right; tests and benches use it where the real store is not wired.
 */
import { randomBytes } from 'node:crypto';
import type { FeedBatch, SyncStatus } from '../seams.js';
import type { ApplyResult, ServedStore, SinceResult, StoreEntry, StoreMeta, StoreView } from '../store-port.js';
import { digestOf } from './digest.js';

interface LogRecord {
  readonly revision: number;
  readonly atMs: number;
  readonly changes: ReadonlyMap<string, Buffer | null>;
  readonly bytes: number;
}

export class MemoryStore implements ServedStore {
  readonly epoch = randomBytes(8).toString('hex');
  private rev = 0;
  private readonly state = new Map<string, Buffer>();
  private log: LogRecord[] = [];
  private logBytes = 0;
  private status: SyncStatus = 'waiting';
  private stale = false;
  private statusRevision = 0;
  private watermarks: Record<string, string> = {};
  private view: StoreView | undefined;

  constructor(private readonly opts: { logMaxAgeMs?: number; logMaxBytes?: number } = {}) {}

  get revision(): number {
    return this.rev;
  }

  apply(batch: FeedBatch, nowMs: number): ApplyResult {
    const changes = new Map<string, Buffer | null>();
    let applied = 0, skippedNoOp = 0, deleted = 0, deletedUnknown = 0, bytes = 0;
    for (const u of batch.updates) {
      const old = this.state.get(u.key);
      if (u.value === null) {
        if (old === undefined) { deletedUnknown++; continue; }
        this.state.delete(u.key);
        deleted++;
      } else {
        if (old !== undefined && old.equals(u.value)) { skippedNoOp++; continue; }
        this.state.set(u.key, Buffer.from(u.value));
        applied++;
        bytes += u.value.length;
      }
      changes.set(u.key, u.value);
      bytes += u.key.length;
    }
    let metaChanged = false;
    if (batch.watermarks) { this.watermarks = { ...this.watermarks, ...batch.watermarks }; metaChanged = true; }
    if (batch.status !== undefined && batch.status !== this.status && !(this.status === 'in-sync')) { this.status = batch.status; metaChanged = true; }
    if (batch.stale !== undefined && batch.stale !== this.stale) { this.stale = batch.stale; metaChanged = true; }
    const changed = changes.size > 0;
    if (changed) {
      this.rev++;
      this.log.push({ revision: this.rev, atMs: nowMs, changes, bytes });
      this.logBytes += bytes;
      this.view = undefined;
    }
    if (metaChanged) { this.statusRevision = this.rev; this.view = undefined; }
    this.trim(nowMs);
    return { revision: this.rev, changed, applied, skippedNoOp, deleted, deletedUnknown };
  }

  current(): StoreView {
    if (this.view !== undefined) return this.view;
    const sorted = byUtf8Key([...this.state.entries()]);
    const map = new Map(sorted);
    const v: StoreView = {
      revision: this.rev,
      size: sorted.length,
      digest: digestOf(sorted),
      watermarks: { ...this.watermarks },
      status: this.status,
      get: (k) => map.get(k),
      entries: () => sorted as StoreEntry[],
    };
    this.view = v;
    return v;
  }

  since(revision: number): SinceResult {
    if (revision > this.rev) return { kind: 'future' };
    const oldest = this.log.length > 0 ? (this.log[0]?.revision ?? 1) - 1 : this.rev;
    if (revision < oldest) return { kind: 'too-old', oldestRevision: oldest };
    const merged = new Map<string, Buffer | null>();
    for (const r of this.log) if (r.revision > revision) for (const [k, v] of r.changes) merged.set(k, v);
    const upserts: StoreEntry[] = [];
    const deletes: string[] = [];
    let bytes = 0;
    for (const [k, v] of byUtf8Key([...merged])) {
      if (v === null) deletes.push(k);
      else upserts.push([k, v]);
      bytes += k.length + (v?.length ?? 0);
    }
    return { kind: 'delta', from: revision, to: this.rev, upserts, deletes, bytes };
  }

  trim(nowMs: number): void {
    const maxAge = this.opts.logMaxAgeMs ?? 600_000;
    const maxBytes = this.opts.logMaxBytes ?? 256 * 1024 * 1024;
    while (this.log.length > 0) {
      const first = this.log[0] as LogRecord;
      if (nowMs - first.atMs <= maxAge && this.logBytes <= maxBytes) break;
      this.log.shift();
      this.logBytes -= first.bytes;
    }
  }

  /** Test hook: drops every log record, so every revision before now is "too old". */
  dropLog(): void {
    this.log = [];
    this.logBytes = 0;
  }

  meta(): StoreMeta {
    return { status: this.status, stale: this.stale, statusRevision: this.statusRevision, watermarks: { ...this.watermarks } };
  }
}

/** Sorts entries by key in UTF-8 byte order (§4.4), encoding each key once. */
function byUtf8Key<V>(entries: [string, V][]): [string, V][] {
  return entries
    .map((e) => ({ e, k: Buffer.from(e[0], 'utf8') }))
    .sort((a, b) => Buffer.compare(a.k, b.k))
    .map((x) => x.e);
}
