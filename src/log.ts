import pino from 'pino';
import { CattailError } from './errors.js';

export type Logger = pino.Logger;

/**
 * The server-side logger: JSON lines on stderr (stdout is for command output such as
 * `listening ...` lines and agent status). Libraries (src/client, src/snapshot, proto) never log;
 * they return counts and emit events, and the command decides what to write.
 */
export function createLogger(level: string, name = 'cattail', destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger {
  return pino({ name, level, base: { pid: process.pid } }, destination);
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
