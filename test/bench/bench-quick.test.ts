/**
 * `cattail bench --quick` as CI's smoke test: every scenario runs end to end against real
 * processes and writes its records. No speed is asserted (benchmarks are figures, not tests);
 * what is asserted is that each scenario measured what it says it measures.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/run.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'cattail.js');

describe('cattail bench --quick', () => {
  it('runs every scenario against real processes and writes JSON and Markdown', () => {
    const out = mkdtempSync(join(tmpdir(), 'cattail-bench-'));
    const log = execFileSync(process.execPath, [BIN, 'bench', '--quick', '--out', out, '--duration-ms', '150000'], { encoding: 'utf8', timeout: 170_000 });
    expect(log).toContain('| scenario | result |');
    const r = JSON.parse(readFileSync(join(out, 'bench-quick.json'), 'utf8')) as BenchReport;
    expect(r.records.map((x) => x.scenario)).toEqual(['cold-start', 'churn', 'burst', 'blip', 'replica-loss', 'api-load']);
    const rec = (s: string): Record<string, unknown> => r.records.find((x) => x.scenario === s) as unknown as Record<string, unknown>;
    expect(rec('cold-start')['snapshotBuilds']).toBeGreaterThanOrEqual(1);
    expect(rec('cold-start')['snapshotBuilds']).toBeLessThanOrEqual(4); // shared, not one per agent
    expect(rec('churn')['changesSeenByAllAgents']).toBe(rec('churn')['changes']);
    expect((rec('blip')['resumes'] as number)).toBeGreaterThan(0);
    expect(rec('blip')['fractionOfSnapshot'] as number).toBeLessThan(1);
    expect(rec('replica-loss')['movedAgents'] as number).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'bench-quick.md'), 'utf8')).toContain('| cold-start |');
  }, 180_000);
});
