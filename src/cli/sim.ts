/**
 * `cattail sim`: runs the simulator until SIGTERM/SIGINT. Prints exactly one line on stdout,
 * `listening http://127.0.0.1:PORT`, after the kubeconfig (if asked for) is in place, so a script
 * can wait for that line and then use the file.
 */
import type { CommandContext } from './commands.js';
import type { ConfigOf } from '../config/options.js';
import { createLogger } from '../log.js';
import { startSim } from '../sim/index.js';
import type { simOptions } from '../sim/options.js';

export async function runSim(config: ConfigOf<typeof simOptions>, ctx: CommandContext): Promise<number> {
  const log = createLogger(config.logLevel, 'cattail-sim');
  // The options the command and the library share pass as they are; the rest are renamed.
  const { logLevel: _logLevel, churn, kubeconfig, haLagRvs, ...shared } = config;
  const sim = await startSim({
    ...shared,
    churnPerSec: churn,
    kubeconfigPath: kubeconfig,
    ha: haLagRvs === undefined ? undefined : { lagRvs: haLagRvs },
  });
  log.info(
    { url: sim.url, kubeconfig: sim.kubeconfigPath, rv: sim.admin.currentRv(), nodes: config.nodes, podsPerNode: config.podsPerNode, serviceAccountRoot: sim.serviceAccountRoot, follower: sim.ha?.followerUrl, roundRobin: sim.ha?.roundRobinUrl },
    'simulator ready',
  );
  ctx.stdout.write(`listening ${sim.url}\n`);
  if (!ctx.signal.aborted) await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  await sim.close();
  log.info('simulator stopped');
  log.flush();
  return 0;
}
