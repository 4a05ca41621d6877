/**
 * Who an agent is, from its TLS client certificate, and whether it may connect.
 *
 * Typha's rule: the chain must verify against the client CA, and then the leaf's CN must equal
 * ClientCN or one of its URI SANs must equal ClientURISAN (either match suffices when both are
 * set). With neither set, any certificate from the CA is accepted. Unlike Typha, which refuses
 * during the TLS handshake (the agent sees a bare handshake failure, indistinguishable from a
 * network fault), the handshake is allowed to finish and the refusal is specific: a reason that is
 * counted (`cattail_tls_refusals_total{reason}`), logged with the presented identity, and sent to
 * the agent as an ERROR with close 4011 after the upgrade.
 */
import type { TLSSocket } from 'node:tls';
import type { TlsIdentity as PeerTls } from '../seam.js';
import { uriSansOf } from '../../../x509-san.js';

/** What a verified certificate says about the agent; shown in /debug/clients and logs. */
export interface TlsIdentity {
  readonly cn: string | undefined;
  readonly uriSans: readonly string[];
  /** The leaf's SHA-256 fingerprint (colon-separated hex, as Node reports it). */
  readonly fingerprint256: string;
}

export type TlsRefusalReason = 'no-certificate' | 'unknown-ca' | 'expired' | 'not-yet-valid' | 'identity-not-allowed' | 'invalid-certificate';

/** Every refusal reason, for pre-creating metric series. (`plaintext` never reaches this module.) */
export const TLS_REFUSAL_REASONS: readonly (TlsRefusalReason | 'plaintext' | 'handshake')[] = [
  'plaintext', 'handshake', 'no-certificate', 'unknown-ca', 'expired', 'not-yet-valid', 'identity-not-allowed', 'invalid-certificate',
];

export interface ClientAllowList {
  /** Accept a certificate whose subject CN equals this. */
  readonly cn?: string | undefined;
  /** Accept a certificate with this URI SAN (e.g. a SPIFFE id). */
  readonly uriSan?: string | undefined;
}

export type TlsVerdict =
  | { readonly ok: true; readonly identity: TlsIdentity }
  | { readonly ok: false; readonly reason: TlsRefusalReason; readonly message: string; readonly identity: TlsIdentity | undefined };

/**
 * What the seam carries about a TLS peer (transport/seam.ts), read from its socket after the
 * handshake; undefined when it presented no certificate.
 */
export function peerTlsOf(socket: Pick<TLSSocket, 'authorized' | 'authorizationError' | 'getPeerCertificate'>): PeerTls | undefined {
  const cert = socket.getPeerCertificate();
  // Node returns an empty object when the peer sent no certificate.
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return undefined;
  const cn = cert.subject?.CN;
  return {
    subjectCN: Array.isArray(cn) ? cn[0] : cn,
    uriSANs: uriSansOf(cert.subjectaltname),
    authorized: socket.authorized === true,
    // Typed as Error, but Node sets the OpenSSL verify code string (e.g. 'CERT_HAS_EXPIRED').
    authorizationError: socket.authorized === true ? undefined : String(socket.authorizationError ?? 'UNKNOWN'),
    fingerprint256: cert.fingerprint256,
  };
}

/**
 * URI SANs shown in logs, messages and /debug/clients: a refused client's certificate is
 * self-signed at will and may carry tens of thousands of them, which made one refusal's log line
 * hundreds of KB (and the description kept per connection as large).
 */
const SHOWN_URI_SANS = 8;
const SHOWN_CHARS = 1_024;

function shownUriSans(sans: readonly string[]): string[] {
  const shown = sans.slice(0, SHOWN_URI_SANS);
  return sans.length > shown.length ? [...shown, `… ${sans.length - shown.length} more`] : shown;
}

function capped(text: string): string {
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

/** `CN=calico-node, URI:spiffe://…`: the identity as /debug/clients and logs show it (at most 8 URI SANs, 1 KiB). */
export function describePeerTls(peer: PeerTls | undefined): string | undefined {
  if (peer === undefined) return undefined;
  return capped([...(peer.subjectCN !== undefined ? [`CN=${peer.subjectCN}`] : []), ...shownUriSans(peer.uriSANs).map((u) => (u.startsWith('… ') ? u : `URI:${u}`))].join(', ')) || `SHA256:${peer.fingerprint256}`;
}

/** OpenSSL verification error codes (X509_V_ERR_*) as Node names them, mapped to our reasons. */
function reasonOf(code: string): TlsRefusalReason {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return 'expired';
    case 'CERT_NOT_YET_VALID':
      return 'not-yet-valid';
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return 'unknown-ca';
    default:
      return 'invalid-certificate';
  }
}

/**
 * The verdict on a TLS peer as the seam describes it (`peer` undefined: no certificate). Runs on
 * a port that asks for client certificates only.
 */
export function verifyPeer(peer: PeerTls | undefined, allow: ClientAllowList): TlsVerdict {
  if (peer === undefined) return { ok: false, reason: 'no-certificate', message: 'no TLS client certificate was presented', identity: undefined };
  const identity: TlsIdentity = { cn: peer.subjectCN, uriSans: peer.uriSANs, fingerprint256: peer.fingerprint256 };
  if (!peer.authorized) {
    const code = peer.authorizationError ?? 'UNKNOWN';
    return { ok: false, reason: reasonOf(code), message: `client certificate refused: ${code} (CN ${JSON.stringify(identity.cn ?? null)})`, identity };
  }
  if (allow.cn === undefined && allow.uriSan === undefined) return { ok: true, identity };
  if (allow.cn !== undefined && identity.cn === allow.cn) return { ok: true, identity };
  if (allow.uriSan !== undefined && identity.uriSans.includes(allow.uriSan)) return { ok: true, identity };
  return {
    ok: false,
    reason: 'identity-not-allowed',
    message: `client certificate (CN ${JSON.stringify(identity.cn ?? null)}, URI SANs ${capped(JSON.stringify(shownUriSans(identity.uriSans)))}) matches neither the allowed CN ${JSON.stringify(allow.cn ?? null)} nor URI SAN ${JSON.stringify(allow.uriSan ?? null)}`,
    identity,
  };
}

/** The verdict on an agent's TLS socket after the handshake. */
export function verifyClient(socket: Pick<TLSSocket, 'authorized' | 'authorizationError' | 'getPeerCertificate'>, allow: ClientAllowList): TlsVerdict {
  return verifyPeer(peerTlsOf(socket), allow);
}
