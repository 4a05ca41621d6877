/**
 * A real server on loopback fed by a ScriptedUpstream (feed `felix`), closed after the test by the
 * file's cleanup list unless the test closed it itself (closing twice is harmless either way).
 */
import { startServer, type ServerHandle, type StartServerOptions } from '../../src/server/server.js';
import { ScriptedUpstream } from './scripted-upstream.js';
import { TEST_TRANSPORT } from './transport.js';

export interface ScriptedReplica {
  server: ServerHandle;
  upstream: ScriptedUpstream;
  port: number;
}

export async function scriptedReplica(serverId: string, cleanups: (() => Promise<void> | void)[], opts: Partial<StartServerOptions> = {}): Promise<ScriptedReplica> {
  const upstream = ScriptedUpstream.withFeeds('felix');
  const server = await startServer({ upstream, defaultMetrics: false, flushWindowMs: 1, serverId, transport: TEST_TRANSPORT, ...opts });
  let closed = false;
  cleanups.push(async () => {
    if (!closed) await server.close();
  });
  const close = server.close.bind(server);
  (server as { close: () => Promise<void> }).close = async () => {
    closed = true;
    await close();
  };
  return { server, upstream, port: Number(new URL(server.url).port) };
}
