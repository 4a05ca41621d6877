import { describe, expect, it } from 'vitest';
import { redactedConfig, resolveConfig } from '../src/config/load.js';
import { envName, flagName, opt, withDefault } from '../src/config/options.js';
import { resolveOptions } from '../src/config/resolve.js';
import { CattailError } from '../src/errors.js';
import { serveOptions } from '../src/server/options.js';
import { connectOptions } from '../src/client/connect-options.js';

const table = {
  pingIntervalMs: opt.int({ default: 10_000, unit: 'ms', min: 100, help: 'ping' }),
  listen: opt.string({ default: '127.0.0.1:5473', help: 'listen' }),
  kubeconfig: opt.string({ default: undefined, help: 'kc' }),
  token: opt.string({ default: undefined, secret: true, help: 'secret token' }),
  verbose: opt.boolean({ default: false, help: 'v' }),
  mode: opt.enum({ values: ['a', 'b'] as const, default: 'a', help: 'mode' }),
  feed: opt.list({ default: ['felix'], help: 'feeds' }),
  feeds: opt.object<Record<string, unknown> | undefined>({ default: undefined, help: 'custom feeds' }),
} as const;

function files(map: Record<string, string>): (p: string) => string {
  return (p) => {
    const v = map[p];
    if (v === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
    return v;
  };
}

describe('config - names', () => {
  it('derives flags and environment variables from the option name', () => {
    expect(flagName('pingIntervalMs')).toBe('ping-interval-ms');
    expect(envName('pingIntervalMs')).toBe('CATTAIL_PING_INTERVAL_MS');
    expect(envName('httpListen')).toBe('CATTAIL_HTTP_LISTEN');
  });
});

describe('config - precedence', () => {
  const readFile = files({ '/c.yaml': 'pingIntervalMs: 3000\nlisten: 0.0.0.0:1\nmode: b\n' });

  it('uses defaults when nothing is set', () => {
    const r = resolveConfig(table, {});
    expect(r.config).toMatchObject({ pingIntervalMs: 10_000, listen: '127.0.0.1:5473', kubeconfig: undefined, verbose: false, mode: 'a', feed: ['felix'] });
    expect(r.sources.pingIntervalMs).toBe('default');
  });

  it('file overrides default, env overrides file, flag overrides env', () => {
    const fileOnly = resolveConfig(table, { argv: ['--config', '/c.yaml'], readFile });
    expect(fileOnly.config.pingIntervalMs).toBe(3000);
    expect(fileOnly.sources.pingIntervalMs).toBe('file');

    const env = resolveConfig(table, { argv: ['--config', '/c.yaml'], env: { CATTAIL_PING_INTERVAL_MS: '4000' }, readFile });
    expect(env.config.pingIntervalMs).toBe(4000);
    expect(env.sources.pingIntervalMs).toBe('env');
    expect(env.config.listen).toBe('0.0.0.0:1');

    const flag = resolveConfig(table, { argv: ['--config', '/c.yaml', '--ping-interval-ms', '5000'], env: { CATTAIL_PING_INTERVAL_MS: '4000' }, readFile });
    expect(flag.config.pingIntervalMs).toBe(5000);
    expect(flag.sources.pingIntervalMs).toBe('flag');
    expect(flag.config.mode).toBe('b');
  });

  it('finds the config file through CATTAIL_CONFIG and reads JSON too', () => {
    const r = resolveConfig(table, { env: { CATTAIL_CONFIG: '/c.json' }, readFile: files({ '/c.json': '{"verbose": true, "feed": ["bgp", "felix"]}' }) });
    expect(r.config.verbose).toBe(true);
    expect(r.config.feed).toEqual(['bgp', 'felix']);
    expect(r.configFile).toBe('/c.json');
  });

  it('parses repeated list flags, comma-separated env lists, and --no- booleans', () => {
    expect(resolveConfig(table, { argv: ['--feed', 'felix', '--feed', 'bgp'] }).config.feed).toEqual(['felix', 'bgp']);
    expect(resolveConfig(table, { env: { CATTAIL_FEED: 'felix, bgp' } }).config.feed).toEqual(['felix', 'bgp']);
    // A flag's value is split at commas too (before the values are checked), and repeats add up.
    expect(resolveConfig(table, { argv: ['--feed', 'felix,bgp', '--feed', 'x'] }).config.feed).toEqual(['felix', 'bgp', 'x']);
    // The form README.md shows for cattail serve, against the option's allowed values.
    expect(resolveConfig(serveOptions, { argv: ['--scoped-feeds', 'felix,tunnel-ip-allocation,node-status'] }).config.scopedFeeds).toEqual(['felix', 'tunnel-ip-allocation', 'node-status']);
    expect(() => resolveConfig(serveOptions, { argv: ['--scoped-feeds', 'felix,bgp'] })).toThrow(/each entry must be one of/);
    expect(resolveConfig(table, { argv: ['--no-verbose'], env: { CATTAIL_VERBOSE: 'true' } }).config.verbose).toBe(false);
    expect(resolveConfig(table, { env: { CATTAIL_VERBOSE: 'yes' } }).config.verbose).toBe(true);
  });

  it('accepts structured values from the file only', () => {
    const r = resolveConfig(table, { argv: ['--config', '/f.yaml'], readFile: files({ '/f.yaml': 'feeds:\n  mine:\n    resources: [pods]\n' }) });
    expect(r.config.feeds).toEqual({ mine: { resources: ['pods'] } });
    expect(() => resolveConfig(table, { argv: ['--feeds', 'x'] })).toThrow('unknown option --feeds: feeds is set in the config file only (--config FILE, key feeds)');
  });
});

describe('config - errors name the option, source and value', () => {
  function codeOf(fn: () => unknown): { code: string; message: string } {
    try {
      fn();
    } catch (err) {
      expect(CattailError.is(err)).toBe(true);
      return { code: (err as CattailError).code, message: (err as Error).message };
    }
    throw new Error('did not throw');
  }

  it('rejects a non-integer flag', () => {
    const e = codeOf(() => resolveConfig(table, { argv: ['--ping-interval-ms', '10s'] }));
    expect(e.code).toBe('CATTAIL_CONFIG_INVALID_VALUE');
    expect(e.message).toContain('pingIntervalMs');
    expect(e.message).toContain('--ping-interval-ms');
    expect(e.message).toContain('"10s"');
  });

  it('rejects a value below the minimum from the environment', () => {
    const e = codeOf(() => resolveConfig(table, { env: { CATTAIL_PING_INTERVAL_MS: '5' } }));
    expect(e.code).toBe('CATTAIL_CONFIG_INVALID_VALUE');
    expect(e.message).toContain('CATTAIL_PING_INTERVAL_MS');
    expect(e.message).toContain('from 100 to 2147483647');
  });

  it('bounds every ms option at the longest timer Node takes (a longer one would fire after 1 ms)', () => {
    const e = codeOf(() => resolveConfig(table, { argv: ['--ping-interval-ms', '99999999999'] }));
    expect(e.code).toBe('CATTAIL_CONFIG_INVALID_VALUE');
    expect(e.message).toContain('to 2147483647');
    expect(resolveConfig(table, { argv: ['--ping-interval-ms', '2147483647'] }).config.pingIntervalMs).toBe(2_147_483_647);
    // Every ms option of the server's and the client's tables has that bound (or a lower one).
    for (const t of [serveOptions, connectOptions]) {
      for (const [name, spec] of Object.entries(t) as [string, { unit?: string; max?: number }][]) {
        if (spec.unit === 'ms') expect(spec.max ?? Infinity, name).toBeLessThanOrEqual(2_147_483_647);
      }
    }
  });

  it('rejects a bad enum from the file, naming the file and key', () => {
    const e = codeOf(() => resolveConfig(table, { argv: ['--config', '/x.yaml'], readFile: files({ '/x.yaml': 'mode: c' }) }));
    expect(e.message).toContain('/x.yaml');
    expect(e.message).toMatch(/mode.*one of a, b/);
  });

  it('rejects unknown keys in the file and unknown flags', () => {
    expect(codeOf(() => resolveConfig(table, { argv: ['--config', '/x.yaml'], readFile: files({ '/x.yaml': 'pingIntervalMS: 5' }) })).code).toBe('CATTAIL_CONFIG_UNKNOWN_OPTION');
    expect(codeOf(() => resolveConfig(table, { argv: ['--pingg'] })).code).toBe('CATTAIL_CONFIG_UNKNOWN_OPTION');
    // Names only Object.prototype has are unknown in a file too (they used to pass and be ignored).
    for (const key of ['toString', 'constructor', '__proto__']) {
      expect(codeOf(() => resolveConfig(table, { argv: ['--config', '/p.json'], readFile: files({ '/p.json': `{${JSON.stringify(key)}: 1}` }) })).code, key).toBe('CATTAIL_CONFIG_UNKNOWN_OPTION');
    }
  });

  it('takes an empty CATTAIL_CONFIG as unset, like every other empty CATTAIL_* variable', () => {
    const r = resolveConfig(table, { env: { CATTAIL_CONFIG: '' }, readFile: files({}) });
    expect(r.configFile).toBeUndefined();
  });

  it('reports an unreadable or unparsable file', () => {
    expect(codeOf(() => resolveConfig(table, { argv: ['--config', '/missing.yaml'], readFile: files({}) })).code).toBe('CATTAIL_CONFIG_FILE_UNREADABLE');
    expect(codeOf(() => resolveConfig(table, { argv: ['--config', '/bad.yaml'], readFile: files({ '/bad.yaml': 'a: [1, 2' }) })).code).toBe('CATTAIL_CONFIG_FILE_UNREADABLE');
    expect(codeOf(() => resolveConfig(table, { argv: ['--config', '/list.yaml'], readFile: files({ '/list.yaml': '- 1\n- 2' }) })).code).toBe('CATTAIL_CONFIG_FILE_UNREADABLE');
  });
});

describe('config - printing', () => {
  it('redacts secrets and keeps everything else', () => {
    const r = resolveConfig(table, { env: { CATTAIL_TOKEN: 'hunter2' } });
    const shown = redactedConfig(table, r.config);
    expect(shown.token).toBe('<redacted>');
    expect(JSON.stringify(shown)).not.toContain('hunter2');
    expect(shown.pingIntervalMs).toBe(10_000);
  });
});

describe('config - command line', () => {
  function errorOf(argv: string[]): CattailError {
    try {
      resolveConfig(table, { argv });
    } catch (err) {
      return err as CattailError;
    }
    throw new Error(`${argv.join(' ')} did not throw`);
  }

  it('refuses positional arguments, naming the argument', () => {
    const e = errorOf(['--listen', '0.0.0.0:1', 'foo']);
    expect(e.code).toBe('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
    expect(e.message).toContain('"foo"');
    expect(e.details).toEqual({ argument: 'foo' });
    expect(errorOf(['--', '--verbose']).code).toBe('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
  });

  it('refuses a value given to a boolean flag, and says how to write it', () => {
    for (const argv of [['--verbose', 'false'], ['--verbose=false'], ['--no-verbose', 'yes'], ['--no-verbose=1']]) {
      const e = errorOf(argv);
      expect(e.code, argv.join(' ')).toBe('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
      expect(e.message).toContain('--verbose to turn it on, --no-verbose to turn it off');
    }
  });

  it('still reads values that look like words after non-boolean flags', () => {
    expect(resolveConfig(table, { argv: ['--listen', 'false', '--mode', 'b'] }).config).toMatchObject({ listen: 'false', mode: 'b' });
    expect(resolveConfig(table, { argv: ['--listen=x:1', '--verbose'] }).config).toMatchObject({ listen: 'x:1', verbose: true });
  });

  it('takes a negative number as the value of the flag before it, and a dash-word as a missing value', () => {
    expect(resolveConfig(table, { argv: ['--listen', '-5'] }).config.listen).toBe('-5');
    const low = errorOf(['--ping-interval-ms', '-5']);
    expect([low.code, low.message]).toEqual(['CATTAIL_CONFIG_INVALID_VALUE', 'option pingIntervalMs (--ping-interval-ms): expected an integer from 100 to 2147483647 (ms), got "-5"']);
    const missing = errorOf(['--listen', '--verbose']);
    expect([missing.code, missing.details]).toEqual(['CATTAIL_CONFIG_INVALID_VALUE', { option: 'listen' }]);
    expect(errorOf(['--mode']).message).toBe('option mode (--mode) needs a value, and nothing follows it: write --mode VALUE or --mode=VALUE');
    const unknown = errorOf(['--verbos']);
    expect([unknown.code, unknown.message, unknown.details]).toEqual(['CATTAIL_CONFIG_UNKNOWN_OPTION', 'unknown option --verbos (did you mean --verbose?); run the command with --help to list its options', { option: 'verbos' }]);
    // A lone dash is a value; a name that only Object.prototype has is an unknown option.
    expect(resolveConfig(table, { argv: ['--listen', '-'] }).config.listen).toBe('-');
    expect(errorOf(['--constructor']).code).toBe('CATTAIL_CONFIG_UNKNOWN_OPTION');
    expect(errorOf(['--toString', 'x']).message).toMatch(/^unknown option --toString/);
  });

  it('requires a required option unless printing the configuration', () => {
    const needs = { server: opt.list({ default: [], required: true, help: 'where' }) };
    expect(() => resolveConfig(needs, {})).toThrow(/option server \(--server, CATTAIL_SERVER or config file key server\) is required: where/);
    expect(resolveConfig(needs, { allowMissing: true }).config.server).toEqual([]);
    expect(resolveConfig(needs, { env: { CATTAIL_SERVER: 'a,b' } }).config.server).toEqual(['a', 'b']);
    expect(resolveConfig({ server: withDefault(needs.server, ['x']) }, {}).config.server).toEqual(['x']);
  });
});

describe('config - library options (resolveOptions)', () => {
  const lib = {
    pingIntervalMs: opt.int({ default: 10_000, unit: 'ms', min: 100, max: 60_000, help: 'ping' }),
    verbose: opt.boolean({ default: false, help: 'v' }),
    feed: opt.list({ default: ['felix'], help: 'feeds' }),
    mode: opt.enum({ values: ['a', 'b'] as const, default: 'a', help: 'mode' }),
    name: opt.string({ default: undefined, help: 'n', check: (v) => (v.length > 3 ? 'expected at most 3 characters' : undefined) }),
  } as const;

  it('applies defaults for unset and undefined options, and copies lists', () => {
    const given = ['bgp'];
    const r = resolveOptions(lib, { verbose: undefined, feed: given }, 'start');
    expect(r).toEqual({ pingIntervalMs: 10_000, verbose: false, feed: ['bgp'], mode: 'a', name: undefined });
    expect(r.feed).not.toBe(given);
    expect(resolveOptions(lib, undefined, 'start').feed).not.toBe(lib.feed.default);
  });

  it('throws CATTAIL_INVALID_ARGUMENT with the message a flag would get, naming unit and range', () => {
    let fromLibrary = '';
    try {
      resolveOptions(lib, { pingIntervalMs: 5 }, 'start');
    } catch (err) {
      expect((err as CattailError).code).toBe('CATTAIL_INVALID_ARGUMENT');
      expect((err as CattailError).details).toMatchObject({ option: 'pingIntervalMs', source: 'option' });
      fromLibrary = (err as Error).message;
    }
    expect(fromLibrary).toBe('option pingIntervalMs (start): expected an integer from 100 to 60000 (ms), got 5');
    expect(() => resolveConfig(lib, { argv: ['--ping-interval-ms', '5'] })).toThrow('option pingIntervalMs (--ping-interval-ms): expected an integer from 100 to 60000 (ms), got "5"');
  });

  it('wants the type itself: no text parsing for library callers', () => {
    expect(() => resolveOptions(lib, { pingIntervalMs: '500' as never }, 'start')).toThrow(/expected an integer from 100 to 60000 \(ms\), got "500"/);
    expect(() => resolveOptions(lib, { verbose: 'true' as never }, 'start')).toThrow(/option verbose \(start\): expected true or false/);
    expect(() => resolveOptions(lib, { feed: 'a,b' as never }, 'start')).toThrow(/expected a list of strings/);
    expect(() => resolveOptions(lib, { pingIntervalMs: 100.5 }, 'start')).toThrow(/expected an integer/);
    expect(() => resolveOptions(lib, { mode: 'c' as never }, 'start')).toThrow(/expected one of a, b/);
    expect(() => resolveOptions(lib, { name: 'long' }, 'start')).toThrow(/option name \(start\): expected at most 3 characters, got "long"/);
    expect(() => resolveOptions(lib, 7 as never, 'start')).toThrow(/start: options must be an object/);
  });
});
