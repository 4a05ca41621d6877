/**
 * Mutual TLS on the agent port, against a real server on loopback with a throwaway PKI: who gets
 * in, who is refused and how (ERROR + close 4011 after the upgrade, or a counted handshake failure),
 * and certificate rotation under connected agents.
 */
import { rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { CattailError } from '../../src/errors.js';
import { startServer } from '../../src/server/server.js';
import { ScriptedUpstream } from '../support/scripted-upstream.js';
import { type Ca, type Issued, createCa, issue, pemDir } from '../support/pki.js';
import { waitUntil } from '../support/wait.js';
import { type Harness, harness } from './helpers/harness.js';
import { hostileTally } from '../support/reliability-record.js';

const tally = hostileTally('tls', false);
const witnessed = hostileTally('tls', true);

const DAY = 86_400_000;
const ALLOWED_URI = 'spiffe://cluster/ns/calico-system/sa/calico-node';

interface Pki {
  ca: Ca;
  dir: ReturnType<typeof pemDir>;
  files: { serverCertFile: string; serverKeyFile: string; clientCaFile: string };
  good: Issued;
  byUri: Issued;
  stranger: Issued;
  expired: Issued;
  future: Issued;
  intruder: Issued;
}

let pki: Pki;

beforeAll(async () => {
  const ca = await createCa('agents-ca');
  const other = await createCa('other-ca');
  const dir = pemDir('cattail-mtls-');
  const server = await issue(ca, { cn: 'cattail-server', usage: 'server', ipSans: ['127.0.0.1'] });
  const client = (o: Partial<Parameters<typeof issue>[1]> & { cn: string }, from = ca): Promise<Issued> => issue(from, { usage: 'client', ...o });
  pki = {
    ca,
    dir,
    files: { serverCertFile: dir.write('tls.crt', server.certPem), serverKeyFile: dir.write('tls.key', server.keyPem), clientCaFile: dir.write('ca.crt', ca.pem) },
    good: await client({ cn: 'calico-node' }),
    byUri: await client({ cn: 'some-node-name', uriSans: [ALLOWED_URI] }),
    stranger: await client({ cn: 'calico-node' }, other),
    expired: await client({ cn: 'calico-node', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) }),
    future: await client({ cn: 'calico-node', notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) }),
    intruder: await client({ cn: 'intruder' }),
  };
});

afterAll(() => rmSync(pki.dir.dir, { recursive: true, force: true }));

function tlsOf(c: Issued | undefined): { ca: string; cert?: string; key?: string } {
  return c === undefined ? { ca: pki.ca.pem } : { ca: pki.ca.pem, cert: c.certPem, key: c.keyPem };
}

async function mtlsServer(extra: Parameters<typeof harness>[0] = {}): Promise<Harness> {
  const h = await harness({ transport: 'ws', ...pki.files, clientCn: 'calico-node', clientUriSan: ALLOWED_URI, debugEndpoints: true, ...extra });
  h.upstream.apply('felix', { '/pods/a': { ip: '10.0.0.1' } }, { status: 'in-sync', watermarks: { pods: '1' } });
  return h;
}

describe('server mTLS - admission by client certificate', () => {
  it('accepts an allowed agent by CN or by URI SAN; it streams, and /debug/clients shows its identity', async () => {
    const h = await mtlsServer();
    expect(h.server.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+\/$/);
    const byCn = h.agent({ feeds: [{ name: 'felix' }], node: 'node-cn', tls: tlsOf(pki.good) });
    const byUri = h.agent({ feeds: [{ name: 'felix' }], node: 'node-uri', tls: tlsOf(pki.byUri) });
    await byCn.untilRevision('felix', h.storeRevision('felix'));
    await byUri.untilRevision('felix', h.storeRevision('felix'));
    h.upstream.apply('felix', { '/pods/b': { ip: '10.0.0.2' } });
    await byCn.untilRevision('felix', h.storeRevision('felix'));
    expect(byCn.digest('felix')).toEqual(h.storeDigest('felix'));
    expect(byCn.violations).toEqual([]);

    const res = await fetch(`${h.server.httpUrl}/debug/clients`);
    const page = (await res.json()) as { clients: { node: string; tlsIdentity: string | null }[] };
    const ids = Object.fromEntries(page.clients.map((c) => [c.node, c.tlsIdentity]));
    expect(ids).toEqual({ 'node-cn': 'CN=calico-node', 'node-uri': `CN=some-node-name, URI:${ALLOWED_URI}` });
    expect(await h.metric('cattail_tls_refusals_total')).toBe(0);
  });

  it('refuses after the upgrade with ERROR CATTAIL_SERVER_UNAUTHORIZED and close 4011, counting each reason', async () => {
    const h = await mtlsServer();
    const cases: [Issued | undefined, string][] = [
      [undefined, 'no-certificate'],
      [pki.stranger, 'unknown-ca'],
      [pki.expired, 'expired'],
      [pki.future, 'not-yet-valid'],
      [pki.intruder, 'identity-not-allowed'],
    ];
    for (const [cert, reason] of cases) {
      const a = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(cert) });
      expect(await a.closed, reason).toBe(4011);
      expect(a.closeReason).toBe(`unauthorized: ${reason}`);
      expect(a.errors).toEqual([{ code: 'CATTAIL_SERVER_UNAUTHORIZED', message: `TLS client certificate refused: ${reason}` }]);
      // Nothing of the feed reached it: no WELCOME, no snapshot.
      expect(a.welcome).toBeUndefined();
      expect(await h.metric('cattail_tls_refusals_total', { reason })).toBe(1);
      tally.add(`client certificate: ${reason}`, `CATTAIL_SERVER_UNAUTHORIZED, close 4011, counted as ${reason}`);
    }
    expect(await h.metric('cattail_tls_refusals_total')).toBe(cases.length);
    expect(h.server.connectionCount()).toBe(0);
  });

  it('counts plain ws:// to the TLS port as plaintext and a failed handshake as handshake', async () => {
    const h = await mtlsServer();
    const plain = new WebSocket(h.server.url.replace('wss:', 'ws:'), 'cattail.v1');
    const plainError = new Promise<Error>((r) => plain.on('error', r));
    await plainError;
    await waitUntil(async () => (await h.metric('cattail_tls_refusals_total', { reason: 'plaintext' })) === 1, 'plaintext counted');
    tally.add('plaintext to the TLS port', 'socket closed before any HTTP; counted and logged as plaintext');
    // An agent that does not trust the server's CA aborts the handshake itself.
    const other = await createCa('unrelated');
    const distrust = new WebSocket(h.server.url, 'cattail.v1', { ca: other.pem, cert: pki.good.certPem, key: pki.good.keyPem });
    await new Promise<Error>((r) => distrust.on('error', r));
    await waitUntil(async () => (await h.metric('cattail_tls_refusals_total', { reason: 'handshake' })) === 1, 'handshake counted');
    tally.add('agent that distrusts the server CA', 'handshake failed, counted as handshake');
  });

  it('keeps other agents streaming while refused ones come and go', async () => {
    const h = await mtlsServer();
    const good = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(pki.good) });
    await good.untilRevision('felix', h.storeRevision('felix'));
    for (let i = 0; i < 5; i++) {
      const bad = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(i % 2 === 0 ? pki.intruder : pki.stranger) });
      h.upstream.apply('felix', { [`/pods/x${i}`]: { i } });
      expect(await bad.closed).toBe(4011);
      witnessed.add(i % 2 === 0 ? 'client certificate: identity-not-allowed' : 'client certificate: unknown-ca', 'CATTAIL_SERVER_UNAUTHORIZED, close 4011');
    }
    await good.untilRevision('felix', h.storeRevision('felix'));
    expect(good.digest('felix')).toEqual(h.storeDigest('felix'));
    expect(good.closeCode).toBeUndefined();
    expect(good.violations).toEqual([]);
  });

  it('takes any certificate from the client CA when no CN or URI SAN is set', async () => {
    const h = await harness({ transport: 'ws', ...pki.files });
    h.upstream.apply('felix', { '/pods/a': { ip: '10.0.0.1' } }, { status: 'in-sync', watermarks: { pods: '1' } });
    const a = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(pki.intruder) });
    await a.untilRevision('felix', h.storeRevision('felix'));
    const stranger = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(pki.stranger) });
    expect(await stranger.closed).toBe(4011);
  });

  it('negotiates TLS 1.3 when offered, accepts 1.2, and refuses older versions in the handshake', async () => {
    const h = await mtlsServer();
    const u = new URL(h.server.url);
    const handshake = (o: Pick<ConnectionOptions, 'minVersion' | 'maxVersion' | 'ciphers'>): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = tlsConnect({ host: u.hostname, port: Number(u.port), ca: pki.ca.pem, cert: pki.good.certPem, key: pki.good.keyPem, ...o }, () => {
          const protocol = s.getProtocol() ?? '';
          // end(), not destroy(): in TLS 1.3 the client is done before the server has read its
          // Finished, and a reset then would be a (counted) handshake failure on the server.
          s.end(() => resolve(protocol));
        });
        s.on('error', reject);
      });
    expect(await handshake({})).toBe('TLSv1.3');
    expect(await handshake({ maxVersion: 'TLSv1.2' })).toBe('TLSv1.2');
    // Security level 0 lets this client's OpenSSL offer TLS 1.1 at all; the server must refuse it.
    await expect(handshake({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })).rejects.toThrow();
    await waitUntil(async () => (await h.metric('cattail_tls_refusals_total', { reason: 'handshake' })) === 1, 'old version counted');
    tally.add('TLS 1.1 or older', 'handshake refused, counted as handshake');
  });

  it('without a client CA serves TLS to agents that present no certificate', async () => {
    const { serverCertFile, serverKeyFile } = pki.files;
    const h = await harness({ transport: 'ws', serverCertFile, serverKeyFile, debugEndpoints: true });
    h.upstream.apply('felix', { '/pods/a': { ip: '10.0.0.1' } }, { status: 'in-sync', watermarks: { pods: '1' } });
    const a = h.agent({ feeds: [{ name: 'felix' }], tls: tlsOf(undefined) });
    await a.untilRevision('felix', h.storeRevision('felix'));
    const page = (await (await fetch(`${h.server.httpUrl}/debug/clients`)).json()) as { clients: { tlsIdentity: string | null }[] };
    expect(page.clients.map((c) => c.tlsIdentity)).toEqual([null]);
  });

  it('serves the HTTP port over TLS with httpTls', async () => {
    const h = await mtlsServer({ httpTls: true });
    expect(h.server.httpUrl).toMatch(/^https:/);
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(`${h.server.httpUrl}/metrics`, { ca: pki.ca.pem }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toMatch(/cattail_tls_certificate_expiry_timestamp_seconds \d+/);
  });
});

describe('server mTLS - configuration', () => {
  const upstream = (): ScriptedUpstream => ScriptedUpstream.withFeeds('felix');
  const refusal = async (o: Record<string, unknown>): Promise<CattailError> => {
    try {
      const s = await startServer({ upstream: upstream(), defaultMetrics: false, ...o });
      await s.close();
    } catch (err) {
      return err as CattailError;
    }
    throw new Error(`started with ${JSON.stringify(o)}`);
  };

  it('refuses incomplete combinations, naming the option and its flag', async () => {
    const { serverCertFile, serverKeyFile, clientCaFile } = pki.files;
    expect(await refusal({ serverCertFile })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /serverCertFile \(--server-cert-file, startServer\) needs serverKeyFile/ });
    expect(await refusal({ serverKeyFile })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /serverKeyFile .* needs serverCertFile/ });
    expect(await refusal({ clientCaFile })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /clientCaFile .* needs serverCertFile/ });
    expect(await refusal({ serverCertFile, serverKeyFile, clientCn: 'x' })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /clientCn .* needs clientCaFile/ });
    expect(await refusal({ serverCertFile, serverKeyFile, clientUriSan: 'x' })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /clientUriSan .* needs clientCaFile/ });
    expect(await refusal({ httpTls: true })).toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: /httpTls .* needs serverCertFile/ });
  });

  it('refuses TLS with the uws transport, and unreadable files, with coded errors', async () => {
    expect(await refusal({ ...pki.files, transport: 'uws' })).toMatchObject({ code: 'CATTAIL_SERVER_TLS_UNSUPPORTED', message: /--transport ws/ });
    expect(await refusal({ ...pki.files, serverCertFile: `${pki.dir.dir}/missing.crt` })).toMatchObject({ code: 'CATTAIL_SERVER_TLS_FILES', message: /cannot read/ });
  });
});
