/**
 * `cattail bench` stops on SIGTERM: the scenario under way ends at its next wait, the rest are
 * skipped, every process it started is stopped, and the report of what it measured is written.
 * Before, the signal was taken (the CLI installs handlers) and ignored until --duration-ms.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/run.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'cattail.js');

describe('cattail bench and stop signals', () => {
  it('SIGTERM during a scenario: that scenario ends, the next is not run, the report is written, exit 1', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cattail-bench-stop-'));
    const child = spawn(process.execPath, [BIN, 'bench', '--quick', '--scenario', 'churn', '--scenario', 'burst', '--out', out, '--duration-ms', '150000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let signalledAt: number | undefined;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      log += d;
      // The churn window has started writing: stop now (a run would go on for minutes).
      if (signalledAt === undefined && /phase: churn\n/.test(log)) {
        signalledAt = Date.now();
        child.kill('SIGTERM');
      }
    });
    child.stderr.resume();
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(signalledAt, log).toBeDefined();
    // Well before the run's own bound (the quick churn and its floor alone take longer than this).
    expect(Date.now() - (signalledAt ?? 0)).toBeLessThan(30_000);
    expect(code).toBe(1);
    const r = JSON.parse(readFileSync(join(out, 'bench-quick.json'), 'utf8')) as BenchReport;
    expect(r.errors).toEqual(['churn: bench: stopped by signal', 'burst: not run (bench: stopped by signal)']);
    expect(r.records).toEqual([]);
    expect(log).toMatch(/scenario +result\n/);
  }, 120_000);
});
