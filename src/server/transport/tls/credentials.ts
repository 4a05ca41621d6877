/**
 * The agent port's TLS credentials: server certificate, key and client CA, read from files and
 * re-read when they change, without dropping existing connections.
 *
 * Kubernetes updates a mounted Secret by swapping a `..data` symlink in the volume directory, so
 * the directory of each file is watched (a watch on the file itself follows the old inode and
 * misses the swap), and a periodic check on the injected clock catches what a watch misses
 * (network filesystems, editors that write in place, inotify limits). A change is applied only
 * when the new set is whole and consistent — every PEM parses, the key matches the certificate —
 * so a half-written rotation keeps the old credentials, says so in the log and counts a failure.
 * New connections use the new context (tls.Server#setSecureContext); established ones keep theirs.
 *
 * Typha loads its key pair once at start-up; rotating it means restarting every replica and
 * reconnecting every agent. Here a rotation costs nothing.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Clock, Timer } from '../../../clock.js';
import { CattailError } from '../../../errors.js';
import type { Logger } from '../../../log.js';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /**
   * Client CA bundle: agents must present a certificate it signed. Unset: TLS without client
   * certificates (the agent checks the server; the server takes any agent).
   */
  readonly caFile?: string | undefined;
}

/** One consistent set of credentials. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** The server certificate's notAfter, ms since the epoch. */
  readonly notAfterMs: number;
  /** sha256 of the three files' bytes: equal fingerprints mean nothing to reload. */
  readonly fingerprint: string;
}

export interface TlsReloadEvents {
  /** A new set was loaded (not called for the initial load). */
  onReloaded?(material: TlsMaterial): void;
  /** A changed set was refused; the previous one stays in use. */
  onReloadFailed?(err: CattailError): void;
}

/** TLS 1.2 is the floor (Typha's default too); 1.3 is negotiated whenever the agent offers it. */
export const TLS_MIN_VERSION = 'TLSv1.2';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function fail(message: string, cause?: unknown, details?: Record<string, unknown>): CattailError {
  return new CattailError('CATTAIL_SERVER_TLS_FILES', message, { ...(cause !== undefined ? { cause } : {}), ...(details ? { details } : {}) });
}

async function read(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw fail(`cannot read the TLS ${what} file ${path}: ${(err as Error).message}`, err, { file: path, what });
  }
}

function certificates(pem: Buffer, path: string, what: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw fail(`the TLS ${what} file ${path} holds no PEM certificate`, undefined, { file: path, what });
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw fail(`the TLS ${what} file ${path} holds a certificate that does not parse: ${(err as Error).message}`, err, { file: path, what });
    }
  });
}

interface RawFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  readonly fingerprint: string;
}

async function readFiles(files: TlsFiles): Promise<RawFiles> {
  const caFile = files.caFile;
  const [cert, key, ca] = await Promise.all([
    read(files.certFile, 'certificate'), read(files.keyFile, 'key'), caFile === undefined ? undefined : read(caFile, 'client CA'),
  ]);
  const fingerprint = createHash('sha256').update(cert).update('\0').update(key).update('\0').update(ca ?? '').digest('hex');
  return { cert, key, ca, fingerprint };
}

function checkFiles(files: TlsFiles, raw: RawFiles): TlsMaterial {
  const { cert, key, ca, fingerprint } = raw;
  const leaf = certificates(cert, files.certFile, 'certificate')[0] as X509Certificate;
  if (ca !== undefined) certificates(ca, files.caFile as string, 'client CA');
  try {
    // Checks that the key parses and matches the certificate (OpenSSL's X509_check_private_key).
    createSecureContext({ cert, key, ...(ca !== undefined ? { ca } : {}) });
  } catch (err) {
    throw fail(`the TLS certificate ${files.certFile} and key ${files.keyFile} are not a usable pair: ${(err as Error).message}`, err, { certFile: files.certFile, keyFile: files.keyFile });
  }
  return { cert, key, ca, notAfterMs: Date.parse(leaf.validTo), fingerprint };
}

/**
 * Reads and checks one set of files.
 * @throws CattailError CATTAIL_SERVER_TLS_FILES when a file is missing, does not parse, or the key
 *   does not match the certificate
 */
export async function loadTlsMaterial(files: TlsFiles): Promise<TlsMaterial> {
  return checkFiles(files, await readFiles(files));
}

/**
 * The secure-context options for a set: with a client CA, client certificates are requested and
 * verified by us (identity.ts); without one, none is asked for.
 */
export function secureContextOptions(m: TlsMaterial): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: false; minVersion: 'TLSv1.2' } {
  // rejectUnauthorized false: the handshake completes for an unknown or expired client certificate
  // so that the refusal can be specific (reason counted, ERROR + close 4011 after the upgrade)
  // instead of an anonymous handshake failure the agent cannot tell from a network fault.
  return { cert: m.cert, key: m.key, ...(m.ca !== undefined ? { ca: m.ca } : {}), requestCert: m.ca !== undefined, rejectUnauthorized: false, minVersion: TLS_MIN_VERSION };
}

export interface TlsCredentialsOptions {
  readonly files: TlsFiles;
  readonly clock: Clock;
  readonly log: Logger | undefined;
  /** How often the files are re-checked besides the directory watch. */
  readonly checkIntervalMs: number;
  /** Applies a new set to the listening server(s). */
  readonly apply: (m: TlsMaterial) => void;
  readonly events?: TlsReloadEvents;
}

export class TlsCredentials {
  private timer: Timer | undefined;
  private watchers: FSWatcher[] = [];
  private checking: Promise<void> | undefined;
  private again = false;
  /** Fingerprint of the last set refused, so one broken rotation is reported once. */
  private refused: string | undefined;

  private constructor(
    private readonly o: TlsCredentialsOptions,
    private current: TlsMaterial,
  ) {}

  /** Loads the initial set (a failure here is fatal to start-up: there is nothing to keep). */
  static async open(o: TlsCredentialsOptions): Promise<TlsCredentials> {
    return new TlsCredentials(o, await loadTlsMaterial(o.files));
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /** Starts watching the files' directories and the periodic check. */
  start(): void {
    const { certFile, keyFile, caFile } = this.o.files;
    const dirs = new Set([certFile, keyFile, ...(caFile !== undefined ? [caFile] : [])].map((f) => dirname(f)));
    for (const d of dirs) {
      try {
        const w = watch(d, { persistent: false }, () => void this.check());
        w.on('error', (err) => this.o.log?.warn({ err, dir: d }, 'TLS file watch failed; the periodic check continues'));
        this.watchers.push(w);
      } catch (err) {
        this.o.log?.warn({ err, dir: d }, 'cannot watch the TLS files; relying on the periodic check');
      }
    }
    this.timer = this.o.clock.setInterval(() => void this.check(), this.o.checkIntervalMs).unref();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  /**
   * Re-reads the files and applies them if they changed and are consistent. Checks never overlap:
   * a burst of watch events during a rotation becomes at most one more check after the running one.
   */
  check(): Promise<void> {
    if (this.checking !== undefined) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.again = false;
        await this.checkOnce();
      } while (this.again);
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<void> {
    let next: TlsMaterial;
    try {
      const raw = await readFiles(this.o.files);
      // Unchanged bytes: nothing to do; bytes already refused: refused again, silently (the
      // periodic check must not log the same broken rotation every interval).
      if (raw.fingerprint === this.current.fingerprint || raw.fingerprint === this.refused) return;
      try {
        next = checkFiles(this.o.files, raw);
      } catch (err) {
        this.refused = raw.fingerprint;
        throw err;
      }
    } catch (err) {
      const e = err instanceof CattailError ? err : fail((err as Error).message, err);
      // A rotation may be caught half-written; the next event or check retries. Keep serving with
      // the previous set: existing agents and new ones alike.
      this.o.log?.error({ err: e }, 'TLS files changed but cannot be used; keeping the previous certificate');
      this.o.events?.onReloadFailed?.(e);
      return;
    }
    this.o.apply(next);
    this.current = next;
    this.refused = undefined;
    this.o.log?.info({ certFile: this.o.files.certFile, notAfter: new Date(next.notAfterMs).toISOString() }, 'TLS certificate reloaded');
    this.o.events?.onReloaded?.(next);
  }
}
