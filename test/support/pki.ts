/**
 * Throwaway PKI for TLS tests, made in-process with @peculiar/x509 (ECDSA P-256, milliseconds):
 * CAs, and server or client certificates with any CN, SANs and validity window — expired and
 * not-yet-valid certificates included, which the openssl CLI of our machines cannot backdate.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface Ca {
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
  readonly pem: string;
}

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface LeafOptions {
  readonly cn: string;
  readonly usage: 'server' | 'client';
  readonly uriSans?: readonly string[];
  readonly ipSans?: readonly string[];
  readonly dnsSans?: readonly string[];
  /** @default one day ago */
  readonly notBefore?: Date;
  /** @default ten days from now */
  readonly notAfter?: Date;
}

let serialCounter = 1;
function serial(): string {
  return (serialCounter++).toString(16).padStart(16, '0');
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
}

export async function createCa(name: string): Promise<Ca> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + 30 * DAY_MS),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys, pem: cert.toString('pem') };
}

export async function issue(ca: Ca, o: LeafOptions): Promise<Issued> {
  const keys = await keyPair();
  const sans = [
    ...(o.ipSans ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(o.dnsSans ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(o.uriSans ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.cn}`,
    issuer: ca.cert.subject,
    notBefore: o.notBefore ?? new Date(Date.now() - DAY_MS),
    notAfter: o.notAfter ?? new Date(Date.now() + 10 * DAY_MS),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([o.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyPem(keys) };
}

/** A temp directory to write PEM files into; returns a writer giving each file's path. */
export function pemDir(prefix = 'cattail-pki-'): { dir: string; write(name: string, pem: string): string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    write(name, pem) {
      const p = join(dir, name);
      writeFileSync(p, pem);
      return p;
    },
  };
}
