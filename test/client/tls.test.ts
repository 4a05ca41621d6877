import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '../../src/client/index.js';
import { hasOpenssl, makePki, type Pki } from './helpers/certs.js';
import { FakeServer } from './helpers/fake-server.js';
import { on, skipWait, start, type Setup } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';

const clients: Client[] = [];
let pki: Pki;
let srv: FakeServer;

function setup(opts: Parameters<typeof start>[0]): Setup {
  const s = start(opts);
  clients.push(s.client);
  return s;
}

// openssl is on every CI image we use; without it the PKI cannot be made, and that is a failure
// to report, not a reason to skip silently.
describe('client - mTLS', () => {
  beforeAll(async () => {
    expect(hasOpenssl(), 'openssl is needed to generate the test PKI').toBe(true);
    pki = makePki();
    srv = await FakeServer.start({ serverId: 'tls', tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca } });
    srv.load('felix', [['/pods/demo/a', { ip: '10.0.0.1' }]]);
  });

  afterEach(() => {
    for (const c of clients.splice(0)) c.destroy();
  });

  afterAll(async () => {
    await srv?.stop();
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('connects with a CA and a client certificate; the server sees the client identity', async () => {
    const { client, guard } = setup({ endpoints: [srv.url], tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } });
    await client.whenInSync();
    expect(client.feed('felix').get('/pods/demo/a')).toEqual({ ip: '10.0.0.1' });
    expect(srv.rec.peerCns.at(-1)).toBe('node-1');
    expect(guard.problems()).toEqual([]);
  });

  it('checks the server CN or URI SAN instead of the host name when asked', async () => {
    for (const tls of [{ serverCn: 'cattail-server' }, { serverUriSan: 'spiffe://test/cattail' }, { serverCn: 'nope', serverUriSan: 'spiffe://test/cattail' }]) {
      const { client } = setup({ endpoints: [srv.url], tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, ...tls } });
      await client.whenInSync();
      client.destroy();
    }
    const { client, rec } = setup({ endpoints: [srv.url], tls: { caFile: pki.caFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile, serverCn: 'someone-else' } });
    await waitUntil(() => client.state === 'reconnecting', 'refused identity', on(client));
    expect(rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_SERVER_IDENTITY', details: { cn: ['cattail-server'], uriSans: ['spiffe://test/cattail'] } });
    expect(client.feed('felix').size).toBe(0);
  });

  it('rejects a server signed by another CA', async () => {
    const { client, rec } = setup({ endpoints: [srv.url], tls: { caFile: pki.otherCaFile, certFile: pki.clientCertFile, keyFile: pki.clientKeyFile } });
    await waitUntil(() => client.state === 'reconnecting', 'refused chain', on(client));
    expect(rec.last('reconnecting')!.reason?.code).toBe('CATTAIL_CLIENT_CONNECT_FAILED');
  });

  it('is refused by the server without a client certificate', async () => {
    const { client, rec } = setup({ endpoints: [srv.url], tls: { caFile: pki.caFile } });
    await waitUntil(() => client.state === 'reconnecting', 'refused by server', on(client));
    expect(rec.last('reconnecting')!.reason?.code).toBe('CATTAIL_CLIENT_CONNECT_FAILED');
  });

  it('re-reads the certificate files on every connection attempt', async () => {
    const certFile = join(pki.dir, 'rotated.crt');
    const keyFile = join(pki.dir, 'rotated.key');
    rmSync(certFile, { force: true });
    copyFileSync(pki.clientKeyFile, keyFile);
    const { client, clock, rec } = setup({ endpoints: [srv.url], tls: { caFile: pki.caFile, certFile, keyFile } });
    await waitUntil(() => client.state === 'reconnecting', 'missing file reported', on(client));
    expect(rec.last('reconnecting')!.reason).toMatchObject({ code: 'CATTAIL_CLIENT_TLS_FILES', details: { file: certFile } });
    copyFileSync(pki.clientCertFile, certFile);
    await skipWait(clock);
    await waitUntil(() => client.inSync, 'in sync once the file exists', on(client));
  });
});
