/**
 * Per-node scoping (#20) under mutual TLS: the node is the one the certificate proves (its CN, or
 * the URI SAN after scopeNodeUriSanPrefix); a HELLO naming another node is refused with ERROR
 * CATTAIL_SERVER_NODE_MISMATCH and close 4011 before any WELCOME, so nothing of the feed leaks.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ca, type Issued, createCa, issue, pemDir } from '../../support/pki.js';
import { type Harness, harness } from '../helpers/harness.js';
import { workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';

const PREFIX = 'spiffe://cluster.local/node/';
let ca: Ca;
let dir: ReturnType<typeof pemDir>;
let files: { serverCertFile: string; serverKeyFile: string; clientCaFile: string };
let n1: Issued;
let n2ByUri: Issued;
let noUri: Issued;

beforeAll(async () => {
  ca = await createCa('scoping-ca');
  dir = pemDir('cattail-scoping-');
  const server = await issue(ca, { cn: 'cattail-server', usage: 'server', ipSans: ['127.0.0.1'] });
  files = { serverCertFile: dir.write('tls.crt', server.certPem), serverKeyFile: dir.write('tls.key', server.keyPem), clientCaFile: dir.write('ca.crt', ca.pem) };
  n1 = await issue(ca, { cn: 'n1', usage: 'client' });
  n2ByUri = await issue(ca, { cn: 'calico-node', usage: 'client', uriSans: [`${PREFIX}n2`] });
  noUri = await issue(ca, { cn: 'n3', usage: 'client' });
});

afterAll(() => rmSync(dir.dir, { recursive: true, force: true }));

const tlsOf = (c: Issued): { ca: string; cert: string; key: string } => ({ ca: ca.pem, cert: c.certPem, key: c.keyPem });
const CAPS = ['scope.node'];

async function server(extra: Parameters<typeof harness>[0] = {}): Promise<Harness> {
  const h = await harness({ transport: 'ws', ...files, feeds: ['felix', 'bgp'], scopedFeeds: ['felix'], ...extra });
  h.upstream.apply('felix', {
    [workloadEndpointKey('n1', 'demo', 'a')]: { labels: { a: '1' }, annotations: { secret: 'n1' } },
    [workloadEndpointKey('n2', 'demo', 'b')]: { labels: { b: '1' }, annotations: { secret: 'n2' } },
  }, { status: 'in-sync' });
  h.upstream.apply('bgp', { '/x': { y: 1 } }, { status: 'in-sync' });
  return h;
}

describe('per-node scoping - the node is the certificate\'s', () => {
  it('streams to an agent whose HELLO names its certificate\'s CN, and refuses one naming another node (4011, no WELCOME)', async () => {
    const h = await server();
    const good = h.agent({ feeds: [{ name: 'felix' }], node: 'n1', caps: CAPS, tls: tlsOf(n1) });
    await good.untilRevision('felix', h.storeRevision('felix'));
    expect([...good.feed('felix').entries.keys()]).toHaveLength(2);
    expect(good.violations).toEqual([]);
    const liar = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS, tls: tlsOf(n1) });
    expect(await liar.closed).toBe(4011);
    expect(liar.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_NODE_MISMATCH']);
    expect(liar.welcome).toBeUndefined();
    expect(liar.received).not.toContain('snapshotChunk');
    // The same certificate on unscoped feeds only: the node is not checked (shared-CN deployments keep working).
    const plain = h.agent({ feeds: [{ name: 'bgp' }], node: 'anything', tls: tlsOf(n1) });
    await plain.untilRevision('bgp', h.storeRevision('bgp'));
    expect(plain.violations).toEqual([]);
  });

  it('refuses to start with scopeNodeUriSanPrefix but no client CA (nothing would be proven)', async () => {
    const { clientCaFile: _ca, ...serverOnly } = files;
    await expect(harness({ transport: 'ws', ...serverOnly, feeds: ['felix'], scopedFeeds: ['felix'], scopeNodeUriSanPrefix: PREFIX })).rejects.toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', message: expect.stringContaining('needs clientCaFile') });
    await expect(harness({ feeds: ['felix'], scopedFeeds: ['felix'], scopeNodeUriSanPrefix: PREFIX })).rejects.toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT' });
  });

  it('refuses to start with scoped feeds and clientCn alone (one CN for every agent: each of another node would be refused); a URI SAN prefix or clientUriSan lets it start', async () => {
    // The shipped mTLS overlay's allow list (--client-cn=typha-client) with --scoped-feeds.
    await expect(server({ clientCn: 'typha-client' })).rejects.toMatchObject({ code: 'CATTAIL_INVALID_ARGUMENT', details: { option: 'scopedFeeds' }, message: expect.stringContaining('scopeNodeUriSanPrefix') });
    // The node in a URI SAN (certificates CN=typha-client, URI SAN <prefix><node>): it starts.
    await expect(server({ clientCn: 'typha-client', scopeNodeUriSanPrefix: PREFIX })).resolves.toBeDefined();
    await expect(server({ clientCn: 'typha-client', clientUriSan: `${PREFIX}n2` })).resolves.toBeDefined();
    // Unscoped, the same allow list starts as before.
    await expect(harness({ transport: 'ws', ...files, feeds: ['felix'], clientCn: 'typha-client' })).resolves.toBeDefined();
  });

  it('with scopeNodeUriSanPrefix takes the node from the URI SAN; a certificate without one is refused', async () => {
    const h = await server({ scopeNodeUriSanPrefix: PREFIX });
    const good = h.agent({ feeds: [{ name: 'felix' }], node: 'n2', caps: CAPS, tls: tlsOf(n2ByUri) });
    await good.untilRevision('felix', h.storeRevision('felix'));
    expect(good.violations).toEqual([]);
    const byCn = h.agent({ feeds: [{ name: 'felix' }], node: 'calico-node', caps: CAPS, tls: tlsOf(n2ByUri) });
    expect(await byCn.closed).toBe(4011);
    expect(byCn.errors.map((e) => e.code)).toEqual(['CATTAIL_SERVER_NODE_MISMATCH']);
    const none = h.agent({ feeds: [{ name: 'felix' }], node: 'n3', caps: CAPS, tls: tlsOf(noUri) });
    expect(await none.closed).toBe(4011);
    expect(none.errors[0]?.message).toMatch(/no URI SAN/);
  });
});
