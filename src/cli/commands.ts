/**
 * The `cattail` subcommands. Each names its option table; `run` is loaded lazily so
 * `cattail --help` does not import the server, the client library and the simulator.
 */
import type { ConfigOf, OptionTable } from '../config/options.js';
import { agentOptions } from '../client/options.js';
import { serveOptions } from '../server/options.js';
import { simOptions } from '../sim/options.js';
import { benchOptions } from './bench-options.js';
import { convergeOptions } from './converge-options.js';

export interface CommandContext {
  /** Standard output for the command's own output (status lines, `listening ...`). */
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
  /** Aborted on SIGTERM/SIGINT; a command returns (cleanly) when it fires. */
  signal: AbortSignal;
  /** Aborted on a second SIGTERM/SIGINT: stop winding down gradually (serve's drain). */
  forceSignal?: AbortSignal;
}

export interface Command<S extends OptionTable = OptionTable> {
  name: string;
  summary: string;
  usage: string;
  options: S;
  /** Runs the command; resolves to the exit status. Throws CattailError on failure. */
  run(config: ConfigOf<S>, ctx: CommandContext): Promise<number>;
}

function command<S extends OptionTable>(c: Command<S>): Command {
  return c as unknown as Command;
}

export const COMMANDS: readonly Command[] = [
  command({
    name: 'serve',
    summary: 'Run the fan-out server: watch the Kubernetes API once, stream deltas to node agents.',
    usage: 'cattail serve [--kubeconfig FILE | --embedded-sim] [--listen HOST:PORT] [--http-listen HOST:PORT] [--health-listen HOST:PORT]',
    options: serveOptions,
    run: async (config, ctx) => (await import('../server/serve.js')).runServe(config, ctx),
  }),
  command({
    name: 'agent',
    summary: 'Run a node agent: keep a local copy of feeds and print its status.',
    usage: 'cattail agent --server ws://HOST:PORT [--feed felix ...] [--node NAME] [--once] [--dump FILE [--dump-format state|syncer]]',
    options: agentOptions,
    run: async (config, ctx) => (await import('./agent.js')).runAgent(config, ctx),
  }),
  command({
    name: 'converge',
    summary: 'Wait until every agent of every replica has applied a resourceVersion of a resource; print the laggards.',
    usage: 'cattail converge (--endpoints http://HOST:PORT[,...] | --service NAMESPACE/NAME) --resource networkpolicies --resource-version RV [--timeout-ms 30000] [--node NAME ...]',
    options: convergeOptions,
    run: async (config, ctx) => (await import('./converge.js')).runConverge(config, ctx),
  }),
  command({
    name: 'sim',
    summary: 'Run the simulated Kubernetes API server (list/watch, faults, load counters) on loopback.',
    usage: 'cattail sim [--port 0] [--nodes N] [--pods-per-node N] [--churn PER_S] [--seed N] [--kubeconfig FILE]',
    options: simOptions,
    run: async (config, ctx) => (await import('./sim.js')).runSim(config, ctx),
  }),
  command({
    name: 'bench',
    summary: 'Run a bounded load benchmark against loopback servers and write its results.',
    usage: 'cattail bench [--quick] [--agents N] [--nodes N] [--pods-per-node N] [--scenario NAME ...] [--out DIR]',
    options: benchOptions,
    run: async (config, ctx) => (await import('./bench.js')).runBenchCommand(config, ctx),
  }),
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
