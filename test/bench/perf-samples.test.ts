/**
 * The split of `perf script` samples into where a cold start's CPU went (src/bench/perf-samples.ts),
 * on lines in the form perf 6.1 prints them.
 */
import { describe, expect, it } from 'vitest';
import { categorize, parsePerfScript, splitSamples } from '../../src/bench/perf-samples.js';

const SCRIPT = [
  '   27285/27285 59186.855235:  ffffffff81702970 _copy_from_iter ([kernel.kallsyms])',
  '   27285/27285 59186.856235:      55d0c1a2b3c4 deflate_fast (/usr/local/bin/node)',
  '   27285/27290 59186.857235:      55d0c1a2b3c4 v8::internal::compiler::GraphReducer::ReduceTop() (/usr/local/bin/node)',
  '   27285/27285 59186.858235:      7f62e80553b9 JS:*step file:///x/dist/src/server/fanout/snapshot-cache.js:376:22 (/tmp/perf-27285.map)',
  '   27285/27285 59186.859235:      7f62e80553b9 JS:~onHello file:///x/dist/src/server/fanout/session.js:21:3 (/tmp/perf-27285.map)',
  '   27285/27285 59186.860235:      55d0c1a2b3c4 Builtins_LoadIC (/usr/local/bin/node)',
  '   27285/27291 59186.861235:      55d0c1a2b3c4 v8::internal::ConcurrentMarking::RunMajor(v8::JobDelegate*) (/usr/local/bin/node)',
  '   27285/27285 59186.862235:      55d0c1a2b3c4 v8::internal::LookupIterator::LookupInRegularHolder<false>() (/usr/local/bin/node)',
  '   27285/27285 59186.863235:      7f62e9a00000 __memmove_avx512_unaligned_erms (/usr/lib/x86_64-linux-gnu/libc.so.6)',
  '   27298/27298 59186.858000:  ffffffff81702970 tcp_recvmsg ([kernel.kallsyms])',
  'not a sample line',
  '',
].join('\n');

describe('perf sample split', () => {
  it('parses pid, thread, monotonic time, symbol and object, and skips other lines', () => {
    const s = parsePerfScript(SCRIPT);
    expect(s).toHaveLength(10);
    expect(s[0]).toEqual({ pid: 27285, tid: 27285, tUs: 59186855235, sym: '_copy_from_iter', dso: '[kernel.kallsyms]' });
    expect(s[2]).toMatchObject({ tid: 27290, sym: 'v8::internal::compiler::GraphReducer::ReduceTop()' });
    expect(s[3]?.sym).toBe('JS:*step file:///x/dist/src/server/fanout/snapshot-cache.js:376:22');
  });

  it('names each leaf by where its time went', () => {
    const cats = parsePerfScript(SCRIPT).map(categorize);
    expect(cats).toEqual(['kernel', 'zlib', 'V8 compiler', 'JS optimized', 'JS unoptimized', 'V8 builtins (ICs, interpreter)', 'V8 GC', 'V8 runtime', 'libc', 'kernel']);
    // A write barrier is a builtin, not the collector's own work.
    expect(categorize({ sym: 'Builtins_RecordWriteSaveFP', dso: '/usr/local/bin/node' })).toBe('V8 builtins (ICs, interpreter)');
    // Node 24's tiers: Maglev is optimized code, Sparkplug baseline code is not.
    expect(categorize({ sym: 'JS:+pumpSnapshot file:///x/service.js:250:17', dso: '/tmp/perf-1.map' })).toBe('JS optimized');
    expect(categorize({ sym: 'JS:^headersOf file:///x/ws-transport.js:27:1', dso: '/tmp/perf-1.map' })).toBe('JS unoptimized');
    expect(categorize({ sym: 'uv__io_poll', dso: '/usr/local/bin/node' })).toBe('other');
  });

  it('counts only the process’s samples inside a window, per window label, thread and category', () => {
    const s = parsePerfScript(SCRIPT);
    const split = splitSamples(s, 27285, [
      { label: 'ws', t0: 59186855000, t1: 59186858500 },
      { label: 'net', t0: 59186859000, t1: 59186861500 },
    ]);
    expect(Object.fromEntries(split.get('ws') ?? [])).toEqual({ 'main\tkernel': 1, 'main\tzlib': 1, 'other\tV8 compiler': 1, 'main\tJS optimized': 1 });
    expect(Object.fromEntries(split.get('net') ?? [])).toEqual({ 'main\tJS unoptimized': 1, 'main\tV8 builtins (ICs, interpreter)': 1, 'other\tV8 GC': 1 });
    // The other process's sample (27298) fell in the ws window and is not counted; the last two samples fall outside every window.
    expect([...split.values()].reduce((a, m) => a + [...m.values()].reduce((x, y) => x + y, 0), 0)).toBe(7);
  });
});
