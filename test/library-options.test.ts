import { describe, expect, it } from 'vitest';
import { agentOptions } from '../src/client/options.js';
import { connect, connectOptions, tlsOptions } from '../src/client/index.js';
import { resolveConfig } from '../src/config/load.js';
import { serveOptions, serverOptions, startServerOptions, upstreamOptions } from '../src/server/options.js';
import { createUpstream } from '../src/server/upstream/upstream.js';
import { startServer } from '../src/server/server.js';
import { startSim } from '../src/sim/index.js';
import { simOptions, startSimOptions } from '../src/sim/options.js';

/** The error a call throws, synchronously or as a rejection. */
async function failure(fn: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error('did not throw');
}

describe('library options come from the command tables', () => {
  it('startServer, startSim and the agent share the commands\' specs', () => {
    for (const [name, spec] of Object.entries(serverOptions)) {
      expect(serveOptions[name as keyof typeof serveOptions], name).toBe(spec);
      if (name !== 'listen' && name !== 'httpListen' && name !== 'healthListen') expect(startServerOptions[name as keyof typeof startServerOptions], name).toBe(spec);
    }
    for (const [name, spec] of Object.entries(upstreamOptions)) expect(serveOptions[name as keyof typeof serveOptions], name).toBe(spec);
    // A library server binds free ports; only the default differs.
    for (const name of ['listen', 'httpListen', 'healthListen'] as const) {
      expect(startServerOptions[name], name).toMatchObject({ default: '127.0.0.1:0', help: serverOptions[name].help, check: serverOptions[name].check });
    }
    expect(startSimOptions.churnPerSec).toBe(simOptions.churn);
    expect(startSimOptions.kubeconfigPath).toBe(simOptions.kubeconfig);
    expect(startSimOptions.nodes).toMatchObject({ default: 0, unit: simOptions.nodes.unit, min: simOptions.nodes.min });
    expect(agentOptions.server).toBe(connectOptions.endpoints);
    expect(agentOptions.reconnectMaxDelayMs).toBe(connectOptions.reconnectMaxDelayMs);
    for (const name of Object.keys(tlsOptions)) expect(agentOptions[name as keyof typeof tlsOptions]).toBe(tlsOptions[name as keyof typeof tlsOptions]);
  });

  it('startServer rejects a bad limit as the command would, before it binds anything', async () => {
    const e = await failure(() => startServer({ upstream: {} as never, pingIntervalMs: 5 }));
    expect(e.code).toBe('CATTAIL_INVALID_ARGUMENT');
    expect(e.message).toBe('option pingIntervalMs (startServer): expected an integer from 10 to 2147483647 (ms), got 5');
    expect(() => resolveConfig(serveOptions, { argv: ['--ping-interval-ms', '5'] })).toThrow('option pingIntervalMs (--ping-interval-ms): expected an integer from 10 to 2147483647 (ms), got "5"');
    expect((await failure(() => startServer({ upstream: {} as never, listen: 'nowhere' }))).message).toContain('option listen (startServer): expected HOST:PORT');
    expect((await failure(() => startServer({ upstream: {} as never, maxInboundBytes: 2 ** 30 }))).message).toContain('expected an integer from 1024 to 1048576 (bytes)');
  });

  it('createUpstream rejects a bad limit as the command would', () => {
    expect(() => createUpstream({ replicaId: 'r', env: {}, listPageSize: 0 })).toThrow('option listPageSize (createUpstream): expected an integer from 1 to 100000 (count), got 0');
    expect(() => createUpstream({ replicaId: 'r', env: {}, feeds: ['felx'] })).toThrow(/option feeds \(createUpstream\): each entry must be one of felix/);
  });

  it('startSim rejects bad options with the shared messages', async () => {
    const e = await failure(() => startSim({ port: 70_000 }));
    expect(e.code).toBe('CATTAIL_INVALID_ARGUMENT');
    expect(e.message).toBe('option port (startSim): expected an integer from 0 to 65535, got 70000');
    expect((await failure(() => startSim({ token: 'a b' }))).message).toContain('option token (startSim): expected a non-empty token without whitespace');
    expect((await failure(() => startSim({ churnPerSec: -1 }))).message).toContain('expected a number of at least 0 (changes per second)');
    expect((await failure(() => startSim({ ha: { lagRvs: -1 } }))).message).toContain('option ha.lagRvs (startSim)');
    expect((await failure(() => startSim({ historyMinCapacity: 10, historyMaxCapacity: 5 }))).message).toContain('option historyMaxCapacity (startSim): expected at least historyMinCapacity (10)');
  });

  it('connect rejects bad options naming unit and range', () => {
    const base = { endpoints: ['ws://x'], feeds: ['felix'] };
    expect(() => connect({ ...base, handshakeTimeoutMs: 0 })).toThrow('option handshakeTimeoutMs (connect()): expected an integer from 1 to 2147483647 (ms), got 0');
    expect(() => connect({ ...base, reconnectJitter: 2 })).toThrow('option reconnectJitter (connect()): expected a number from 0 to 1 (fraction), got 2');
    expect(() => connect({ ...base, tls: { caFile: '' } })).toThrow(/option caFile \(connect\(\) tls\): expected a non-empty string/);
    expect(() => connect({ feeds: ['felix'] } as never)).toThrow(/option endpoints \(connect\(\)\): expected at least one ws:\/\/ or wss:\/\/ URL, or a service to discover them from/);
  });
});
