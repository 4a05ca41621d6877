/**
 * A throwaway CA and a server certificate for 127.0.0.1 / ::1 / localhost, generated at start-up.
 *
 * Node's crypto can make keys but not certificates, so the X.509 structures come from
 * `@peculiar/x509` (which needs the `reflect-metadata` polyfill for its DI container). ECDSA P-256
 * keeps generation to milliseconds. Validity is anchored on the injected clock but backdated a day
 * and ten years long: TLS peers check it against the real time, which a FakeClock does not follow.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { Clock } from '../../clock.js';
import { CattailError } from '../../errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type KeyPair = webcrypto.CryptoKeyPair;

export interface SimTlsMaterial {
  /** PEM of the CA certificate (what clients must trust: kubeconfig CA data, ca.crt). */
  readonly caPem: string;
  /** PEM of the server certificate (SANs: 127.0.0.1, ::1, localhost). */
  readonly certPem: string;
  /** PKCS#8 PEM of the server key. */
  readonly keyPem: string;
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

function serial(): string {
  // Positive 16-byte serial (high bit clear), as RFC 5280 asks.
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] as number) & 0x7f;
  return Buffer.from(b).toString('hex');
}

export async function generateTls(clock: Clock): Promise<SimTlsMaterial> {
  try {
    const notBefore = new Date(clock.now() - DAY_MS);
    const notAfter = new Date(clock.now() + 3650 * DAY_MS);
    const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as KeyPair;
    const ca = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=cattail-sim-ca',
      notBefore,
      notAfter,
      signingAlgorithm: ALG,
      keys: caKeys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as KeyPair;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: 'CN=cattail-sim',
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ALG,
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          { type: 'ip', value: '127.0.0.1' },
          { type: 'ip', value: '::1' },
          { type: 'dns', value: 'localhost' },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(ca),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return { caPem: ca.toString('pem'), certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
  } catch (err) {
    throw new CattailError('CATTAIL_SIM_TLS_FAILED', `cannot generate the simulator's certificates: ${(err as Error).message}`, { cause: err });
  }
}
