/**
 * TLS for `wss://` endpoints: Typha's client set (CA, client key pair, server name, expected CN or
 * URI SAN). The files are read on every connection attempt, so rotated certificates take effect
 * at the next reconnect without restarting the host (Typha reloads its key pair on every connect
 * too). Reading is async: an agent must not block its event loop on a slow volume mount.
 *
 * The chain is always verified against the CA (Node's `rejectUnauthorized`). When an expected CN
 * or URI SAN is configured it replaces the host name check, as in Typha, because in-cluster
 * servers are reached by pod IP and their certificates name a service identity, not an address.
 */
import { readFile } from 'node:fs/promises';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { CattailError } from '../errors.js';
import type { TlsOptions } from './connect-options.js';
import { uriSansOf } from '../x509-san.js';

/** The subset of `ws` / `tls.connect` options this module produces. */
export interface WsTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  servername?: string;
  rejectUnauthorized: true;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

async function load(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new CattailError('CATTAIL_CLIENT_TLS_FILES', `cannot read the TLS ${what} file ${path}: ${(err as Error).message}`, { cause: err, details: { file: path, what } });
  }
}

/** Reads the files and builds the options for one connection attempt. */
export async function loadTls(tls: TlsOptions): Promise<WsTlsOptions> {
  const out: WsTlsOptions = { rejectUnauthorized: true, checkServerIdentity: identityCheck(tls) };
  if (tls.caFile !== undefined) out.ca = await load(tls.caFile, 'CA');
  if (tls.certFile !== undefined) out.cert = await load(tls.certFile, 'client certificate');
  if (tls.keyFile !== undefined) out.key = await load(tls.keyFile, 'client key');
  if (tls.serverName !== undefined) out.servername = tls.serverName;
  return out;
}

function identityCheck(tls: TlsOptions): (host: string, cert: PeerCertificate) => Error | undefined {
  const { serverCn, serverUriSan, serverName } = tls;
  if (serverCn === undefined && serverUriSan === undefined) {
    return (host, cert) => checkServerIdentity(serverName ?? host, cert);
  }
  return (_host, cert) => {
    const cn = cert.subject?.CN;
    const cns = Array.isArray(cn) ? cn : cn === undefined ? [] : [cn];
    if (serverCn !== undefined && cns.includes(serverCn)) return undefined;
    if (serverUriSan !== undefined && uriSansOf(cert.subjectaltname).includes(serverUriSan)) return undefined;
    return new CattailError(
      'CATTAIL_CLIENT_SERVER_IDENTITY',
      `server certificate (CN ${JSON.stringify(cns.join(','))}, URI SANs ${JSON.stringify(uriSansOf(cert.subjectaltname))}) matches neither the expected CN ${JSON.stringify(serverCn ?? null)} nor URI SAN ${JSON.stringify(serverUriSan ?? null)}`,
      { details: { cn: cns, uriSans: uriSansOf(cert.subjectaltname), expectedCn: serverCn, expectedUriSan: serverUriSan } },
    );
  };
}
