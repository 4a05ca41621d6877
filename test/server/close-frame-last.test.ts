/**
 * Nothing follows a close frame (RFC 6455 §5.5.1): when the agent closes (or the transport
 * refuses a frame of its own accord), the Connection stops writing at once, not when the socket
 * is gone. Over `ws` the close frame waited behind what the socket held, and flushes written
 * meanwhile went out after it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../proto/index.js';
import { waitUntil } from '../support/wait.js';
import { harness } from './helpers/harness.js';
import { rawUpgrade } from './helpers/upgrade.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

/** A client frame: FIN, `opcode`, masked (RFC 6455 §5.3) with a zero key, so the payload goes as it is. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, 0x80 | n]) : Buffer.from([0x80 | opcode, 0x80 | 126, n >> 8, n & 0xff]);
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

describe('server - nothing after a close frame', () => {
  it('writes no frame after the close frame that answers the agent\'s close, however much the socket holds', async () => {
    const h = await harness({ socketHighWaterBytes: 64 * 1024 * 1024, flushWindowMs: 0 });
    h.upstream.apply('felix', { '/pods/ns/p0': { i: 0 } }, { status: 'in-sync' });
    const raw = await rawUpgrade(h.server.url);
    cleanups.push(() => raw.sock.destroy());
    raw.sock.write(clientFrame(0x2, encodeFrame({ type: 'hello', protocol: 1, node: 'n1', clientId: 'raw', feeds: [{ name: 'felix' }], caps: [] })));
    // WELCOME, SNAPSHOT_BEGIN, one chunk, SNAPSHOT_END: live from here.
    await waitUntil(() => raw.frames.length >= 4, 'welcome and snapshot');
    // It stops reading; big changes fill the kernel's buffers and then the server's own.
    raw.sock.pause();
    for (let i = 0; i < 60; i++) h.upstream.apply('felix', { [`/pods/big/b${i}`]: { pad: 'x'.repeat(256 * 1024) } });
    await new Promise((r) => setTimeout(r, 300));
    // Its close frame: ws queues its answer behind what the socket holds.
    raw.sock.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
    await new Promise((r) => setTimeout(r, 100));
    // Changes after it: before, each was written after ws's close frame.
    for (let i = 0; i < 5; i++) {
      h.upstream.apply('felix', { [`/pods/late/l${i}`]: { i } });
      await new Promise((r) => setTimeout(r, 20));
    }
    raw.sock.resume();
    await waitUntil(() => raw.closeCode !== undefined, 'the close frame', { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 200));
    const at = raw.frames.findIndex((f) => f.opcode === 0x8);
    expect(at).toBeGreaterThan(0);
    expect(raw.frames.slice(at + 1).map((f) => f.opcode)).toEqual([]);
  });
});
