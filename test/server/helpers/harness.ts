import { afterEach } from 'vitest';
import { type ServerHandle, type StartServerOptions, startServer } from '../../../src/server/server.js';
import { ScriptedUpstream } from '../../support/scripted-upstream.js';
import { TEST_TRANSPORT } from '../../support/transport.js';
import { type AgentOptions, TestAgent } from './agent.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

export interface Harness {
  server: ServerHandle;
  upstream: ScriptedUpstream;
  agent(opts: AgentOptions): TestAgent;
  /** The store's digest of a feed. */
  storeDigest(feed: string): Buffer;
  storeRevision(feed: string): number;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** `resources`: what every feed carries (default `['pods']`, as ScriptedUpstream.withFeeds). */
export async function harness(opts: Partial<StartServerOptions> & { feeds?: string[]; resources?: string[] } = {}): Promise<Harness> {
  const { resources, feeds, ...rest } = opts;
  const upstream = resources === undefined ? ScriptedUpstream.withFeeds(...(feeds ?? ['felix'])) : new ScriptedUpstream((feeds ?? ['felix']).map((name) => ({ name, resources, projectionVersion: 1 })));
  opts = rest;
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId: 'test-server', transport: TEST_TRANSPORT, ...opts });
  const agents: TestAgent[] = [];
  cleanups.push(async () => {
    for (const a of agents) a.ws.terminate();
    await server.close();
  });
  return {
    server,
    upstream,
    agent(o) {
      const a = new TestAgent(server.url, o);
      agents.push(a);
      return a;
    },
    storeDigest: (feed) => (server.stores.get(feed) as NonNullable<ReturnType<typeof server.stores.get>>).current().digest,
    storeRevision: (feed) => (server.stores.get(feed) as NonNullable<ReturnType<typeof server.stores.get>>).revision,
    async metric(name, labels = {}) {
      const m = server.metrics.registry.getSingleMetric(name);
      if (m === undefined) throw new Error(`no metric ${name}`);
      const data = await m.get();
      let sum = 0;
      for (const v of data.values) {
        if (Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)) sum += v.value;
      }
      return sum;
    },
  };
}
