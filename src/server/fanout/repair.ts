/**
 * Range repair, the server's side (PROTOCOL.md §7.2, DESIGN.md "Range repair"): an agent whose
 * digest did not match sends its 256 bucket sums; we compare them with the store's current sums,
 * and send the entries of every mismatching bucket, together with the changes after the agent's
 * revision on this connection, as REPAIR + one DELTA unit + STATUS. The agent replaces those
 * buckets, and the STATUS digest verifies the result.
 *
 * Consistency without pinning: the answer is computed in one synchronous step at the store's
 * current revision C, and starts at the revision this connection was last sent (the agent will
 * have applied everything written before it by the time it reads the REPAIR: one socket, in
 * order). So there is no window in which the store can move under it; deltas after C reach the
 * agent through the ordinary flush (its cursor is at C).
 *
 * Encoded per agent: repairs are rare (a bug or a corrupted agent, not steady state), and two
 * agents rarely share both the revision and the bucket set, so a shared cache would almost never
 * hit. The frames are binary msgpack built by the encode-once codec (values copied, never
 * re-encoded) and count against the agent's own byte budget (maxClientBytes), as catch-ups do.
 *
 * Fallback: an answer above maxRepairBytes, or holding more than half the state's entries (a
 * snapshot is then barely larger, and is built and compressed once for everyone), or from a revision the log no longer holds, is an
 * in-band snapshot, which settles the repair on the agent's side too.
 */
import { mismatchedBuckets, bucketCount } from '../../../proto/index.js';
import type { Connection, FeedCursor } from '../transport/connection.js';
import { encodeDelta, encodeMessage, isEntryTooLarge } from '../transport/framing.js';
import type { FanOutContext } from './context.js';
import type { ServiceQueue } from './service.js';

/**
 * A second REPAIR_REQUEST for a feed sooner than this after the previous answer is answered with
 * an in-band snapshot (shared, cached) instead of another scan of the store. An honest client asks
 * once per mismatch, and a mismatch right after a repair means something a repair does not fix;
 * a hostile one would otherwise buy an O(entries) scan per 2 KiB frame. A constant, not an option:
 * no deployment has a reason to tune it.
 */
export const REPAIR_MIN_INTERVAL_MS = 1_000;

/** Default of maxRepairBytes: 4 MiB of keys and values, about 4,000 projected pods. */
export const DEFAULT_MAX_REPAIR_BYTES = 4_194_304;

export type RepairOutcome = 'repaired' | 'too-large' | 'too-old' | 'too-soon' | 'ignored' | 'scoped';

export function serveRepair(ctx: FanOutContext, service: ServiceQueue, conn: Connection, cursor: FeedCursor, revision: number, sums: Buffer): RepairOutcome {
  const { o } = ctx;
  const feed = cursor.feed;
  const count = (outcome: RepairOutcome): RepairOutcome => {
    o.metrics.repairs.inc({ feed: feed.name, outcome });
    o.log?.debug({ conn: conn.id, node: conn.node, feed: feed.name, revision, outcome }, 'range repair');
    return outcome;
  };
  // A snapshot already streams to this agent: it replaces the whole state, the repair with it.
  // So does one already sent whole: a request for a revision below it was sent before the agent
  // read that snapshot, whose END ended the agent's repair (§7.2); answered, the REPAIR reached an
  // agent with no request outstanding, which closes with 4002.
  if (cursor.phase !== 'live' || (cursor.snapshotRevision !== undefined && revision < cursor.snapshotRevision)) return count('ignored');
  const store = feed.store;
  const now = o.clock.monotonic();
  const snapshot = (outcome: RepairOutcome): RepairOutcome => {
    // Never older than what the agent holds: its watermarks would be behind the snapshot's (§8).
    // Its revision is not enough: a build of it made before a watermark-only change carries older
    // watermarks than the STATUS the agent applied since, so the build must have today's.
    service.startSnapshot(conn, cursor, now, true, cursor.revision, feed.store.meta().watermarks);
    service.queue(conn);
    return count(outcome);
  };
  const previous = cursor.lastRepairMs;
  cursor.lastRepairMs = now;
  if (previous !== undefined && now - previous < REPAIR_MIN_INTERVAL_MS) return snapshot('too-soon');
  if (store.bucketSums === undefined || store.repair === undefined) return snapshot('too-large');
  // A scoped feed (#20): the agent's sums are its node's view's; always the (scoped) snapshot.
  if (feed.scope !== undefined) return snapshot('scoped');
  const buckets = mismatchedBuckets(sums, store.bucketSums());
  // Never above half the agent's own budget either: a repair that large closed the agent with
  // 4008 (over-budget, counted as repaired), and its next connection asked for the same repair.
  const maxBytes = Math.min(o.maxRepairBytes ?? DEFAULT_MAX_REPAIR_BYTES, Math.floor(o.maxClientBytes / 2));
  // Bounded: the store stops collecting past maxBytes (then this is a snapshot anyway).
  const r = store.repair(cursor.revision, buckets, maxBytes);
  if (r.kind !== 'delta') return snapshot('too-old');
  if (r.bytes > maxBytes || r.upserts.length > store.current().size / 2 || !(o.ownFrames?.admits(r.bytes) ?? true)) return snapshot('too-large');
  let frames: Buffer[];
  try {
    frames = encodeDelta(feed.id, r.from, r.to, r.upserts, r.deletes, conn.compression, conn.maxBodyBytes, o.compressMinBytes);
  } catch (err) {
    if (!isEntryTooLarge(err)) throw err;
    conn.fail('CATTAIL_SERVER_ENTRY_TOO_LARGE', err.message);
    return count('too-large');
  }
  const head = encodeMessage({ type: 'repair', feedId: feed.id, fromRevision: r.from, toRevision: r.to, buckets });
  // §7.2: the STATUS after the unit is what the agent verifies the repair against.
  const st = feed.statusFrame(o.compressMinBytes);
  const all = [head, ...frames, st.frame];
  if (!conn.writeOwn(all)) return count('repaired');
  cursor.revision = r.to;
  cursor.statusKey = st.key;
  if (cursor.revision >= feed.flushedRevision) cursor.behindSinceMs = undefined;
  o.metrics.repairBytes.inc({ feed: feed.name }, all.reduce((s, f) => s + f.length, 0));
  o.log?.debug({ conn: conn.id, feed: feed.name, buckets: bucketCount(buckets), upserts: r.upserts.length, deletes: r.deletes.length }, 'range repair sent');
  return count('repaired');
}
