/** The plain-TCP floor's frames: real DELTA + STATUS frames of the requested size, readable by any agent. */
import { describe, expect, it } from 'vitest';
import { decodeBody, readHeader } from '../../proto/index.js';
import { floorFrame } from '../../src/bench/floor.js';

/** Splits a buffer of unmasked server WebSocket frames into their payloads. */
function payloads(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const l7 = (buf[off + 1] as number) & 0x7f;
    const hl = l7 < 126 ? 2 : l7 === 126 ? 4 : 10;
    const len = l7 < 126 ? l7 : l7 === 126 ? buf.readUInt16BE(off + 2) : Number(buf.readBigUInt64BE(off + 2));
    out.push(buf.subarray(off + hl, off + hl + len));
    off += hl + len;
  }
  return out;
}

describe('bench - plain-TCP floor frames', () => {
  it('pads one DELTA to the requested bytes per delivery and follows it with a STATUS of the same revision', () => {
    for (const size of [0, 1_486, 20_000]) {
      const buf = floorFrame(7, size);
      if (size > 200) expect(Math.abs(buf.length - size)).toBeLessThanOrEqual(8); // msgpack length prefixes
      const [delta, status] = payloads(buf);
      const dh = readHeader(delta as Buffer);
      expect([dh.fromRevision, dh.toRevision]).toEqual([6, 7]);
      const st = decodeBody(readHeader(status as Buffer), (status as Buffer).subarray(28));
      expect(st).toMatchObject({ type: 'status', revision: 7, status: 'in-sync' });
    }
  });
});
