import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { encodeValue, FeedStore, type StoreView, type Update } from '../../src/snapshot/index.js';

// Churn must not grow memory: superseded values, dropped views and trimmed deletions are released,
// and no stored value pins a shared allocation slab. Needs a callable gc: vitest's fork is started
// without --expose-gc, so the flag is set at run time and `gc` taken from a fresh context (the
// documented V8 route; it works in any Node 20 process), unless the process already exposes it.
function getGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing !== undefined) return existing;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

const KEYS = 10_000;
const CHURN = 1_000_000;
const BATCH = 100;
const key = (k: number): string => `/pods/ns-${k % 7}/p-${k}`;
// Per key, one encoded template with a fixed-width generation field at its end; each update gets a
// fresh exact-size copy with its generation written in (cheaper than encoding a million values,
// and the sizes of churned and loaded values match).
const templates = Array.from({ length: KEYS }, (_, k) => encodeValue({ name: `p-${k}`, ip: `10.0.${k >> 8}.${k & 255}`, gen: Buffer.alloc(4) }));
function value(k: number, gen: number): Buffer {
  const t = templates[k] as Buffer;
  const out = Buffer.allocUnsafeSlow(t.length);
  t.copy(out);
  out.writeUInt32BE(gen, t.length - 4);
  return out;
}

function measure(gc: () => void): number {
  for (let i = 0; i < 4; i++) gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function loadOnce(): { store: FeedStore; view: StoreView } {
  const store = new FeedStore({ feed: 'mem', epoch: '0000000000000001' });
  for (let i = 0; i < KEYS; i += BATCH) {
    const updates: Update[] = [];
    for (let k = i; k < i + BATCH; k++) updates.push({ key: key(k), value: value(k, 0) });
    store.apply({ updates }, 0);
  }
  return { store, view: store.current() };
}

function churned(): { store: FeedStore; view: StoreView } {
  const store = new FeedStore({ feed: 'mem', epoch: '0000000000000002' });
  let x = 12345;
  const next = (): number => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
  let now = 0;
  let held: StoreView | null = null;
  for (let i = 0; i < CHURN; i += BATCH) {
    const updates: Update[] = [];
    for (let j = 0; j < BATCH; j++) {
      const r = next();
      const k = r % KEYS;
      updates.push({ key: key(k), value: (r >>> 16) % 20 === 0 ? null : value(k, i + j + 1) });
    }
    now += 100;
    store.apply({ updates }, now);
    // Snapshot readers come and go: hold a view for a while, then drop it.
    if ((i / BATCH) % 50 === 0) held = store.current();
    if ((i / BATCH) % 50 === 25) held = null;
  }
  void held;
  // End with every key present (as in the loaded state) and the retained deletions aged out.
  for (let i = 0; i < KEYS; i += BATCH) {
    const updates: Update[] = [];
    for (let k = i; k < i + BATCH; k++) updates.push({ key: key(k), value: value(k, CHURN + 1) });
    store.apply({ updates }, now);
  }
  store.trim(now + store.logMaxAgeMs + 1);
  return { store, view: store.current() };
}

describe('memory under churn', () => {
  it('after 1,000,000 churned updates over 10,000 keys, the heap is within 20% of the keys loaded once', () => {
    const gc = getGc();
    let base = measure(gc);
    let held: unknown = loadOnce();
    const loadedCost = measure(gc) - base;
    held = null;
    base = measure(gc);
    held = churned();
    const churnedCost = measure(gc) - base;
    const { store } = held as { store: FeedStore };
    expect(store.stats()).toMatchObject({ entries: KEYS, tombstones: 0 });
    expect(loadedCost).toBeGreaterThan(KEYS * 100); // the measurement sees the store at all
    expect(churnedCost, `loaded ${loadedCost} B, churned ${churnedCost} B`).toBeLessThan(loadedCost * 1.2);
  });

  it('releases a dropped view and the superseded values only it referenced', async () => {
    const gc = getGc();
    const store = new FeedStore({ feed: 'mem', epoch: '0000000000000003' });
    let value: Buffer | null = Buffer.allocUnsafeSlow(64).fill(1);
    const valueRef = new WeakRef(value);
    store.apply({ updates: [{ key: 'k', value }] }, 0);
    value = null;
    let view: StoreView | null = store.current();
    const viewRef = new WeakRef(view);
    store.apply({ updates: [{ key: 'k', value: Buffer.alloc(64, 2) }] }, 0);
    expect(view.get('k')?.[0]).toBe(1);
    view = null;
    // The lazily updated tree still holds the superseded value (bounded: see FLUSH_MIN_KEYS) until
    // the next view replays the change.
    expect(store.current().get('k')?.[0]).toBe(2);
    // WeakRef targets stay alive until the current job ends; let it end before collecting.
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (let i = 0; i < 4; i++) gc();
    expect(viewRef.deref()).toBeUndefined();
    expect(valueRef.deref()).toBeUndefined();
  });
});
