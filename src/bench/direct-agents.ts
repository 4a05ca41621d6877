/**
 * The api-load scenario's direct agents, as a process of their own (forked by `cattail bench`):
 * N node agents that each run their own list/watch against the API server, as every node would
 * without a fan-out cache. Each is the project's own upstream (src/server/upstream: one reflector
 * per resource of the felix feed, paged LIST or WatchList, bookmarks, the projection into a
 * per-agent state), under its own User-Agent, so the simulator counts it as its own client.
 * Reports over IPC: synced agents, the oldest pods resourceVersion any agent holds, memory.
 * The process ends when its parent disconnects (or kills it): no exit call of its own.
 */
import type { FeedBatch } from '../server/pipeline/seams.js';
import { createUpstream, type UpstreamHandle } from '../server/upstream/index.js';

export type DirectCmd = { cmd: 'start'; agents: number; kubeconfig: string; feeds: string[] } | { cmd: 'stop' };
export interface DirectStatus {
  ev: 'status';
  agents: number;
  synced: number;
  /** The oldest pods resourceVersion any agent's state holds (0 until every agent has one). */
  minPodsRv: number;
  rssMb: number;
  heapMb: number;
}

const send = (m: DirectStatus | { ev: 'stopped' }): void => void process.send?.(m);
const agents: { upstream: UpstreamHandle; podsRv: number }[] = [];
let ticker: NodeJS.Timeout | undefined;

function status(): DirectStatus {
  const m = process.memoryUsage();
  return {
    ev: 'status', agents: agents.length, synced: agents.filter((a) => a.upstream.ready()).length,
    minPodsRv: agents.reduce((min, a) => Math.min(min, a.podsRv), agents.length === 0 ? 0 : Number.MAX_SAFE_INTEGER),
    rssMb: Math.round(m.rss / 2 ** 20), heapMb: Math.round(m.heapUsed / 2 ** 20),
  };
}

process.on('message', (m: DirectCmd) => {
  if (m.cmd === 'start') {
    for (let i = 0; i < m.agents; i++) {
      const upstream = createUpstream({ replicaId: `direct-agent-${i}`, kubeconfigPath: m.kubeconfig, feeds: m.feeds });
      const a = { upstream, podsRv: 0 };
      agents.push(a);
      upstream.start({
        onBatch: (_feed: string, batch: FeedBatch) => {
          const rv = batch.watermarks?.['pods'];
          if (rv !== undefined) a.podsRv = Math.max(a.podsRv, Number(rv));
        },
      });
    }
    ticker = setInterval(() => send(status()), 250);
    send(status());
    return;
  }
  void stop().then(() => send({ ev: 'stopped' }));
});

/** Stops every agent; with the IPC channel gone too, nothing keeps the process alive and it ends. */
async function stop(): Promise<void> {
  clearInterval(ticker);
  await Promise.all(agents.splice(0).map((a) => a.upstream.stop()));
}
process.on('disconnect', () => void stop());
