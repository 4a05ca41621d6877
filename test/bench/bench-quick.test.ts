/**
 * `cattail bench --quick` as CI's smoke test: every scenario runs end to end against real
 * processes and writes its records, plots and Markdown. No speed is asserted (benchmarks are
 * figures, not tests); what is asserted is that each scenario measured what it says it measures.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/run.js';
import { TEST_TRANSPORT } from '../support/transport.js';

const BIN = join(import.meta.dirname, '..', '..', 'bin', 'cattail.js');

describe('cattail bench --quick', () => {
  it('runs every scenario against real processes and writes JSON, Markdown and SVG plots', async () => {
    const out = mkdtempSync(join(tmpdir(), 'cattail-bench-'));
    // Asynchronously: a synchronous child of 90 s blocks this worker's event loop, and vitest's
    // worker RPC then times out ("Timeout calling onTaskUpdate"), failing the whole run.
    const { stdout: log } = await promisify(execFile)(process.execPath, [BIN, 'bench', '--quick', '--out', out, '--duration-ms', '150000'], { encoding: 'utf8', timeout: 170_000 });
    // Not a terminal: plain progress lines (no cursor control), then the final table.
    expect(log).not.toContain('\x1b[');
    expect(log).toMatch(/phase: churn\n/);
    expect(log).toMatch(/scenario +result\n/);
    const r = JSON.parse(readFileSync(join(out, 'bench-quick.json'), 'utf8')) as BenchReport;
    expect(r.errors).toEqual([]);
    expect(r.records.map((x) => x.scenario)).toEqual(['cold-start', 'churn', 'burst', 'blip', 'replica-loss', 'replica-restart', 'slow-agents', 'api-load']);
    expect(r.machine.node).toBe(process.version);
    // The bench's replicas take CATTAIL_TRANSPORT like any cattail command.
    expect(r.parameters.transport).toBe(TEST_TRANSPORT);
    const rec = (s: string): Record<string, unknown> => r.records.find((x) => x.scenario === s) as unknown as Record<string, unknown>;
    expect(rec('cold-start')['snapshotBuilds']).toBeGreaterThanOrEqual(1);
    expect(rec('cold-start')['snapshotBuilds']).toBeLessThanOrEqual(4); // shared, not one per agent
    const churn = rec('churn');
    expect(churn['changesSeenByAllAgents']).toBe(churn['changes']);
    // Each change is a pod's workload endpoint (~480 B) in a DELTA, not a STATUS alone (124 B):
    // label flips on host-network pods, which give no endpoint, once measured only STATUS frames.
    expect(churn['bytesPerDelivery']).toBeGreaterThan(400);
    // The floor ran in the same run: as many sockets, as many changes, every one delivered.
    const floor = churn['floor'] as Record<string, number>;
    expect(floor['sockets']).toBe(200);
    expect(floor['changes']).toBe(churn['changes']);
    expect(floor['changesSeenByAllSockets']).toBe(churn['changes']);
    expect(floor['frameBytes']).toBeGreaterThanOrEqual(churn['bytesPerDelivery'] as number);
    expect(churn['lastAgentP50VsFloor']).toBeGreaterThan(0);
    expect((rec('blip')['resumes'] as number)).toBeGreaterThan(0);
    expect(rec('blip')['fractionOfSnapshot'] as number).toBeLessThan(1);
    expect(rec('replica-loss')['movedAgents'] as number).toBeGreaterThan(0);
    // replica-restart: the cold restart lists, the warm ones list no objects (one-item revision
    // probes only); the agents rebase each time.
    const [cold, term, kill] = rec('replica-restart')['phases'] as Record<string, number>[];
    expect((cold?.['apiListRequests'] ?? 0) + (cold?.['apiInitialEvents'] ?? 0)).toBeGreaterThan(0);
    for (const warm of [term, kill]) {
      expect(warm?.['apiListRequests']).toBeLessThanOrEqual(32);
      expect(warm?.['apiListItems']).toBeLessThanOrEqual(warm?.['apiListRequests'] ?? 0);
      expect(warm?.['apiInitialEvents']).toBe(0);
      expect(warm?.['snapshots']).toBe(0);
      expect(warm?.['fractionOfSnapshot']).toBeLessThan(0.5);
    }
    // slow-agents: 1 % stalled and 5 % slow of 200, each impaired once; the others measured.
    const slow = rec('slow-agents');
    expect((slow['stalled'] as Record<string, number>)['agents']).toBe(2);
    expect((slow['stalled'] as Record<string, number>)['impaired']).toBe(2);
    expect((slow['slow'] as Record<string, number>)['agents']).toBe(10);
    expect(slow['normalAgents']).toBe(188);
    expect(slow['changesSeenByAllNormalAgents']).toBe(slow['changes']);
    // api-load: measured on both sides; direct agents cost the API server a set of watches each.
    const api = rec('api-load');
    const direct = api['direct'] as Record<string, number>;
    const cattail = api['withCattail'] as Record<string, number>;
    expect(direct['watchesOpen']).toBe(10 * (cattail['watchesOpen'] as number));
    expect(direct['bytesSent']).toBeGreaterThan(cattail['bytesSent'] as number);
    const md = readFileSync(join(out, 'bench-quick.md'), 'utf8');
    expect(md).toContain('| cold-start |');
    for (const p of ['latency-vs-agents', 'deliveries-vs-rate', 'bytes-per-agent', 'api-requests']) {
      expect(md).toContain(`(bench-quick-${p}.svg)`);
      expect(readFileSync(join(out, `bench-quick-${p}.svg`), 'utf8')).toMatch(/^<svg[^>]*>.*<\/svg>$/s);
    }
  }, 180_000);
});
