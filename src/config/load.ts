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
import { type Source, coerce, missingOption } from './resolve.js';

export interface Resolved<S extends OptionTable> {
  config: ConfigOf<S>;
  /** Where each option's value came from. */
  sources: Record<keyof S & string, Source>;
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
  /** Leave a required option unset instead of failing (`--print-config` shows what is set). */
  allowMissing?: boolean;
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

type Flags = Record<string, string | boolean | string[] | undefined>;

function unexpectedArgument(arg: string, message: string): ConfigError {
  return new ConfigError('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT', message, { details: { argument: arg } });
}

/** Edit distance, for suggesting the flag a typo meant. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length] as number;
}

/** `--bogus` names no option: say so (and what it may have meant), not how to pass positionals. */
function unknownOption(arg: string, flags: readonly string[], fileOnly: ReadonlyMap<string, string>): ConfigError {
  const name = arg.replace(/^-+/, '').replace(/=.*$/s, '');
  const key = fileOnly.get(name);
  if (key !== undefined) {
    return new ConfigError('CATTAIL_CONFIG_UNKNOWN_OPTION', `unknown option ${arg.replace(/=.*$/s, '')}: ${key} is set in the config file only (--config FILE, key ${key})`, { details: { option: key } });
  }
  const near = flags.map((f) => ({ f, d: distance(name, f) })).filter((x) => x.d <= Math.max(2, Math.floor(name.length / 4))).sort((x, y) => x.d - y.d)[0];
  const hint = near === undefined ? '' : ` (did you mean --${near.f}?)`;
  return new ConfigError('CATTAIL_CONFIG_UNKNOWN_OPTION', `unknown option ${arg.replace(/=.*$/s, '')}${hint}; run the command with --help to list its options`, { details: { option: name } });
}

/** A value-taking flag at the end of the line, or followed by another flag. */
function missingValue(flag: string, name: string, next: string | undefined): ConfigError {
  const after = next === undefined ? 'nothing follows it' : `it is followed by ${JSON.stringify(next)}`;
  return new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option ${name} (--${flag}) needs a value, and ${after}: write --${flag} VALUE or --${flag}=VALUE`, { details: { option: name } });
}

/** A negative number: a value, not a flag (`--max-connections -5` is then refused by its range). */
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/** How a boolean flag is written, for messages: `--watch-list` / `--no-watch-list`. */
function booleanHint(flag: string): string {
  return `boolean flags take no value: write --${flag} to turn it on, --no-${flag} to turn it off`;
}

/**
 * The flags of `argv` by name. No command takes positional arguments, so any is an error: left
 * alone, `--watch-list false` parsed as `--watch-list` plus a stray `false`, and the option was
 * silently the opposite of what was written.
 */
function parseFlags(table: OptionTable, argv: readonly string[]): Flags {
  const booleans = new Set<string>();
  const parseOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    config: { type: 'string' },
  };
  const nameOf = new Map<string, string>([['config', 'config']]);
  const fileOnly = new Map<string, string>();
  for (const name of Object.keys(table)) {
    const spec = table[name] as OptionSpec<unknown>;
    if (spec.fileOnly) {
      fileOnly.set(flagName(name), name);
      continue;
    }
    const flag = flagName(name);
    nameOf.set(flag, name);
    const o: { type: 'string' | 'boolean'; multiple?: boolean; short?: string } = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
    if (spec.type === 'list') o.multiple = true;
    if (spec.short) o.short = spec.short;
    parseOptions[flag] = o;
    if (spec.type === 'boolean') {
      parseOptions[`no-${flag}`] = { type: 'boolean' };
      booleans.add(flag);
      booleans.add(`no-${flag}`);
    }
  }
  // `--watch-list=false` is refused by parseArgs with a message that does not say what to write.
  for (const arg of argv) {
    const m = /^--([^=]+)=/.exec(arg);
    if (m !== null && booleans.has(m[1] as string)) {
      const flag = (m[1] as string).replace(/^no-/, '');
      throw unexpectedArgument(arg, `unexpected value in ${JSON.stringify(arg)}: ${booleanHint(flag)}`);
    }
  }
  // Flags are checked here rather than left to parseArgs, whose messages mislead: a negative
  // number after a flag is "ambiguous", a missing value and an unknown flag are both reported as
  // unknown options, and the latter suggests a positional argument after `--` (there are none).
  const shortFlags = new Map(Object.entries(parseOptions).flatMap(([flag, o]) => (o.short === undefined ? [] : [[o.short, flag] as const])));
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      args.push(arg);
      continue;
    }
    if (NEGATIVE_NUMBER.test(arg)) {
      // Not taken by a flag before it (those take their value below), so a stray argument.
      const before = /^--([^=]+)$/.exec(argv[i - 1] ?? '')?.[1];
      if (before !== undefined && booleans.has(before)) throw unexpectedArgument(arg, `unexpected argument ${JSON.stringify(arg)} after --${before}: ${booleanHint(before.replace(/^no-/, ''))}`);
      throw unexpectedArgument(arg, `unexpected argument ${JSON.stringify(arg)}: this command takes only options (--name value); run with --help to list them`);
    }
    const long = /^--([^=]+)(=.*)?$/s.exec(arg);
    const flag = long !== null ? (long[1] as string) : arg.length === 2 ? shortFlags.get(arg.slice(1)) : undefined;
    // Own keys only: `--constructor` must be an unknown option, not Object.prototype's.
    if (flag === undefined || !Object.hasOwn(parseOptions, flag)) throw unknownOption(arg, Object.keys(parseOptions), fileOnly);
    if (parseOptions[flag]?.type === 'string' && long?.[2] === undefined) {
      const next = argv[i + 1];
      // A lone `-` is a value (stdin, by convention), as parseArgs took it.
      if (next === undefined || (next.startsWith('-') && next !== '-' && !NEGATIVE_NUMBER.test(next))) throw missingValue(flag, nameOf.get(flag) ?? flag, next);
      // Inline, so parseArgs takes `-5` as the value it is.
      args.push(`--${flag}=${next}`);
      i++;
      continue;
    }
    args.push(arg);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options: parseOptions, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    // Not expected after the scan above; keep the code right if parseArgs finds something else.
    const code = (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? 'CATTAIL_CONFIG_UNKNOWN_OPTION' : 'CATTAIL_CONFIG_INVALID_VALUE';
    throw new ConfigError(code, (err as Error).message, { cause: err });
  }
  const tokens = parsed.tokens ?? [];
  for (const [i, token] of tokens.entries()) {
    if (token.kind !== 'positional') continue;
    const before = tokens[i - 1];
    if (before?.kind === 'option' && booleans.has(before.name) && before.inlineValue === undefined) {
      const flag = before.name.replace(/^no-/, '');
      throw unexpectedArgument(token.value, `unexpected argument ${JSON.stringify(token.value)} after ${before.rawName}: ${booleanHint(flag)}`);
    }
    throw unexpectedArgument(token.value, `unexpected argument ${JSON.stringify(token.value)}: this command takes only options (--name value); run with --help to list them`);
  }
  return parsed.values as Flags;
}

/**
 * Resolves `table` from argv, environment and an optional config file (named by `--config FILE`
 * or `CATTAIL_CONFIG`). Throws a {@link ConfigError} naming the option on the first bad value.
 */
export function resolveConfig<S extends OptionTable>(table: S, input: ResolveInput = {}): Resolved<S> {
  const argv = input.argv ?? [];
  const env = input.env ?? {};
  const names = Object.keys(table);

  const flags = parseFlags(table, argv);

  // An empty CATTAIL_CONFIG means unset, as every other empty CATTAIL_* variable does.
  const configFile = input.configFile ?? (flags['config'] as string | undefined) ?? (env['CATTAIL_CONFIG'] || undefined);
  const fileValues = configFile === undefined ? {} : readConfigFile(configFile, input.readFile ?? ((p) => readFileSync(p, 'utf8')));
  for (const key of Object.keys(fileValues)) {
    // Own keys only: `in` also found inherited names (a file key `toString` passed, then was ignored).
    if (!Object.hasOwn(table, key)) {
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
    if (source === 'default' && spec.required && input.allowMissing !== true) {
      throw missingOption(name, spec, 'default', spec.fileOnly ? `config file key ${name}` : `--${flag}, ${envKey} or config file key ${name}`);
    }
    config[name] = source === 'default' ? spec.default : coerce(name, spec, raw, source, configFile);
    sources[name] = source;
  }
  return { config: config as ConfigOf<S>, sources: sources as Record<keyof S & string, Source>, configFile };
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
