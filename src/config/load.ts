/**
 * Resolving a command's configuration: flag > environment > config file > default.
 *
 * Every value is validated against its spec whatever its source, and an error names the option,
 * the source it came from (`--ping-interval-ms`, `CATTAIL_PING_INTERVAL_MS`, `config file
 * /etc/cattail.yaml key pingIntervalMs`) and the offending value.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';
import { type ConfigOf, type OptionSpec, type OptionTable, envName, flagName } from './options.js';

export type Source = 'flag' | 'env' | 'file' | 'default';

export interface Resolved<S extends OptionTable> {
  config: ConfigOf<S>;
  /** Where each option's value came from. */
  sources: Record<keyof S & string, Source>;
  /** Positional arguments left after the flags. */
  positionals: string[];
  /** The config file read, if any. */
  configFile: string | undefined;
}

export interface ResolveInput {
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** Overrides the `--config` / `CATTAIL_CONFIG` lookup (tests). */
  configFile?: string;
  /** Reads the config file (tests inject). */
  readFile?: (path: string) => string;
}

function describe(source: Source, name: string, file?: string): string {
  switch (source) {
    case 'flag':
      return `--${flagName(name)}`;
    case 'env':
      return envName(name);
    case 'file':
      return `config file ${file ?? ''} key ${name}`;
    default:
      return `default of ${name}`;
  }
}

function invalid(name: string, source: Source, value: unknown, reason: string, file?: string): ConfigError {
  const shown = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option ${name} (${describe(source, name, file)}): ${reason}, got ${shown}`, {
    details: { option: name, source, value },
  });
}

/** Turns a raw value (string from flag/env, anything from the file) into the option's type. */
export function coerce(name: string, spec: OptionSpec<unknown>, raw: unknown, source: Source, file?: string): unknown {
  const fromText = typeof raw === 'string' && source !== 'file';
  let value: unknown;
  switch (spec.type) {
    case 'string':
      if (typeof raw !== 'string') throw invalid(name, source, raw, 'expected a string', file);
      value = raw;
      break;
    case 'int':
    case 'number': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && raw.trim() !== '' && /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(raw.trim().replace(/_/g, ''))) n = Number(raw.trim().replace(/_/g, ''));
      else throw invalid(name, source, raw, `expected ${spec.type === 'int' ? 'an integer' : 'a number'}${spec.unit ? ` (${spec.unit})` : ''}`, file);
      if (!Number.isFinite(n)) throw invalid(name, source, raw, 'expected a finite number', file);
      if (spec.type === 'int' && !Number.isInteger(n)) throw invalid(name, source, raw, `expected an integer${spec.unit ? ` (${spec.unit})` : ''}`, file);
      if (spec.min !== undefined && n < spec.min) throw invalid(name, source, raw, `must be at least ${spec.min}`, file);
      if (spec.max !== undefined && n > spec.max) throw invalid(name, source, raw, `must be at most ${spec.max}`, file);
      value = n;
      break;
    }
    case 'boolean':
      if (typeof raw === 'boolean') value = raw;
      else if (fromText && /^(true|1|yes|on)$/i.test(raw)) value = true;
      else if (fromText && /^(false|0|no|off)$/i.test(raw)) value = false;
      else throw invalid(name, source, raw, 'expected true or false', file);
      break;
    case 'enum':
      if (typeof raw !== 'string' || !(spec.values ?? []).includes(raw)) {
        throw invalid(name, source, raw, `expected one of ${(spec.values ?? []).join(', ')}`, file);
      }
      value = raw;
      break;
    case 'list': {
      let items: unknown[];
      if (Array.isArray(raw)) items = raw;
      else if (typeof raw === 'string') items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      else throw invalid(name, source, raw, 'expected a list of strings', file);
      if (!items.every((i): i is string => typeof i === 'string')) throw invalid(name, source, raw, 'expected a list of strings', file);
      if (spec.values) {
        const bad = items.find((i) => !spec.values?.includes(i));
        if (bad !== undefined) throw invalid(name, source, raw, `each entry must be one of ${spec.values.join(', ')}`, file);
      }
      value = items;
      break;
    }
    case 'object':
      if (source !== 'file' && source !== 'default') throw invalid(name, source, raw, 'can only be set in the config file', file);
      value = raw;
      break;
  }
  if (spec.check && value !== undefined && value !== null) {
    const reason = spec.check(value as never);
    if (reason !== undefined) throw invalid(name, source, raw, reason, file);
  }
  return value;
}

function readConfigFile(path: string, read: (p: string) => string): Record<string, unknown> {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    throw new ConfigError('CATTAIL_CONFIG_FILE_UNREADABLE', `cannot read config file ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser serves both formats.
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError('CATTAIL_CONFIG_FILE_UNREADABLE', `config file ${path} is not valid YAML or JSON: ${(err as Error).message}`, { cause: err, details: { path } });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError('CATTAIL_CONFIG_FILE_UNREADABLE', `config file ${path} must hold a mapping of option names to values`, { details: { path } });
  }
  return parsed as Record<string, unknown>;
}

/**
 * Resolves `table` from argv, environment and an optional config file (named by `--config FILE`
 * or `CATTAIL_CONFIG`). Throws a {@link ConfigError} naming the option on the first bad value.
 */
export function resolveConfig<S extends OptionTable>(table: S, input: ResolveInput = {}): Resolved<S> {
  const argv = input.argv ?? [];
  const env = input.env ?? {};
  const names = Object.keys(table);

  const parseOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    config: { type: 'string' },
  };
  for (const name of names) {
    const spec = table[name] as OptionSpec<unknown>;
    if (spec.fileOnly) continue;
    const o: { type: 'string' | 'boolean'; multiple?: boolean; short?: string } = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
    if (spec.type === 'list') o.multiple = true;
    if (spec.short) o.short = spec.short;
    parseOptions[flagName(name)] = o;
    if (spec.type === 'boolean') parseOptions[`no-${flagName(name)}`] = { type: 'boolean' };
  }

  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options: parseOptions, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError('CATTAIL_CONFIG_UNKNOWN_OPTION', (err as Error).message, { cause: err });
  }
  const flags = parsed.values as Record<string, string | boolean | string[] | undefined>;

  const configFile = input.configFile ?? (flags['config'] as string | undefined) ?? env['CATTAIL_CONFIG'] ?? undefined;
  const fileValues = configFile === undefined ? {} : readConfigFile(configFile, input.readFile ?? ((p) => readFileSync(p, 'utf8')));
  for (const key of Object.keys(fileValues)) {
    if (!(key in table)) {
      throw new ConfigError('CATTAIL_CONFIG_UNKNOWN_OPTION', `config file ${configFile ?? ''}: unknown option ${JSON.stringify(key)} (known: ${names.join(', ')})`, {
        details: { option: key, path: configFile },
      });
    }
  }

  const config: Record<string, unknown> = {};
  const sources: Record<string, Source> = {};
  for (const name of names) {
    const spec = table[name] as OptionSpec<unknown>;
    const flag = flagName(name);
    const envKey = envName(name);
    let raw: unknown;
    let source: Source = 'default';
    if (flags[flag] !== undefined) {
      raw = flags[flag];
      source = 'flag';
    } else if (spec.type === 'boolean' && flags[`no-${flag}`] !== undefined) {
      raw = !flags[`no-${flag}`];
      source = 'flag';
    } else if (!spec.fileOnly && env[envKey] !== undefined && env[envKey] !== '') {
      raw = env[envKey];
      source = 'env';
    } else if (fileValues[name] !== undefined) {
      raw = fileValues[name];
      source = 'file';
    }
    config[name] = source === 'default' ? spec.default : coerce(name, spec, raw, source, configFile);
    sources[name] = source;
  }
  return { config: config as ConfigOf<S>, sources: sources as Record<keyof S & string, Source>, positionals: parsed.positionals, configFile };
}

/** The effective configuration with secrets redacted, for `--print-config` and the startup log. */
export function redactedConfig<S extends OptionTable>(table: S, config: ConfigOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(table)) {
    const spec = table[name] as OptionSpec<unknown>;
    const value = (config as Record<string, unknown>)[name];
    out[name] = spec.secret && value !== undefined && value !== '' ? '<redacted>' : value;
  }
  return out;
}
