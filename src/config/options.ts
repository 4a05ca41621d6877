/**
 * Option tables: one typed, declarative table per command.
 *
 * Each option's name carries its unit (`pingIntervalMs`, `maxClientBytes`), and its spec holds the
 * default, the validation and the help text. From that one table come: the `--kebab-case` flags,
 * the `CATTAIL_SNAKE_CASE` environment variables, the config-file keys (the camelCase names), the
 * `--help` text, `--print-config`, and the README's option tables (generated, drift-tested).
 *
 * Rejected alternative: a CLI framework (commander, yargs). Both would give flags but not the
 * environment/file layers, validation messages that name the source, or doc generation, and
 * commander's current major needs Node 22. `node:util` parseArgs does the tokenising.
 */
import { MAX_TIMER_MS } from '../clock.js';

export type OptionType = 'string' | 'int' | 'number' | 'boolean' | 'enum' | 'list' | 'object';

/** A fully described option. `T` is the type of the resolved value. */
export interface OptionSpec<T> {
  readonly type: OptionType;
  /** The value when no flag, variable or file sets it. `undefined` means "not set". */
  readonly default: T;
  /** One sentence for --help and the README. Say what it does and why you would change it. */
  readonly help: string;
  /** Unit shown in docs (ms, bytes, count, per second...). Must agree with the name's suffix. */
  readonly unit?: string;
  /** Inclusive bounds for int/number. */
  readonly min?: number;
  readonly max?: number;
  /** Allowed values for enum, and for each element of an enum-like list. */
  readonly values?: readonly string[];
  /** Redacted by --print-config and in logs. */
  readonly secret?: boolean;
  /** Settable only from the config file (structured values such as custom feed tables). */
  readonly fileOnly?: boolean;
  /** A one-letter flag alias. */
  readonly short?: string;
  /** Must be set: leaving it at its default is an error (the default only types the empty value). */
  readonly required?: boolean;
  /** Extra validation; returns a reason when the value is invalid. */
  check?(value: NonNullable<T>): string | undefined;
}

export type OptionTable = Readonly<Record<string, OptionSpec<unknown>>>;

/** The resolved configuration type of a table. */
export type ConfigOf<S extends OptionTable> = { -readonly [K in keyof S]: S[K] extends OptionSpec<infer T> ? T : never };

/** A caller may pass a read-only array where the resolved value is a (fresh, mutable) copy. */
type Input<T> = T extends (infer E)[] ? readonly E[] : T;

/**
 * What a library function takes for a table: every option optional (unset means its default).
 * The option's unit, default and range are its spec's, shown in the README's option tables.
 */
export type OptionsOf<S extends OptionTable> = { readonly [K in keyof S]?: Input<ConfigOf<S>[K]> };

type Base<T> = Omit<OptionSpec<T>, 'type' | 'default' | 'values'>;

function spec<T>(type: OptionType, def: T, rest: Omit<OptionSpec<T>, 'type' | 'default'>): OptionSpec<T> {
  return { type, default: def, ...rest };
}

/**
 * Every option in ms is bounded by the longest delay Node's timers take (clock.ts) unless its spec
 * sets a lower maximum.
 */
export { MAX_TIMER_MS };

/** `o` with the timer bound when its unit is ms and it sets no maximum of its own. */
function msBounded<T extends { readonly unit?: string; readonly max?: number }>(o: T): T {
  return o.unit === 'ms' && o.max === undefined ? { ...o, max: MAX_TIMER_MS } : o;
}

/** Builders: `opt.int({ default: 10_000, unit: 'ms', min: 1, help: '...' })`. */
export const opt = {
  string<D extends string | undefined>(o: Base<string> & { default: D }): OptionSpec<D extends string ? string : string | undefined> {
    return spec('string', o.default, o) as never;
  },
  int<D extends number | undefined>(o: Base<number> & { default: D }): OptionSpec<D extends number ? number : number | undefined> {
    return spec('int', o.default, msBounded(o)) as never;
  },
  number<D extends number | undefined>(o: Base<number> & { default: D }): OptionSpec<D extends number ? number : number | undefined> {
    return spec('number', o.default, msBounded(o)) as never;
  },
  boolean(o: Base<boolean> & { default: boolean }): OptionSpec<boolean> {
    return spec('boolean', o.default, o);
  },
  enum<const V extends readonly string[]>(o: Base<V[number]> & { values: V; default: V[number] }): OptionSpec<V[number]> {
    return spec('enum', o.default, o);
  },
  /** Repeatable flag (`--feed a --feed b`), comma-separated in the environment, an array in the file. */
  list<const V extends readonly string[] = readonly string[]>(o: Base<V[number][]> & { default: V[number][]; values?: V }): OptionSpec<V[number][]> {
    return spec('list', o.default, o);
  },
  /** Structured value, from the config file only. */
  object<T>(o: Base<T> & { default: T }): OptionSpec<T> {
    return spec('object', o.default, { ...o, fileOnly: true });
  },
};

/**
 * The same option with another default, for a library entry whose callers want something else
 * than the command line's (a free port for tests, an empty simulated cluster). Everything else —
 * unit, range, check, help — stays the one spec's.
 */
export function withDefault<T>(base: OptionSpec<T>, def: T): OptionSpec<T> {
  // With a default of its own, an option that must be set elsewhere need not be set here.
  return { ...base, default: def, required: false };
}

/** `pingIntervalMs` → `ping-interval-ms`. */
export function flagName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

/** `pingIntervalMs` → `CATTAIL_PING_INTERVAL_MS`. */
export function envName(name: string): string {
  return 'CATTAIL_' + flagName(name).replace(/-/g, '_').toUpperCase();
}
