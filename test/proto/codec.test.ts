import { describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, ProtocolError } from '../../proto/index.js';
import { SAMPLE_MESSAGES } from './messages.js';

const limits = { maxBodyBytes: 1_048_576 };

describe('proto codec - round trip', () => {
  for (const [name, m] of Object.entries(SAMPLE_MESSAGES)) {
    it(`decodes what it encodes: ${name}`, () => {
      expect(decodeFrame(encodeFrame(m), limits)).toEqual(m);
    });
  }

  it('rejects a truncated frame with a coded error', () => {
    const f = encodeFrame(SAMPLE_MESSAGES.delta!);
    const err = (() => { try { decodeFrame(f.subarray(0, f.length - 1), limits); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as ProtocolError).code).toBe('CATTAIL_PROTO_TRUNCATED');
    expect((err as ProtocolError).closeCode).toBe(4000);
  });
});
