import { Packr } from 'msgpackr';
import { packDetached } from '../../../msgpack-pack.js';

/**
 * Plain msgpack (no records extension: agents in any language can read it; `undefined` as nil,
 * never msgpackr's extension). One Packr for the process: `pack` returns a view into its reusable
 * slab, so every value is copied out before it is kept — into an unpooled, exact-size allocation:
 * `Buffer.from` would copy into Node's shared 8 KiB pool, and a kept slice pins its whole slab
 * (the same rule as src/snapshot's exactBuffer, so the store keeps our Buffers without copying).
 */
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });

export function encodeValue(value: unknown): Buffer {
  return packDetached(packr, value);
}

/** Builds a plain object with the keys sorted, so equal maps always encode to equal bytes. */
export function sortedRecord(entries: Iterable<[string, string]>): Record<string, string> {
  const list = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Record<string, string> = {};
  for (const [k, v] of list) out[k] = v;
  return out;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function stringRecord(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}
