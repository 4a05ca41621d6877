/** The bench plots: Vega-Lite specs built from results records, and their headless SVG rendering. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { plotSpecs, renderPlots } from '../../src/bench/plots.js';
import type { BenchReport } from '../../src/bench/run.js';

const report = (agents: number, p50: number): BenchReport => ({
  at: '2026-12-05T12:00:00.000Z', wallS: 60,
  machine: { cpus: 2, cpuModel: 'test', memoryGb: 1, node: 'v20', os: 'linux', pinned: true, loadAverageBefore: [0, 0, 0], loadAverageAfter: [0, 0, 0] },
  parameters: { agents, nodes: 1, podsPerNode: 1, churnPerSec: 20, churnMs: 1_000, burstChanges: 100, agentsPerWorker: 100, transport: 'ws', slowAgentsPercent: 5, slowReadBytesPerSec: 1, stalledAgentsPercent: 1, stallMs: 1, apiLoadAgents: 10, scenarios: [], seed: 1, deadlineMs: 1 },
  processes: { replicaArgs: [], replicas: 1, workers: 1, feeds: ['felix'], pinning: '' },
  errors: [],
  records: [
    { scenario: 'cold-start', summary: '', bytesPerAgent: 50_000 },
    { scenario: 'churn', summary: '', changes: 20, deliveriesPerSec: 20 * agents, bytesPerDelivery: 1_500, lastAgentLatencyMs: { p50, p99: 3 * p50 }, floor: { lastSocketLatencyMs: { p50: 2, p99: 5 } } },
    { scenario: 'burst', summary: '', changesWritten: 100, writtenMs: 1_000, timeToAllAgentsMs: 2_000 },
    { scenario: 'api-load', summary: '', agents: 10, direct: { requests: 240, watchesOpen: 240, bytesSent: 2 ** 20, simCpuS: 1 }, withCattail: { requests: 24, watchesOpen: 24, bytesSent: 2 ** 19, simCpuS: 0.5 } },
  ],
});

describe('bench - plots', () => {
  it('puts every run\'s figures on the four plots: latency against agents, deliveries against rate, bytes, API load', () => {
    const specs = plotSpecs([report(200, 30), report(1_000, 60)], 'bench');
    expect(specs.map((s) => s.file)).toEqual(['bench-latency-vs-agents.svg', 'bench-deliveries-vs-rate.svg', 'bench-bytes-per-agent.svg', 'bench-api-requests.svg']);
    const values = (i: number): Record<string, unknown>[] => (specs[i]!.spec['data'] as { values: Record<string, unknown>[] }).values;
    expect(values(0)).toContainEqual({ agents: 1_000, series: 'Cattail, last agent p50', ms: 60 });
    expect(values(0)).toContainEqual({ agents: 200, series: 'plain-TCP floor, last socket p99', ms: 5 });
    // Steady churn at 20/s, and the burst: 100 changes in 1 s, all at 1,000 agents after 2 s.
    expect(values(1)).toContainEqual(expect.objectContaining({ kind: 'burst', changesPerSec: 100, deliveriesPerSec: 50_000 }));
    expect(values(1)).toContainEqual(expect.objectContaining({ kind: 'steady churn', changesPerSec: 20, deliveriesPerSec: 4_000 }));
    expect(values(2)).toContainEqual(expect.objectContaining({ scenario: 'churn (20 changes)', bytes: 30_000 }));
    expect(values(3)).toContainEqual(expect.objectContaining({ side: 'direct list/watch', metric: 'watches open', value: 240 }));
    expect(values(3)).toContainEqual(expect.objectContaining({ side: 'behind Cattail', metric: 'MiB sent', value: 0.5 }));
  });

  it('renders them to SVG files without a browser', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-plots-'));
    const { plots, note } = await renderPlots([report(200, 30)], dir, 'bench');
    expect(note).toBeUndefined();
    expect(plots).toHaveLength(4);
    const svg = readFileSync(join(dir, 'bench-api-requests.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('direct list/watch');
  }, 30_000);
});
