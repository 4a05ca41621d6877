/**
 * The oracle of upstream-against-simulator tests: the simulator's objects, projected by the feeds'
 * own rules, compared with what a sink holds.
 */
import { get } from 'node:http';
import type { FakeClock } from '../../src/clock.js';
import { collectionPath, resource } from '../../src/registry.js';
import { parseJson } from '../../src/server/upstream/json.js';
import { builtinFeed } from '../../src/server/upstream/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import type { Sim } from '../../src/sim/index.js';
import { waitUntil } from '../support/wait.js';
import { expectedState, type RecordingSink, sameState } from './helpers.js';

/**
 * The simulator's objects, read over HTTP and parsed like the upstream parses (big integers exact:
 * the admin API's plain JSON.parse would round IPAMBlock sequence numbers).
 */
export async function simObjects(s: Sim, feeds: readonly string[], notInstalled: readonly string[] = []): Promise<(id: string) => KubeObject[]> {
  const ids = new Set(feeds.flatMap((f) => builtinFeed(f).resources));
  const out = new Map<string, KubeObject[]>();
  for (const id of ids) {
    if (notInstalled.includes(id)) continue;
    const text = await new Promise<string>((resolve, reject) => {
      get(s.url + collectionPath(resource(id)), { headers: { 'user-agent': 'test-oracle' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      }).on('error', reject);
    });
    out.set(id, (parseJson(text) as { items: KubeObject[] }).items);
  }
  return (id) => out.get(id) ?? [];
}

/** Waits (bounded, driving the clock) until every feed equals the simulator's objects projected. */
export async function converged(sink: RecordingSink, s: Sim, clock: FakeClock, feeds: readonly string[], notInstalled: readonly string[] = []): Promise<void> {
  await waitUntil(async () => {
    const objects = await simObjects(s, feeds, notInstalled);
    return feeds.every((f) => sameState(sink.state.get(f), expectedState(builtinFeed(f), objects)));
  }, `${feeds.join(', ')} to equal the simulator's objects projected`, { clock, stepMs: 500 });
}

