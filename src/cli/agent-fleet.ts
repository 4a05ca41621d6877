/**
 * `cattail agent --agents N [--discard] [--verify K]`: many agents in one process, a load
 * generator for benchmarks. N − K discard-mode agents (headers only, src/client/fleet) and K full
 * library agents whose state is checked against the server's digest (the library verifies it at
 * every in-sync). One aggregate status line: connected, in sync, frames/s, bytes/s, reconnects,
 * mode counts. Bounded by --duration-ms; exits non-zero when an agent saw a protocol violation or
 * a verifying agent's digest did not match.
 */
import type { Clock, Timer } from '../clock.js';
import { realClock } from '../clock.js';
import { connect, type Client } from '../client/index.js';
import { Fleet, type FleetSnapshot } from '../client/fleet/fleet.js';
import type { agentOptions } from '../client/options.js';
import type { ConfigOf } from '../config/options.js';
import { seededRandom } from '../random.js';
import type { CommandContext } from './commands.js';

type AgentConfig = ConfigOf<typeof agentOptions>;

export interface FleetSummary {
  readonly minTrackedRv?: number;
  /** With slow or stalled agents: the figures per group (normal, slow, stalled). */
  readonly groups?: FleetSnapshot['groups'];
  readonly agents: number;
  readonly inSync: number;
  readonly verified: number;
  readonly frames: number;
  readonly bytes: number;
  readonly reconnects: number;
  readonly snapshots: number;
  readonly resumes: number;
  readonly violations: number;
  readonly digestMismatches: number;
}

export async function runFleet(config: AgentConfig, ctx: CommandContext, clock: Clock = realClock): Promise<number> {
  const verify = Math.min(config.verify, config.agents);
  const discardCount = config.agents - verify;
  const random = seededRandom(Number.parseInt(config.nodePrefix.replace(/\D/g, '').slice(-6) || '1', 10) ^ config.agents);
  const fleet = new Fleet({
    agents: discardCount, nodePrefix: config.nodePrefix, feeds: config.feed, endpoints: config.server,
    caps: ['compress.deflate', 'compress.brotli', 'resume.watermarks'], clock, random, connectRatePerSec: config.connectRatePerSec,
    ...(config.trackResource !== undefined ? { trackResource: config.trackResource } : {}),
    ...(config.slowAgentsPercent > 0 || config.stalledAgentsPercent > 0
      ? { impairments: { slowAgentsPercent: config.slowAgentsPercent, slowReadBytesPerSec: config.slowReadBytesPerSec, stalledAgentsPercent: config.stalledAgentsPercent, stallMs: config.stallMs } }
      : {}),
  });
  // SIGUSR1: every discard agent drops its connection at once (the benchmark's blip scenario).
  const onBlip = (): void => fleet.blip();
  process.on('SIGUSR1', onBlip);
  const full: Client[] = [];
  let digestMismatches = 0;
  for (let i = 0; i < verify; i++) {
    const c = connect({ endpoints: config.server, feeds: config.feed, node: `${config.nodePrefix}${discardCount + i}`, clock, random });
    c.on('status', (e) => {
      if (e.reason?.code === 'CATTAIL_CLIENT_DIGEST_MISMATCH') digestMismatches++;
    });
    full.push(c);
  }
  fleet.start();
  const summary = (): FleetSummary => {
    const s = fleet.snapshot();
    const verified = full.filter((c) => c.inSync).length;
    return {
      ...(s.minTrackedRv !== undefined ? { minTrackedRv: s.minTrackedRv } : {}),
      ...(s.groups !== undefined ? { groups: s.groups } : {}),
      agents: config.agents, inSync: s.inSync + verified, verified, frames: s.frames, bytes: s.bytes, reconnects: s.reconnects,
      // A mismatch the server repaired in place (PROTOCOL.md §7.2) is still a mismatch: the fleet
      // exists to catch server bugs, which a repair would otherwise hide.
      snapshots: s.snapshots, resumes: s.resumes, violations: s.violations,
      digestMismatches: digestMismatches + full.reduce((n, c) => n + c.stats.repairsRequested, 0),
    };
  };
  let last = { frames: 0, bytes: 0, atMs: clock.monotonic() };
  const print = (final: boolean): void => {
    const s = summary();
    const now = clock.monotonic();
    const secs = Math.max(0.001, (now - last.atMs) / 1000);
    const modes = fleet.snapshot().modes;
    if (config.json) {
      const arrivals = final && config.trackResource !== undefined ? { arrivals: Object.fromEntries([...fleet.arrivals].map(([rv, a]) => [rv, [a.count, a.firstUs, a.lastUs]])) } : {};
      ctx.stdout.write(`${JSON.stringify({ final, ...s, modes, framesPerSec: Math.round((s.frames - last.frames) / secs), bytesPerSec: Math.round((s.bytes - last.bytes) / secs), ...arrivals })}\n`);
    } else {
      ctx.stdout.write(`agents ${s.agents}: in sync ${s.inSync} (verified ${s.verified}/${verify}), streaming ${modes.streaming}, snapshot ${modes.snapshot}, connecting ${modes.connecting + modes.waiting}; ${Math.round((s.frames - last.frames) / secs)} frames/s, ${Math.round((s.bytes - last.bytes) / secs / 1024)} KiB/s; reconnects ${s.reconnects}, violations ${s.violations}${final ? ' (final)' : ''}\n`);
    }
    last = { frames: s.frames, bytes: s.bytes, atMs: now };
  };
  const ticker: Timer = clock.setInterval(() => print(false), config.statusIntervalMs);
  try {
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      if (config.durationMs > 0) clock.setTimeout(resolve, config.durationMs);
    });
    // The totals describe the fleet as it ran, so they are taken before it is stopped.
    print(true);
    const s = summary();
    return s.violations > 0 || s.digestMismatches > 0 ? 1 : 0;
  } finally {
    process.off('SIGUSR1', onBlip);
    ticker.cancel();
    fleet.stop();
    for (const c of full) c.destroy();
  }
}
