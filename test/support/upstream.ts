import { KubeConfig } from '@kubernetes/client-node';
import { afterEach } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import { createUpstream, type UpstreamHandle, type UpstreamOptions } from '../../src/server/upstream/index.js';
import { startSim, type Sim, type SimOptions } from '../../src/sim/index.js';
import { FakeApiServer } from './fake-apiserver.js';

/**
 * Upstream fixtures: the reflectors (src/server/upstream) on a FakeClock, against the scripted
 * fake API server or the simulator (one FakeClock drives both sides: backoff, Retry-After,
 * watchdogs and the simulator's delays elapse in virtual time while the sockets are real). What a
 * test starts is stopped after it, in reverse order: the upstream first, then its server.
 */
const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (running.length > 0) await running.pop()?.();
});

function upstream(opts: Partial<UpstreamOptions> & Pick<UpstreamOptions, 'replicaId'>, clock: FakeClock, kubeConfig: KubeConfig): UpstreamHandle {
  const up = createUpstream({ kubeConfig, clock, ...opts });
  running.push(() => up.stop());
  return up;
}

/**
 * An upstream (replica `r1`, no built-in feeds) against a fresh FakeApiServer, through the
 * server's kubeconfig. `opts` may depend on the server (a kubeconfig of the test's own).
 */
export async function upstreamOnFakeApi(opts: Partial<UpstreamOptions> | ((server: FakeApiServer) => Partial<UpstreamOptions>) = {}): Promise<{ server: FakeApiServer; clock: FakeClock; up: UpstreamHandle }> {
  const server = await new FakeApiServer().start();
  running.push(() => server.close());
  const clock = new FakeClock();
  return { server, clock, up: upstream({ replicaId: 'r1', feeds: [], ...(typeof opts === 'function' ? opts(server) : opts) }, clock, server.kubeConfig()) };
}

type SimUpstreamOptions = Partial<UpstreamOptions> & Pick<UpstreamOptions, 'replicaId'>;

/**
 * An upstream (deterministic jitter) against a simulator started on the same FakeClock, through
 * the simulator's own kubeconfig. `up` may depend on the simulator (a transport pointed at it).
 */
export async function upstreamOnSim(o: { sim?: SimOptions; up: SimUpstreamOptions | ((sim: Sim) => SimUpstreamOptions) }): Promise<{ sim: Sim; clock: FakeClock; up: UpstreamHandle }> {
  const clock = new FakeClock();
  const sim = await startSim({ clock, ...o.sim });
  running.push(() => sim.close());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(sim.kubeconfigPath);
  return { sim, clock, up: upstream({ random: () => 0.5, ...(typeof o.up === 'function' ? o.up(sim) : o.up) }, clock, kubeConfig) };
}

/** Another upstream on a simulator `upstreamOnSim` started (a restarted replica), stopped after the test. */
export function anotherUpstreamOnSim(sim: Sim, clock: FakeClock, opts: SimUpstreamOptions): UpstreamHandle {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(sim.kubeconfigPath);
  return upstream({ random: () => 0.5, ...opts }, clock, kubeConfig);
}

/** Another upstream (replica `r1`, no built-in feeds) on a FakeApiServer `upstreamOnFakeApi` started (a restarted replica), stopped after the test. */
export function anotherUpstreamOnFakeApi(server: FakeApiServer, clock: FakeClock, opts: Partial<UpstreamOptions> = {}): UpstreamHandle {
  return upstream({ replicaId: 'r1', feeds: [], ...opts }, clock, server.kubeConfig());
}
