import type { SinceResult, StoreView } from '../../src/snapshot/index.js';

export type State = Map<string, Buffer>;

export function viewState(view: StoreView): State {
  const out: State = new Map();
  for (const [k, v] of view.entries()) out.set(k, v);
  return out;
}

/** Applies a delta to a reader's state the way a client does: upserts, then deletes (unknown keys ignored). */
export function applyDelta(state: State, delta: Extract<SinceResult, { kind: 'delta' }>): void {
  for (const [k, v] of delta.upserts) state.set(k, v);
  for (const k of delta.deletes) state.delete(k);
}

export function sameState(a: State, b: State): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !w.equals(v)) return false;
  }
  return true;
}

export function sortedEntries(state: State): Array<[string, string]> {
  return [...state].map(([k, v]): [string, string] => [k, v.toString('hex')]).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}
