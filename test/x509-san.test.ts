/**
 * URI SANs as Node renders them (src/x509-san.ts): certificates made here, their altname text
 * read back through Node's X509Certificate, so the quoting under test is Node's own.
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { splitAltNames, uriSansOf } from '../src/x509-san.js';
import { describePeerTls } from '../src/server/transport/tls/identity.js';
import { createCa, issue } from './support/pki.js';

const PREFIX = 'spiffe://cluster.local/node/';

async function altNamesOf(uriSans: string[], dnsSans: string[] = []): Promise<string> {
  const ca = await createCa('san-ca');
  const leaf = await issue(ca, { cn: 'x', usage: 'client', uriSans, dnsSans });
  return new X509Certificate(leaf.certPem).subjectAltName ?? '';
}

describe('URI SANs from Node\'s altname text', () => {
  it('reads plain values, and values Node quotes (a comma, a quote) as they are in the certificate', async () => {
    const sans = [`${PREFIX}n1`, `${PREFIX}n2,URI:${PREFIX}victim`, `${PREFIX}"q"`];
    const text = await altNamesOf(sans, ['a.example']);
    // Node quoted the last two (what a split on commas alone read with quotes and escapes).
    expect(text).toContain('URI:"');
    expect(uriSansOf(text)).toEqual(sans);
    // A value smuggling an entry is one value: no SAN equals the victim's.
    expect(uriSansOf(text)).not.toContain(`${PREFIX}victim`);
  });

  it('refuses text that does not parse (an unterminated quote): no SANs, so nothing matches', () => {
    expect(splitAltNames('URI:"spiffe://x')).toBeUndefined();
    expect(uriSansOf('DNS:a, URI:"spiffe://x')).toEqual([]);
    expect(uriSansOf(undefined)).toEqual([]);
    expect(uriSansOf('')).toEqual([]);
    expect(uriSansOf('DNS:a, IP Address:127.0.0.1')).toEqual([]);
  });
});

describe('URI SANs of a certificate with very many entries', () => {
  it('reads tens of thousands of entries, quoted ones among them, in one pass (the text comes from a client not yet authorized)', () => {
    const n = 40_000;
    const text = Array.from({ length: n }, (_, i) => (i % 2 === 0 ? `URI:"spiffe://td/a\\u002cb${i}"` : i === n - 1 ? 'URI:spiffe://td/last' : 'DNS:a')).join(', ');
    const sans = uriSansOf(text);
    expect(sans).toHaveLength(n / 2 + 1);
    expect(sans[0]).toBe('spiffe://td/a,b0');
    expect(sans.at(-1)).toBe('spiffe://td/last');
  });

  it('describes such a peer in logs and /debug/clients with at most 8 URI SANs', () => {
    const uriSANs = Array.from({ length: 10_000 }, (_, i) => `spiffe://td/n${i}`);
    const d = describePeerTls({ subjectCN: 'x', uriSANs, authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT', fingerprint256: 'AA' }) ?? '';
    expect(d.startsWith('CN=x, URI:spiffe://td/n0, ')).toBe(true);
    expect(d).toContain('… 9992 more');
    expect(d.length).toBeLessThanOrEqual(1_025);
  });
});
