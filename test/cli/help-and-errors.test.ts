import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main, stopSignals } from '../../src/cli/main.js';
import { VERSION } from '../../src/version.js';

function sink(): Writable & { text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return Object.assign(w, { text: () => chunks.join('') });
}

async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const stdout = sink();
  const stderr = sink();
  const code = await main(argv, { stdout, stderr, env });
  return { code, out: stdout.text(), err: stderr.text() };
}

describe('cli', () => {
  it('prints help listing every subcommand', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['serve', 'agent', 'sim', 'bench']) expect(r.out).toContain(`  ${c}`);
  });

  it('prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(VERSION);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('prints per-command help with flags, defaults and env names', async () => {
    const r = await run(['serve', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--ping-interval-ms');
    expect(r.out).toContain('CATTAIL_PING_INTERVAL_MS');
    expect(r.out).toContain('10_000');
    expect(r.out).toContain('--watch-list, --no-watch-list');
  });

  it('rejects an unknown command with a coded error and exit 2', async () => {
    const r = await run(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CLI_UNKNOWN_COMMAND');
  });

  it('rejects a bad option value naming the option', async () => {
    const r = await run(['serve', '--ping-interval-ms', 'soon']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_INVALID_VALUE');
    expect(r.err).toContain('pingIntervalMs');
  });

  it('prints the effective configuration with sources', async () => {
    const r = await run(['agent', '--print-config', '--feed', 'bgp'], { CATTAIL_TIMEOUT_MS: '5000' });
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.out) as { options: Record<string, { value: unknown; source: string }> };
    expect(printed.options.feed).toEqual({ value: ['bgp'], source: 'flag' });
    expect(printed.options.timeoutMs).toEqual({ value: 5000, source: 'env' });
    expect(printed.options.once).toEqual({ value: false, source: 'default' });
  });

  it('rejects a stray positional argument, naming it', async () => {
    const r = await run(['serve', 'foo']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
    expect(r.err).toContain('"foo"');
  });

  it('rejects a value after a boolean flag and says how booleans are written', async () => {
    // `false` used to be a silent stray positional, leaving watchList at its default (true).
    for (const argv of [['serve', '--watch-list', 'false'], ['serve', '--watch-list=false'], ['serve', '--no-watch-list', 'true']]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
      expect(r.err).toContain('--no-watch-list');
    }
    const off = await run(['serve', '--no-watch-list', '--print-config']);
    expect(off.code).toBe(0);
    expect((JSON.parse(off.out) as { options: Record<string, { value: unknown }> }).options.watchList?.value).toBe(false);
    const on = await run(['serve', '--watch-list', '--print-config'], { CATTAIL_WATCH_LIST: 'false' });
    expect((JSON.parse(on.out) as { options: Record<string, { value: unknown; source: string }> }).options.watchList).toEqual({ value: true, source: 'flag' });
  });

  it('a negative number after a flag is its value, refused by the option\'s range like --flag=-N', async () => {
    for (const [argv, expected] of [
      [['serve', '--max-connections', '-5'], 'option maxConnections (--max-connections): expected an integer of at least 1 (count), got "-5"'],
      [['serve', '--max-connections=-5'], 'option maxConnections (--max-connections): expected an integer of at least 1 (count), got "-5"'],
      [['serve', '--shutdown-timeout-ms', '-1'], 'option shutdownTimeoutMs (--shutdown-timeout-ms): expected an integer from 0 to 2147483647 (ms), got "-1"'],
    ] as const) {
      const r = await run([...argv]);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toBe(`cattail: CATTAIL_CONFIG_INVALID_VALUE: ${expected}\n`);
    }
    // Not taken by a flag, a negative number is a stray argument.
    const stray = await run(['serve', '-5']);
    expect(stray.err).toContain('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT: unexpected argument "-5"');
  });

  it('a flag without its value says the option needs a value (CATTAIL_CONFIG_INVALID_VALUE)', async () => {
    const end = await run(['serve', '--listen']);
    expect(end.code).toBe(2);
    expect(end.err).toBe('cattail: CATTAIL_CONFIG_INVALID_VALUE: option listen (--listen) needs a value, and nothing follows it: write --listen VALUE or --listen=VALUE\n');
    const next = await run(['serve', '--listen', '--http-listen', '127.0.0.1:0']);
    expect(next.code).toBe(2);
    expect(next.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: option listen (--listen) needs a value, and it is followed by "--http-listen"');
    const config = await run(['agent', '--config']);
    expect(config.err).toContain('CATTAIL_CONFIG_INVALID_VALUE: option config (--config) needs a value');
  });

  it('an unknown flag is CATTAIL_CONFIG_UNKNOWN_OPTION, names it, suggests a near flag and never mentions positionals', async () => {
    const r = await run(['serve', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('cattail: CATTAIL_CONFIG_UNKNOWN_OPTION: unknown option --bogus; run the command with --help to list its options\n');
    const typo = await run(['serve', '--max-conections=5']);
    expect(typo.err).toBe('cattail: CATTAIL_CONFIG_UNKNOWN_OPTION: unknown option --max-conections (did you mean --max-connections?); run the command with --help to list its options\n');
    for (const argv of [['serve', '-x'], ['agent', '--nope', '1'], ['serve', '--no-listen']]) {
      const e = await run(argv);
      expect(e.err, argv.join(' ')).toMatch(/^cattail: CATTAIL_CONFIG_UNKNOWN_OPTION: unknown option /);
      expect(e.err).not.toMatch(/positional|'--'/);
    }
  });

  it('bench refuses an --out it cannot write before running anything (exit 2, coded)', async () => {
    // Under a regular file: no directory can be made there (ENOTDIR), whoever runs the test.
    const file = join(mkdtempSync(join(tmpdir(), 'cattail-bench-out-')), 'a-file');
    writeFileSync(file, '');
    const t0 = Date.now();
    const r = await run(['bench', '--quick', '--out', join(file, 'reports')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^cattail: CATTAIL_CONFIG_INVALID_VALUE: option out \(--out\): cannot write reports to /);
    // No benchmark ran (a quick run takes tens of seconds).
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('no command takes positional arguments', async () => {
    for (const name of ['serve', 'agent', 'sim', 'bench']) {
      const r = await run([name, '--print-config', 'extra']);
      expect(r.code, name).toBe(2);
      expect(r.err).toContain('CATTAIL_CONFIG_UNEXPECTED_ARGUMENT');
    }
  });

  it('reads the first termination signal as "stop" and the second as "stop now"', () => {
    const s = stopSignals();
    expect([s.signal.aborted, s.forceSignal.aborted]).toEqual([false, false]);
    s.onSignal();
    expect([s.signal.aborted, s.forceSignal.aborted]).toEqual([true, false]);
    s.onSignal();
    expect([s.signal.aborted, s.forceSignal.aborted]).toEqual([true, true]);
  });
});
