/**
 * The scoped view of node N, and a change set split for scoped units (#20). Pure.
 *
 * The view of N under policy P = every cluster-wide entry in full, every entry of N in full, and
 * every other node's entry in its slim form (P.others `slim`) or not at all (`omit`), under the
 * same keys. Every view is a function of the full state at one revision, so revisions, resume
 * tokens and rebases keep their meaning on a scoped feed.
 *
 * A change set (since(r): compacted upserts and deletions) splits into ONE shared part, the same
 * for every agent of the feed, and one part per node with own changes. Applying the shared part
 * and then N's part, later frames winning, to N's view at r gives N's view at the new revision:
 * - an upsert of a cluster-wide key: shared, full;
 * - an upsert of N's key: N's part, full; and, when others get slim forms, the slim form in the
 *   shared part (N's full value comes later and wins);
 * - when others get nothing and the node is read from the value (a CalicoNodeStatus, whose
 *   spec.node can change): a deletion in the shared part, so the node it left drops it, without
 *   remembering where it was (N's upsert comes later and wins). A deletion of a key not held is
 *   harmless (PROTOCOL.md §4.6);
 * - a deletion: shared, except a key whose node is in the key when others get nothing: only
 *   that node's part.
 */
import type { StoreEntry } from '../pipeline/store-port.js';
import type { ScopePolicy } from './policy.js';
import { slimValue } from './slim.js';

export interface ChangePart {
  readonly upserts: StoreEntry[];
  readonly deletes: string[];
}

export interface SplitChanges {
  readonly shared: ChangePart;
  readonly byNode: Map<string, ChangePart>;
}

function part(m: Map<string, ChangePart>, node: string): ChangePart {
  let p = m.get(node);
  if (p === undefined) m.set(node, (p = { upserts: [], deletes: [] }));
  return p;
}

export function splitChanges(policy: ScopePolicy, upserts: readonly StoreEntry[], deletes: readonly string[]): SplitChanges {
  const shared: ChangePart = { upserts: [], deletes: [] };
  const byNode = new Map<string, ChangePart>();
  for (const e of upserts) {
    const [key, value] = e;
    const node = policy.nodeOf(key, value);
    if (node === undefined) {
      shared.upserts.push(e);
      continue;
    }
    part(byNode, node).upserts.push(e);
    if (policy.others === 'slim') shared.upserts.push([key, slimValue(value)]);
    else if (policy.valueBound(key)) shared.deletes.push(key);
  }
  for (const key of deletes) {
    if (policy.others === 'omit' && !policy.valueBound(key)) {
      const node = policy.nodeOf(key, undefined);
      if (node !== undefined) {
        part(byNode, node).deletes.push(key);
        continue;
      }
    }
    shared.deletes.push(key);
  }
  return { shared, byNode };
}

/** Node N's view of a state (entries in any order); keys unique. */
export function scopedView(policy: ScopePolicy, entries: Iterable<StoreEntry>, node: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [key, value] of entries) {
    const n = policy.nodeOf(key, value);
    if (n === undefined || n === node) out.set(key, value);
    else if (policy.others === 'slim') out.set(key, slimValue(value));
  }
  return out;
}

/** Applies the parts of a split as an agent of `node` does: shared part, then the node's, later wins. */
export function applySplit(state: Map<string, Buffer>, split: SplitChanges, node: string): void {
  const apply = (p: ChangePart): void => {
    for (const [k, v] of p.upserts) state.set(k, v);
    for (const k of p.deletes) state.delete(k);
  };
  apply(split.shared);
  const own = split.byNode.get(node);
  if (own !== undefined) apply(own);
}
