/**
 * The `cattail` entry point: the only module allowed to exit the process. It maps a
 * CattailError to the exit status in the error table and a one-line coded message on stderr.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { redactedConfig, resolveConfig } from '../config/load.js';
import { CattailError, toCattailError } from '../errors.js';
import { VERSION } from '../version.js';
import { findCommand } from './commands.js';
import { commandHelp, mainHelp } from './help.js';

export interface MainIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Readonly<Record<string, string | undefined>>;
  signal?: AbortSignal;
  /** Aborted on a second signal: a command that winds down gradually stops waiting. */
  forceSignal?: AbortSignal;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit status. */
export async function main(argv: readonly string[], io: MainIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(mainHelp(VERSION));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v' || name === 'version') {
    io.stdout.write(`${VERSION}\n`);
    return 0;
  }
  try {
    const cmd = findCommand(name);
    if (cmd === undefined) {
      throw new CattailError('CATTAIL_CLI_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(name)}; run cattail --help`);
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(commandHelp(cmd));
      return 0;
    }
    const printConfig = rest.includes('--print-config');
    const resolved = resolveConfig(cmd.options, { argv: rest.filter((a) => a !== '--print-config'), env: io.env, allowMissing: printConfig });
    if (printConfig) {
      const redacted = redactedConfig(cmd.options, resolved.config);
      const out = Object.fromEntries(Object.entries(redacted).map(([k, v]) => [k, { value: v, source: resolved.sources[k] }]));
      io.stdout.write(JSON.stringify({ command: cmd.name, configFile: resolved.configFile ?? null, options: out }, null, 2) + '\n');
      return 0;
    }
    return await cmd.run(resolved.config, { stdout: io.stdout, stderr: io.stderr, env: io.env, signal: io.signal ?? new AbortController().signal, ...(io.forceSignal !== undefined ? { forceSignal: io.forceSignal } : {}) });
  } catch (err) {
    const e = toCattailError(err);
    io.stderr.write(`cattail: ${e.code}: ${e.message}\n`);
    if (e.code === 'CATTAIL_INTERNAL' && e.cause instanceof Error && e.cause.stack) io.stderr.write(`${e.cause.stack}\n`);
    return e.exitCode;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * What termination signals mean: the first asks the command to stop (`serve` drains its agents
 * over shutdownTimeoutMs), the second says "now" (`serve` closes the rest at once).
 */
export function stopSignals(): { signal: AbortSignal; forceSignal: AbortSignal; onSignal: () => void } {
  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (): void => {
    if (!stop.signal.aborted) stop.abort(new CattailError('CATTAIL_INTERNAL', 'terminated by signal'));
    else force.abort(new CattailError('CATTAIL_INTERNAL', 'terminated by a second signal'));
  };
  return { signal: stop.signal, forceSignal: force.signal, onSignal };
}

/**
 * Runs as the process: wires SIGTERM/SIGINT to {@link stopSignals} and exits with the status. The
 * handlers stay installed for the second signal (it must reach the command rather than kill the
 * process mid-close), and go after it, so that a third gets the default action: an escape from a
 * command that does not wind down gradually and hangs anyway.
 */
export async function runAsProcess(argv: readonly string[]): Promise<void> {
  const { signal, forceSignal, onSignal } = stopSignals();
  const handler = (): void => {
    onSignal();
    if (forceSignal.aborted) {
      process.off('SIGTERM', handler);
      process.off('SIGINT', handler);
    }
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  // A reader that went away (`cattail agent --json | head -1`): Node ignores SIGPIPE and reports
  // EPIPE as an 'error' event, which unhandled ended the process with a stack trace. The output
  // is dropped and the command goes on until it is stopped as usual; a server whose log pipe
  // broke keeps serving.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
  const code = await main(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, signal, forceSignal });
  process.exitCode = code;
  // Long-running commands return after a clean shutdown; anything left (a stuck socket) must not
  // keep a stopped process alive.
  if (signal.aborted) setTimeout(() => process.exit(code), 2_000).unref();
}

if (isEntryPoint()) void runAsProcess(process.argv.slice(2));
