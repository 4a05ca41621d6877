/**
 * Cattail as the fan-out benchmark runs it (bench/fanout.ts, and its idle-memory child
 * bench/idle-child.ts): one felix feed from a scripted upstream, pings and the connection cap out
 * of the way, no default metrics. One definition, so that every measurement runs the same server.
 */
import { startServer, type ServerHandle } from '../src/server/server.js';
import { ScriptedUpstream } from '../test/support/scripted-upstream.js';

export interface CattailTarget {
  readonly server: ServerHandle;
  readonly upstream: ScriptedUpstream;
  readonly port: number;
}

/** Starts the server and pushes `entries` as the feed's first batch (applied on the next turns). */
export async function startCattailTarget(transport: 'ws' | 'uws', flushWindowMs: number, entries: readonly { key: string; value: Buffer }[]): Promise<CattailTarget> {
  const upstream = ScriptedUpstream.withFeeds('felix');
  const server = await startServer({ upstream, transport, serverId: 'bench', defaultMetrics: false, flushWindowMs, pingIntervalMs: 600_000, pongTimeoutMs: 600_000, maxConnections: 20_000 });
  upstream.push('felix', { updates: entries.map((e) => ({ key: e.key, value: e.value })), status: 'in-sync', watermarks: { pods: '1' } });
  return { server, upstream, port: Number(new URL(server.url).port) };
}
