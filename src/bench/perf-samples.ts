/**
 * Sorts `perf script` samples of the fan-out benchmark's process into where its CPU went: the
 * kernel, zlib, V8's optimizing compiler, its garbage collector, its builtins (the inline-cache
 * handlers and the interpreter's and baseline code's helpers), optimized and unoptimized
 * JavaScript, V8's runtime, libc and the rest; each on the main thread or another one.
 *
 * Why: process.cpuUsage and schedstat say how much CPU a cold start cost and on which thread, not
 * what it was made of, and a V8 CPU profile sees only the main thread's JavaScript (and inflates it
 * with its own sampling). perf samples every thread, kernel included; with node's
 * `--perf-basic-prof-only-functions` it names JavaScript functions and marks their tier: optimized
 * (TurboFan, Maglev) apart from still interpreted or baseline code. bench/perf-cold.ts runs it.
 */

/** One sample: the process and thread, the time (CLOCK_MONOTONIC µs with `perf record -k CLOCK_MONOTONIC`), the leaf symbol and its object. */
export interface PerfSample {
  readonly pid: number;
  readonly tid: number;
  readonly tUs: number;
  readonly sym: string;
  readonly dso: string;
}

/**
 * Parses `perf script -F pid,tid,time,ip,sym,dso` output (`  27285/27285 59186.855235:  ffffffff81702970 ___d_drop ([kernel.kallsyms])`).
 * Lines in any other form are skipped.
 */
export function parsePerfScript(text: string): PerfSample[] {
  const out: PerfSample[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\/(\d+)\s+(\d+\.\d+):\s+[0-9a-f]+\s+(.*?)\s+\(([^()]*)\)\s*$/.exec(line);
    if (m === null) continue;
    out.push({ pid: Number(m[1]), tid: Number(m[2]), tUs: Math.round(Number(m[3]) * 1e6), sym: m[4] as string, dso: m[5] as string });
  }
  return out;
}

export const PERF_CATEGORIES = ['kernel', 'zlib', 'V8 compiler', 'V8 GC', 'V8 builtins (ICs, interpreter)', 'JS unoptimized', 'JS optimized', 'V8 runtime', 'libc', 'other'] as const;
export type PerfCategory = (typeof PERF_CATEGORIES)[number];

/** zlib's deflate, linked into node: its functions carry no namespace. */
const ZLIB = /^(deflate\w*|longest_match|compress_block\w*|fill_window|_tr_\w+|send_tree|build_tree|pqdownheap|gen_bitlen|gen_codes|scan_tree|adler32\w*|crc32\w*|slide_hash\w*|inflate\w*)$/;
const GC = /(Heap|Marking|Marker|Scaveng|Sweep|Evacuat|Compactor|MemoryChunk|RecordWrite|ConcurrentMarking|GCTracer)/;

/** The category of one sample's leaf. */
export function categorize(s: Pick<PerfSample, 'sym' | 'dso'>): PerfCategory {
  if (s.dso.includes('kernel')) return 'kernel';
  const sym = s.sym;
  if (ZLIB.test(sym)) return 'zlib';
  if (sym.includes('compiler::') || sym.includes('Turbofan') || sym.includes('maglev::')) return 'V8 compiler';
  // V8's perf map marks the tier: `*` TurboFan, `+` Maglev (Node 22 on), `^` Sparkplug, `~` Ignition.
  if (sym.startsWith('JS:*') || sym.startsWith('JS:+')) return 'JS optimized';
  if (sym.startsWith('JS:') || sym.startsWith('LazyCompile:') || sym.startsWith('Function:')) return 'JS unoptimized';
  if (sym.startsWith('Builtins_') || sym.startsWith('Builtin:')) return 'V8 builtins (ICs, interpreter)';
  if (GC.test(sym)) return 'V8 GC';
  if (sym.startsWith('v8::')) return 'V8 runtime';
  if (/libc[.-]/.test(s.dso)) return 'libc';
  return 'other';
}

export interface TimeWindow {
  readonly label: string;
  readonly t0: number;
  readonly t1: number;
}

/** Samples per label, thread ('main' when tid = pid) and category, of `pid`'s samples inside the windows. */
export function splitSamples(samples: readonly PerfSample[], pid: number, windows: readonly TimeWindow[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  const ws = [...windows].sort((a, b) => a.t0 - b.t0);
  for (const s of samples) {
    if (s.pid !== pid) continue;
    const w = ws.find((x) => s.tUs >= x.t0 && s.tUs <= x.t1);
    if (w === undefined) continue;
    const key = `${s.tid === s.pid ? 'main' : 'other'}\t${categorize(s)}`;
    const m = out.get(w.label) ?? new Map<string, number>();
    m.set(key, (m.get(key) ?? 0) + 1);
    out.set(w.label, m);
  }
  return out;
}
