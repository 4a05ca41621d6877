/**
 * What the hostile-input suites and the CI convergence seeds tried, for the figures in
 * docs/reliability.md (`npm run reliability`, scripts/reliability-run.ts).
 *
 * A plain `npm test` records nothing: only when CATTAIL_RELIABILITY_RECORD names a file does a
 * tally append its counts there, one JSON line per (surface, class, outcome), when its suite ends.
 * Appending lines (not rewriting one JSON document) keeps concurrent vitest workers from
 * overwriting each other; the script sums the lines. The counts are what the tests really sent:
 * a tally is fed next to the assertion it describes, so a class whose test fails is never
 * reported, because the script discards the whole record when vitest fails.
 */
import { appendFileSync } from 'node:fs';
import { afterAll } from 'vitest';
import type { RunReport } from '../convergence/scenario.js';

/** Where the hostile input entered: the pure decoder, the server's session, its TCP and HTTP front, TLS, the upstream reader, or an agent (from a hostile server). */
export type HostileSurface = 'decoder' | 'session' | 'connections' | 'tls' | 'upstream' | 'agent';

export interface HostileLine {
  kind: 'hostile';
  surface: HostileSurface;
  /** What was sent, e.g. "truncated frame", "slow-loris upgrade". */
  class: string;
  /** What the system did with it, e.g. "CATTAIL_PROTO_TRUNCATED (4000)", "closed by the handshake deadline". */
  outcome: string;
  tried: number;
  /** A healthy agent on the same server was asserted to keep streaming while these were tried. */
  witness: boolean;
}

export interface SeedLine {
  kind: 'seed';
  report: RunReport;
}

export type ReliabilityLine = HostileLine | SeedLine;

const target = (): string | undefined => process.env.CATTAIL_RELIABILITY_RECORD || undefined;

function append(lines: readonly ReliabilityLine[]): void {
  const file = target();
  if (file === undefined || lines.length === 0) return;
  appendFileSync(file, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
}

export interface HostileTally {
  /** Counts `n` inputs of `klass` that ended in `outcome`. */
  add(klass: string, outcome: string, n?: number): void;
}

/**
 * A tally for one test file; it is written when the file's tests end. `witness` says whether the
 * file asserts that a healthy agent kept streaming beside the hostile input.
 */
export function hostileTally(surface: HostileSurface, witness: boolean): HostileTally {
  const counts = new Map<string, HostileLine>();
  afterAll(() => append([...counts.values()]));
  return {
    add(klass, outcome, n = 1) {
      const key = `${klass}\u0000${outcome}`;
      const line = counts.get(key) ?? { kind: 'hostile', surface, class: klass, outcome, tried: 0, witness };
      line.tried += n;
      counts.set(key, line);
    },
  };
}

/** Records one convergence run (the CI seeds), beside the soak's runs in the figures. */
export function recordSeed(report: RunReport): void {
  append([{ kind: 'seed', report }]);
}
