import { opt } from './options.js';

/** Options every command has. */
export const commonOptions = {
  logLevel: opt.enum({
    values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const,
    default: 'info',
    help: 'Minimum level of the JSON log lines written to stderr.',
  }),
} as const;
