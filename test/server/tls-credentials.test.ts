import { renameSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/clock.js';
import type { CattailError } from '../../src/errors.js';
import { TlsCredentials, loadTlsMaterial, secureContextOptions, type TlsMaterial } from '../../src/server/transport/tls/credentials.js';
import { type TlsVerdict, verifyClient } from '../../src/server/transport/tls/identity.js';
import { type Ca, type Issued, createCa, issue, pemDir } from '../support/pki.js';

const DAY = 86_400_000;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function serverFiles(ca: Ca, cn = 'cattail') {
  const pem = pemDir();
  const s = await issue(ca, { cn, usage: 'server', ipSans: ['127.0.0.1'] });
  return { pem, files: { certFile: pem.write('tls.crt', s.certPem), keyFile: pem.write('tls.key', s.keyPem), caFile: pem.write('ca.crt', ca.pem) } };
}

/** One TLS handshake against a server built from `material`; the server's verdict on the client. */
async function verdictFor(material: TlsMaterial, client: Issued | undefined, serverCa: Ca, allow: { cn?: string; uriSan?: string } = {}): Promise<TlsVerdict> {
  const server = createServer(secureContextOptions(material));
  const verdict = new Promise<TlsVerdict>((resolve) => server.on('secureConnection', (s: TLSSocket) => {
    resolve(verifyClient(s, allow));
    s.end();
  }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  const port = (server.address() as { port: number }).port;
  const sock = connect({ host: '127.0.0.1', port, ca: serverCa.pem, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) });
  sock.on('error', () => undefined);
  cleanups.push(() => sock.destroy());
  return verdict;
}

describe('server TLS - client identity (Typha rule: CA, then CN or URI SAN)', () => {
  it('accepts a certificate from the CA, and classifies each refusal', async () => {
    const ca = await createCa('agents-ca');
    const other = await createCa('other-ca');
    const { files } = await serverFiles(ca);
    const m = await loadTlsMaterial(files);
    const good = await issue(ca, { cn: 'calico-node', usage: 'client', uriSans: ['spiffe://cluster/ns/calico-system/sa/calico-node'] });
    const ok = await verdictFor(m, good, ca);
    expect(ok).toMatchObject({ ok: true, identity: { cn: 'calico-node', uriSans: ['spiffe://cluster/ns/calico-system/sa/calico-node'] } });

    expect(await verdictFor(m, good, ca, { cn: 'calico-node' })).toMatchObject({ ok: true });
    expect(await verdictFor(m, good, ca, { uriSan: 'spiffe://cluster/ns/calico-system/sa/calico-node' })).toMatchObject({ ok: true });
    // Either match suffices when both are set.
    expect(await verdictFor(m, good, ca, { cn: 'someone-else', uriSan: 'spiffe://cluster/ns/calico-system/sa/calico-node' })).toMatchObject({ ok: true });
    expect(await verdictFor(m, good, ca, { cn: 'typha-client', uriSan: 'spiffe://x' })).toMatchObject({ ok: false, reason: 'identity-not-allowed', identity: { cn: 'calico-node' } });

    expect(await verdictFor(m, undefined, ca)).toMatchObject({ ok: false, reason: 'no-certificate' });
    expect(await verdictFor(m, await issue(other, { cn: 'calico-node', usage: 'client' }), ca)).toMatchObject({ ok: false, reason: 'unknown-ca' });
    const expired = await issue(ca, { cn: 'calico-node', usage: 'client', notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) });
    expect(await verdictFor(m, expired, ca)).toMatchObject({ ok: false, reason: 'expired' });
    const future = await issue(ca, { cn: 'calico-node', usage: 'client', notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) });
    expect(await verdictFor(m, future, ca)).toMatchObject({ ok: false, reason: 'not-yet-valid' });
  });
});

describe('server TLS - credentials and reload', () => {
  it('refuses a key that does not match the certificate, a missing file and a CA that is not PEM, with a coded error', async () => {
    const ca = await createCa('ca');
    const { pem, files } = await serverFiles(ca);
    const stranger = await issue(ca, { cn: 'x', usage: 'server' });
    await expect(loadTlsMaterial({ ...files, keyFile: pem.write('wrong.key', stranger.keyPem) })).rejects.toMatchObject({ code: 'CATTAIL_SERVER_TLS_FILES', message: /not a usable pair/ });
    await expect(loadTlsMaterial({ ...files, certFile: join(pem.dir, 'missing.crt') })).rejects.toMatchObject({ code: 'CATTAIL_SERVER_TLS_FILES', message: /cannot read/ });
    await expect(loadTlsMaterial({ ...files, caFile: pem.write('bad-ca.crt', 'not a certificate') })).rejects.toMatchObject({ code: 'CATTAIL_SERVER_TLS_FILES', message: /no PEM certificate/ });
  });

  it('applies a rotated set, keeps the old one when the new one is broken (reported once), and recovers', async () => {
    const ca = await createCa('ca');
    const { pem, files } = await serverFiles(ca);
    const clock = new FakeClock();
    const applied: TlsMaterial[] = [];
    const failures: CattailError[] = [];
    const creds = await TlsCredentials.open({ files, clock, log: undefined, checkIntervalMs: 60_000, apply: (m) => applied.push(m), events: { onReloadFailed: (e) => failures.push(e) } });
    const first = creds.material;

    await creds.check();
    expect(applied).toEqual([]); // unchanged bytes: nothing to do

    const next = await issue(ca, { cn: 'cattail-2', usage: 'server' });
    pem.write('tls.crt', next.certPem); // half a rotation: certificate written, key not yet
    await creds.check();
    await creds.check();
    expect(applied).toEqual([]);
    expect(creds.material).toBe(first);
    expect(failures).toHaveLength(1);
    expect(failures[0]?.code).toBe('CATTAIL_SERVER_TLS_FILES');

    pem.write('tls.key', next.keyPem);
    await creds.check();
    expect(applied).toHaveLength(1);
    expect(creds.material.fingerprint).not.toBe(first.fingerprint);
    expect(creds.material.cert.toString()).toBe(next.certPem);
  });

  it('notices a Kubernetes-style Secret update (..data symlink swap) by watching the directory, and by the periodic check', async () => {
    const ca = await createCa('ca');
    const pem = pemDir();
    // The kubelet's layout: files are symlinks into ..data, itself a symlink to a timestamped dir.
    const version = async (name: string, cn: string): Promise<string> => {
      const s = await issue(ca, { cn, usage: 'server' });
      const d = join(pem.dir, name);
      mkdirSync(d);
      writeFileSync(join(d, 'tls.crt'), s.certPem);
      writeFileSync(join(d, 'tls.key'), s.keyPem);
      writeFileSync(join(d, 'ca.crt'), ca.pem);
      return s.certPem;
    };
    await version('..v1', 'one');
    symlinkSync('..v1', join(pem.dir, '..data'));
    for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(join('..data', f), join(pem.dir, f));
    const files = { certFile: join(pem.dir, 'tls.crt'), keyFile: join(pem.dir, 'tls.key'), caFile: join(pem.dir, 'ca.crt') };
    const clock = new FakeClock();
    const applied: TlsMaterial[] = [];
    let notify: () => void = () => undefined;
    const creds = await TlsCredentials.open({ files, clock, log: undefined, checkIntervalMs: 60_000, apply: (m) => { applied.push(m); notify(); } });
    creds.start();
    cleanups.push(() => creds.stop());

    const v2 = await version('..v2', 'two');
    const seen = new Promise<void>((r) => (notify = r));
    symlinkSync('..v2', join(pem.dir, '..data_tmp'));
    renameSync(join(pem.dir, '..data_tmp'), join(pem.dir, '..data'));
    await seen; // the directory watch fired and the new set was applied
    expect(applied.at(-1)?.cert.toString()).toBe(v2);

    // Without relying on the watch: the periodic check on the injected clock finds the next swap.
    creds.stop();
    const v3 = await version('..v3', 'three');
    symlinkSync('..v3', join(pem.dir, '..data_tmp'));
    renameSync(join(pem.dir, '..data_tmp'), join(pem.dir, '..data'));
    creds.start();
    const seen3 = new Promise<void>((r) => (notify = r));
    await clock.advanceAsync(60_000);
    await seen3;
    expect(applied.at(-1)?.cert.toString()).toBe(v3);
  });
});
