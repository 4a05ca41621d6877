/**
 * The agent port's TLS options (Typha's ServerCertFile, ServerKeyFile, CAFile, ClientCN,
 * ClientURISAN), part of the server's option table (options.ts), and the rules between them that a
 * per-option check cannot express: certificate and key together, a client CA only with them, an
 * allow-list only with a client CA (it would allow nobody in particular without one).
 *
 * Kept apart from options.ts so the table stays readable; imports nothing but the table builders
 * (`cattail --help` loads it).
 */
import { type ConfigOf, flagName, opt } from '../../../config/options.js';
import { InvalidArgumentError } from '../../../errors.js';
import type { ClientAllowList } from './identity.js';
import type { TlsFiles } from './credentials.js';

const nonEmpty = (v: string): string | undefined => (v === '' ? 'expected a non-empty string' : undefined);

export const tlsServerOptions = {
  serverCertFile: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'PEM certificate (chain) of the agent port; with serverKeyFile it serves wss:// (TLS 1.2 minimum, 1.3 when the agent offers it). Re-read when it changes (directory watch, and every tlsCheckIntervalMs): new connections get the new certificate, open ones are not touched; a broken new set keeps the old one (cattail_tls_reloads_total{result="failure"}). Typha\'s ServerCertFile.',
  }),
  serverKeyFile: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'PEM private key of serverCertFile (both or neither). Typha\'s ServerKeyFile.',
  }),
  clientCaFile: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'PEM CA bundle for mutual TLS (needs serverCertFile): agents must present a certificate it signed, or they are sent ERROR CATTAIL_SERVER_UNAUTHORIZED and closed with 4011. Unset: agents present no certificate. Typha\'s CAFile.',
  }),
  clientCn: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'Allowed subject CN of agent certificates (needs clientCaFile). Either this or clientUriSan matching suffices; with neither, any certificate from clientCaFile is accepted. Typha\'s ClientCN.',
  }),
  clientUriSan: opt.string({
    default: undefined,
    check: nonEmpty,
    help: 'Allowed URI SAN of agent certificates, e.g. a SPIFFE ID (needs clientCaFile); see clientCn. Typha\'s ClientURISAN.',
  }),
  tlsCheckIntervalMs: opt.int({
    default: 10_000,
    unit: 'ms',
    min: 100,
    help: 'How often the TLS files are re-read besides the directory watch (which misses changes on some volumes).',
  }),
  httpTls: opt.boolean({
    default: false,
    help: 'Serve the HTTP port (metrics, probes, /debug/clients) over TLS with the agent port\'s certificate (needs serverCertFile; no client certificate is asked for, so kubelet probes with scheme HTTPS and Prometheus work).',
  }),
} as const;

/** What the listener needs when TLS is on. */
export interface TlsSettings {
  readonly files: TlsFiles;
  /** Set when a client CA is: agents must present a certificate. */
  readonly allow: ClientAllowList | undefined;
  readonly checkIntervalMs: number;
  readonly httpTls: boolean;
}

function requires(option: string, needs: string, api: string): InvalidArgumentError {
  return new InvalidArgumentError(`option ${option} (--${flagName(option)}, ${api}) needs ${needs}`, { details: { option } });
}

/**
 * The TLS settings of a resolved configuration; undefined when the agent port is plaintext.
 * @throws InvalidArgumentError naming the option when the combination is incomplete
 */
export function tlsSettingsOf(o: ConfigOf<typeof tlsServerOptions>, api: string): TlsSettings | undefined {
  const { serverCertFile: certFile, serverKeyFile: keyFile, clientCaFile: caFile, clientCn: cn, clientUriSan: uriSan } = o;
  if (certFile !== undefined && keyFile === undefined) throw requires('serverCertFile', 'serverKeyFile (--server-key-file) too', api);
  if (keyFile !== undefined && certFile === undefined) throw requires('serverKeyFile', 'serverCertFile (--server-cert-file) too', api);
  if (caFile !== undefined && certFile === undefined) throw requires('clientCaFile', 'serverCertFile and serverKeyFile: client certificates are asked for in a TLS handshake', api);
  if (cn !== undefined && caFile === undefined) throw requires('clientCn', 'clientCaFile (--client-ca-file): without it no client certificate is asked for', api);
  if (uriSan !== undefined && caFile === undefined) throw requires('clientUriSan', 'clientCaFile (--client-ca-file): without it no client certificate is asked for', api);
  if (o.httpTls && certFile === undefined) throw requires('httpTls', 'serverCertFile and serverKeyFile: the HTTP port uses the agent port\'s certificate', api);
  if (certFile === undefined || keyFile === undefined) return undefined;
  return {
    files: { certFile, keyFile, caFile },
    allow: caFile === undefined ? undefined : { cn, uriSan },
    checkIntervalMs: o.tlsCheckIntervalMs,
    httpTls: o.httpTls,
  };
}
