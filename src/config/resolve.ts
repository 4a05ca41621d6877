/**
 * The one validator of option values, for every way an option arrives: a command line flag, an
 * environment variable, a config file entry (load.ts), or a library call (`startServer`,
 * `startSim`, `connect`) through {@link resolveOptions}. So each option's default, unit, range and
 * message live in its spec alone, and a bad value reads the same wherever it came from:
 *
 *   option pingIntervalMs (--ping-interval-ms): expected an integer from 10 to 2147483647 (ms), got "5"
 *   option pingIntervalMs (startServer): expected an integer from 10 to 2147483647 (ms), got 5
 *
 * This module reads no files, so the client library can use it without the YAML parser.
 */
import { ConfigError, InvalidArgumentError } from '../errors.js';
import { type ConfigOf, type OptionSpec, type OptionTable, type OptionsOf, envName, flagName } from './options.js';

/** Where a value came from; `option` is a library call's argument. */
export type Source = 'flag' | 'env' | 'file' | 'default' | 'option';

/**
 * How an error names a value's origin: `--ping-interval-ms`, `CATTAIL_PING_INTERVAL_MS`,
 * `config file /etc/cattail.yaml key pingIntervalMs`, or the library function (`startServer`).
 */
function describeSource(source: Source, name: string, where?: string): string {
  switch (source) {
    case 'flag':
      return `--${flagName(name)}`;
    case 'env':
      return envName(name);
    case 'file':
      return `config file ${where ?? ''} key ${name}`;
    case 'option':
      return where ?? 'option';
    default:
      return `default of ${name}`;
  }
}

function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * A library caller passed a bad argument (CATTAIL_INVALID_ARGUMENT); a bad flag, variable or file
 * entry is a configuration error (CATTAIL_CONFIG_INVALID_VALUE). The text is the same for both.
 */
export function invalidOption(name: string, source: Source, value: unknown, reason: string, where?: string): ConfigError | InvalidArgumentError {
  const message = `option ${name} (${describeSource(source, name, where)}): ${reason}, got ${shown(value)}`;
  const details = { option: name, source, value };
  return source === 'option' ? new InvalidArgumentError(message, { details }) : new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', message, { details });
}

/** `expected an integer from 1024 to 1048576 (bytes)`: kind, range and unit in one phrase. */
function expectedNumber(spec: OptionSpec<unknown>): string {
  const kind = spec.type === 'int' ? 'an integer' : 'a number';
  let range = '';
  if (spec.min !== undefined && spec.max !== undefined) range = ` from ${spec.min} to ${spec.max}`;
  else if (spec.min !== undefined) range = ` of at least ${spec.min}`;
  else if (spec.max !== undefined) range = ` of at most ${spec.max}`;
  return `expected ${kind}${range}${spec.unit ? ` (${spec.unit})` : ''}`;
}

const NUMBER_TEXT = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

/**
 * Turns a raw value into the option's type and validates it. Text is parsed only where text is
 * all there is (flags, environment) or where YAML may have quoted it (the file); a library caller
 * must pass the type itself, so `startServer({ pingIntervalMs: '5' })` is an error, not a guess.
 * `where` is the config file's path or the library function's name.
 */
export function coerce(name: string, spec: OptionSpec<unknown>, raw: unknown, source: Source, where?: string): unknown {
  const fail = (reason: string): Error => invalidOption(name, source, raw, reason, where);
  const fromText = typeof raw === 'string' && (source === 'flag' || source === 'env');
  let value: unknown;
  switch (spec.type) {
    case 'string':
      if (typeof raw !== 'string') throw fail('expected a string');
      value = raw;
      break;
    case 'int':
    case 'number': {
      let n = Number.NaN;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && source !== 'option' && NUMBER_TEXT.test(raw.trim().replace(/_/g, ''))) n = Number(raw.trim().replace(/_/g, ''));
      const inRange = (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);
      if (!Number.isFinite(n) || (spec.type === 'int' && !Number.isSafeInteger(n)) || !inRange) throw fail(expectedNumber(spec));
      value = n;
      break;
    }
    case 'boolean':
      if (typeof raw === 'boolean') value = raw;
      else if (fromText && /^(true|1|yes|on)$/i.test(raw)) value = true;
      else if (fromText && /^(false|0|no|off)$/i.test(raw)) value = false;
      else throw fail('expected true or false');
      break;
    case 'enum':
      if (typeof raw !== 'string' || !(spec.values ?? []).includes(raw)) throw fail(`expected one of ${(spec.values ?? []).join(', ')}`);
      value = raw;
      break;
    case 'list': {
      let items: unknown[];
      // A flag's values are split at commas too, as an environment variable's: `--scoped-feeds
      // felix,node-status` (which the help offers) reached the value check whole and was refused.
      // Library options (arrays in code) and a file's arrays are taken as they are.
      // A value that names nothing (`''`, `','`: an empty template variable) is kept as it is, for
      // the option's check to refuse: dropped, a required list was reported as unset instead.
      if (Array.isArray(raw) && source === 'flag') items = (raw as unknown[]).flatMap((v) => (typeof v === 'string' ? splitFlagValue(v) : [v]));
      else if (Array.isArray(raw)) items = [...(raw as unknown[])];
      else if (typeof raw === 'string' && source !== 'option') items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      else throw fail('expected a list of strings');
      if (!items.every((i): i is string => typeof i === 'string')) throw fail('expected a list of strings');
      if (spec.values) {
        const bad = items.find((i) => !spec.values?.includes(i));
        if (bad !== undefined) throw fail(`each entry must be one of ${spec.values.join(', ')}`);
      }
      value = items;
      break;
    }
    case 'object':
      if (source === 'flag' || source === 'env') throw fail('can only be set in the config file');
      value = raw;
      break;
  }
  if (spec.check && value !== undefined && value !== null) {
    const reason = spec.check(value as never);
    if (reason !== undefined) throw fail(reason);
  }
  return value;
}

function splitFlagValue(v: string): string[] {
  const parts = v.split(',').map((x) => x.trim()).filter((x) => x !== '');
  return parts.length > 0 ? parts : [v];
}

/** The error for a required option left unset; `how` says how it is set (`--server, CATTAIL_SERVER`). */
export function missingOption(name: string, spec: OptionSpec<unknown>, source: Source, how: string): ConfigError | InvalidArgumentError {
  const message = `option ${name} (${how}) is required: ${spec.help}`;
  const details = { option: name };
  return source === 'option' ? new InvalidArgumentError(message, { details }) : new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', message, { details });
}

/**
 * A library entry's options: each option of `table` that `input` sets is validated as a flag would
 * be (same messages, code CATTAIL_INVALID_ARGUMENT), each one it leaves unset (or `undefined`) gets
 * the table's default. Keys of `input` outside the table (a clock, a logger, an upstream) are the
 * caller's typed extras and are not looked at. `api` names the function in messages.
 */
export function resolveOptions<S extends OptionTable>(table: S, input: OptionsOf<S> | undefined, api: string): ConfigOf<S> {
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    throw new InvalidArgumentError(`${api}: options must be an object, got ${shown(input)}`, { details: { option: 'options' } });
  }
  const given = (input ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(table)) {
    const spec = table[name] as OptionSpec<unknown>;
    const raw = given[name];
    if (raw === undefined) {
      if (spec.required) throw missingOption(name, spec, 'option', api);
      out[name] = Array.isArray(spec.default) ? [...(spec.default as unknown[])] : spec.default;
    } else {
      out[name] = coerce(name, spec, raw, 'option', api);
    }
  }
  return out as ConfigOf<S>;
}

/** Validates one value against a spec outside a table walk (a fallback such as the host name). */
export function checkOption<T>(name: string, spec: OptionSpec<T>, value: NonNullable<T>, api: string): NonNullable<T> {
  return coerce(name, spec as OptionSpec<unknown>, value, 'option', api) as NonNullable<T>;
}

/**
 * The values of `table`'s options out of a larger configuration: a command hands the library the
 * part of its table that the library's table shares (`cattail serve` → `startServer`) without
 * listing the options again.
 */
export function selectOptions<S extends OptionTable>(table: S, values: { readonly [K in keyof S]: unknown }): OptionsOf<S> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(table)) out[name] = (values as Record<string, unknown>)[name];
  return out as OptionsOf<S>;
}
