/**
 * Resume tokens (PROTOCOL.md §7): opaque `bin` to clients. Inside, a msgpack array
 * `[version, serverId, epoch, feed, revision, projectionVersion]`.
 *
 * A token is never an error: whatever arrives (garbage, another server's, a restarted store's,
 * one from the future) maps to "snapshot" with a reason. Decoding is defensive because tokens come
 * from the network and may be forged or corrupted.
 */
import { Packr, Unpackr } from 'msgpackr';
import { packDetached } from '../../msgpack-pack.js';
import { MAX_TOKEN_BYTES } from './framing.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
// Copied out (packDetached): a token is cached per feed until its revision moves, and a view
// into msgpackr's shared buffer pinned that buffer, however large a later pack had made it.
const packValue = (v: unknown): Buffer => packDetached(packr, v);
const unpackValue = (b: Buffer): unknown => unpackr.unpack(b);

const TOKEN_VERSION = 1;

export interface TokenFields {
  readonly serverId: string;
  readonly epoch: string;
  readonly feed: string;
  readonly revision: number;
  readonly projectionVersion: number;
}

export function encodeToken(t: TokenFields): Buffer {
  return packValue([TOKEN_VERSION, t.serverId, t.epoch, t.feed, t.revision, t.projectionVersion]);
}

function decodeToken(token: unknown): TokenFields | undefined {
  if (!Buffer.isBuffer(token) && !(token instanceof Uint8Array)) return undefined;
  if (token.length === 0 || token.length > MAX_TOKEN_BYTES) return undefined;
  let v: unknown;
  try {
    v = unpackValue(Buffer.from(token.buffer, token.byteOffset, token.byteLength));
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length !== 6) return undefined;
  const [version, serverId, epoch, feed, revision, projectionVersion] = v as unknown[];
  if (version !== TOKEN_VERSION) return undefined;
  if (typeof serverId !== 'string' || typeof epoch !== 'string' || typeof feed !== 'string') return undefined;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) return undefined;
  if (typeof projectionVersion !== 'number' || !Number.isSafeInteger(projectionVersion)) return undefined;
  return { serverId, epoch, feed, revision, projectionVersion };
}

/** `behind` is never sent in WELCOME: the session refuses such an agent with 4015 (PROTOCOL.md §7.1). */
export type SnapshotReason = 'no-token' | 'bad-token' | 'other-server' | 'other-cluster' | 'epoch-changed' | 'projection-changed' | 'too-old' | 'too-large' | 'behind';

export type ResumeDecision =
  | { readonly mode: 'resume'; readonly revision: number }
  | { readonly mode: 'snapshot'; readonly reason: SnapshotReason };

/**
 * Reasons after which a rebase (PROTOCOL.md §7.1) may still continue the agent: its token is
 * sound and names this feed and projection, but another replica or store instance issued it, so
 * its revision means nothing here while its watermarks still do.
 */
export function isRebaseCandidate(d: ResumeDecision): boolean {
  return d.mode === 'snapshot' && (d.reason === 'other-server' || d.reason === 'epoch-changed');
}

/**
 * Whether a presented token can resume. The caller still checks the delta log (`since`), which
 * may answer too-old; this only checks identity.
 */
export function judgeToken(token: unknown, expect: Omit<TokenFields, 'revision'>, currentRevision: number): ResumeDecision {
  if (token === undefined || token === null) return { mode: 'snapshot', reason: 'no-token' };
  const t = decodeToken(token);
  if (t === undefined || t.feed !== expect.feed) return { mode: 'snapshot', reason: 'bad-token' };
  // Projection first: a foreign token of another projection must not look like a rebase candidate.
  if (t.projectionVersion !== expect.projectionVersion) return { mode: 'snapshot', reason: 'projection-changed' };
  if (t.serverId !== expect.serverId) return { mode: 'snapshot', reason: 'other-server' };
  if (t.epoch !== expect.epoch) return { mode: 'snapshot', reason: 'epoch-changed' };
  // A revision from the future cannot come from this store instance: treat as forged.
  if (t.revision > currentRevision) return { mode: 'snapshot', reason: 'bad-token' };
  return { mode: 'resume', revision: t.revision };
}
