import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The server-side logger: JSON lines on stderr (stdout is for command output such as
 * `listening ...` lines and agent status). Libraries (src/client, src/snapshot, proto) never log;
 * they return counts and emit events, and the command decides what to write.
 */
export function createLogger(level: string, name = 'cattail'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}
