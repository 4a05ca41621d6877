import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode as independentDecode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { bodyOf, decodeFrame, encodeFrame, headerFieldsOf, readHeader, TYPE_OF_KIND, type Message } from '../../proto/index.js';
import { messageFromJson, type GoldenFixture } from './golden-json.js';

// Golden frames pin the wire format (Typha's TestDecodeCanned): every later version must still
// decode them, and the encoder must still produce them byte for byte. Never regenerate them to
// make this test pass; a difference here is a protocol change and needs a PROTOCOL.md change.
const dir = join(import.meta.dirname, 'golden');
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .map((file) => {
    const fixture = JSON.parse(readFileSync(join(dir, file), 'utf8')) as GoldenFixture;
    return { file, message: messageFromJson(fixture.message), frame: Buffer.from(fixture.hex, 'hex') };
  });
const limits = { maxBodyBytes: 1_048_576 };

/** Byte strings as hex, undefined keys dropped: a neutral form to compare decoders' output. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(normalize);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, normalize(x)]));
  }
  return v;
}

describe('proto golden frames', () => {
  it('cover every message type', () => {
    const kinds = new Set(fixtures.map((f) => f.message.type));
    expect([...kinds].sort()).toEqual(Object.keys(TYPE_OF_KIND).sort());
  });

  for (const { file, message, frame } of fixtures) {
    describe(file, () => {
      it('encodes to the pinned bytes', () => {
        expect(encodeFrame(message).toString('hex')).toBe(frame.toString('hex'));
      });

      it('decodes the pinned bytes to the message', () => {
        expect(decodeFrame(frame, limits)).toEqual(message);
      });

      it('has a header a router can read alone', () => {
        const { bodyLength, ...fields } = readHeader(frame.subarray(0, 28));
        expect(fields).toEqual(headerFieldsOf(message));
        expect(bodyLength).toBe(frame.length - 28);
      });

      it('has a body that an independent msgpack library reads as the same map', () => {
        const body = independentDecode(frame.subarray(28), { useBigInt64: false });
        expect(normalize(body)).toEqual(normalize(bodyOf(message)));
      });
    });
  }

  it('carries entry values as bin holding their own msgpack bytes (lazily decodable)', () => {
    const withEntries = fixtures.map((f) => f.message).filter((m): m is Extract<Message, { type: 'delta' | 'snapshotChunk' }> => m.type === 'delta' || m.type === 'snapshotChunk');
    expect(withEntries.length).toBeGreaterThan(0);
    for (const m of withEntries) {
      const decoded = decodeFrame(encodeFrame(m), limits) as typeof m;
      const entries = decoded.type === 'delta' ? decoded.upserts : decoded.entries;
      for (const [, value] of entries) {
        const obj = independentDecode(value) as Record<string, unknown>;
        expect(typeof obj).toBe('object');
        expect(typeof obj.name === 'string' || typeof obj.cidr === 'string').toBe(true);
      }
    }
  });
});
