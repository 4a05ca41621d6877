import pino from 'pino';
import { CattailError } from './errors.js';

export type Logger = pino.Logger;

/**
 * The server-side logger: JSON lines on stderr (stdout is for command output such as
 * `listening ...` lines and agent status). Libraries (src/client, src/snapshot, proto) never log;
 * they return counts and emit events, and the command decides what to write.
 */
export function createLogger(level: string, name = 'cattail', destination: pino.DestinationStream = stderrDestination()): Logger {
  return pino({ name, level, base: { pid: process.pid } }, destination);
}

/**
 * Bytes of log lines that may wait for stderr: past it lines are dropped and counted
 * (`cattail_log_dropped_bytes_total`). Why: the writes are asynchronous, and a stderr that stops
 * taking bytes (a stalled container log pipe) otherwise grows the buffer without bound, fed by
 * per-agent log lines, until the replica runs out of memory. 16 MiB is minutes of ordinary logging.
 */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

let droppedBytes = 0;

/** Log bytes dropped because stderr did not take them (this process, since start). */
export function droppedLogBytes(): number {
  return droppedBytes;
}

/** An asynchronous destination (stderr unless `dest` names a file) whose waiting bytes are bounded by `maxLength`. */
export function stderrDestination(maxLength = LOG_BUFFER_MAX_BYTES, dest?: string): pino.DestinationStream {
  const d = dest === undefined ? pino.destination({ fd: 2, sync: false, maxLength }) : pino.destination({ dest, sync: false, maxLength });
  d.on('drop', (data: string | Buffer) => {
    droppedBytes += Buffer.byteLength(data);
  });
  return d;
}

/**
 * `parent.child(bindings)`, refusing a key the parent already binds. pino writes a child's
 * bindings after its parent's without merging them, so a repeated key appears twice on every line
 * (`"stage":"upstream","stage":"state"`), which log pipelines read as one value or reject. The same
 * goes for a key a log call repeats: a module whose logger binds `resource` must not log it again.
 * @throws CattailError CATTAIL_INTERNAL when a key is bound twice (a bug in the caller)
 */
export function childLogger(parent: Logger, bindings: Record<string, unknown>): Logger {
  const bound = parent.bindings();
  // bindings() leaves out pid and hostname, which the root logger may bind all the same.
  const twice = Object.keys(bindings).filter((k) => k in bound || k === 'pid' || k === 'hostname');
  if (twice.length > 0) throw new CattailError('CATTAIL_INTERNAL', `logger already binds ${twice.join(', ')}; use another key`, { details: { keys: twice } });
  return parent.child(bindings);
}
