/**
 * A failure in one connection's step stays that connection's: an exception while serving it (the
 * service queue) or while encoding a flush's delta for its frame size closes it alone with a
 * coded ERROR (CATTAIL_INTERNAL, 4012), and every other agent goes on to the store's state. No
 * input is known to raise such an exception (ENTRY_TOO_LARGE has its own path); the faults are
 * injected: a Connection method that throws for one agent, and a DELTA encoder that throws for
 * one frame size.
 */
import { describe, expect, it, vi } from 'vitest';
import { Connection } from '../../src/server/transport/connection.js';
import { bodySizeFor } from '../../src/server/fanout/handshake.js';
import { harness } from './helpers/harness.js';
import { waitUntil } from '../support/wait.js';
import type * as Framing from '../../src/server/transport/framing.js';

/** The agents' frame size whose DELTA encoding fails (any size other agents do not announce). */
const BROKEN_FRAME_BYTES = 65_536;

vi.mock('../../src/server/transport/framing.js', async (importOriginal) => {
  const real = await importOriginal<typeof Framing>();
  return {
    ...real,
    encodeDelta: (...args: Parameters<typeof real.encodeDelta>) => {
      if (args[6] === bodySizeFor(BROKEN_FRAME_BYTES)) throw new Error('injected: the DELTA encoder failed');
      return real.encodeDelta(...args);
    },
  };
});

function seed(h: Awaited<ReturnType<typeof harness>>, n: number, tag: string): void {
  const batch: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) batch[`/pods/ns/p${i}`] = { i, tag };
  h.upstream.apply('felix', batch, { status: 'in-sync' });
}

describe('a step that throws for one connection', () => {
  it('service: closes that connection with CATTAIL_INTERNAL and serves the others in the same storm', async () => {
    const real = Connection.prototype.beginBatch;
    let thrown = 0;
    // The first batch of an agent is its WELCOME (answerHello, already guarded); the ones after
    // are the service's snapshot stream.
    const seen = new WeakMap<Connection, number>();
    const spy = vi.spyOn(Connection.prototype, 'beginBatch').mockImplementation(function (this: Connection) {
      const n = (seen.get(this) ?? 0) + 1;
      seen.set(this, n);
      if (this.node === 'bad' && n >= 2) {
        thrown++;
        throw new Error('injected: a service step failed');
      }
      real.call(this);
    });
    try {
      // Small slices and turns: the build and the streams take many turns, so the failing agent
      // and the others share turns of the service queue.
      const h = await harness({ snapshotBuildSliceEntries: 20, serviceTurn: { maxMs: 1_000, maxBytes: 16 * 1024 }, maxFrameBytes: 16_384 });
      seed(h, 500, 'a');
      const bad = h.agent({ node: 'bad', feeds: [{ name: 'felix' }] });
      const good = Array.from({ length: 4 }, (_, i) => h.agent({ node: `good-${i}`, feeds: [{ name: 'felix' }] }));
      await bad.until(() => bad.closeCode !== undefined, 'the failing agent closed');
      expect(bad.closeCode).toBe(4012);
      expect(thrown).toBe(1);
      expect(bad.errors.map((e) => e.code)).toEqual(['CATTAIL_INTERNAL']);
      expect(bad.closeReason).toBe('CATTAIL_INTERNAL');
      const rev = h.storeRevision('felix');
      await Promise.all(good.map((a) => a.untilRevision('felix', rev)));
      for (const a of good) expect(a.digest('felix')).toEqual(h.storeDigest('felix'));
      // And the server goes on: a later change reaches them live.
      seed(h, 500, 'b');
      const rev2 = h.storeRevision('felix');
      await Promise.all(good.map((a) => a.untilRevision('felix', rev2)));
      for (const a of good) expect(a.digest('felix')).toEqual(h.storeDigest('felix'));
    } finally {
      spy.mockRestore();
    }
  });

  it('flush: a socket whose writes throw is cut off; the rest of its write block gets the change once', async () => {
    const real = Connection.prototype.sinkFor;
    const spy = vi.spyOn(Connection.prototype, 'sinkFor').mockImplementation(function (this: Connection, bytes: number) {
      const sink = real.call(this, bytes);
      if (sink === undefined || this.node !== 'bad') return sink;
      // Every write of this socket throws, the ERROR of its own close included.
      const boom = (): never => {
        throw new Error('injected: the transport threw on write');
      };
      Object.assign(this.socket, { write: boom, writeCorked: boom });
      return { write: boom };
    });
    try {
      const h = await harness();
      seed(h, 10, 'a');
      // The flush walks its list backwards: agents connected before and after the failing one
      // sit on both sides of it in the same write block.
      const before = Array.from({ length: 3 }, (_, i) => h.agent({ node: `b${i}`, feeds: [{ name: 'felix' }] }));
      const rev = h.storeRevision('felix');
      await Promise.all(before.map((a) => a.untilRevision('felix', rev)));
      const bad = h.agent({ node: 'bad', feeds: [{ name: 'felix' }] });
      await bad.untilRevision('felix', rev);
      const after = Array.from({ length: 3 }, (_, i) => h.agent({ node: `a${i}`, feeds: [{ name: 'felix' }] }));
      await Promise.all(after.map((a) => a.untilRevision('felix', rev)));
      seed(h, 10, 'b');
      // Its close frame cannot be written either: the socket is terminated (1006 at the agent).
      await bad.until(() => bad.closeCode !== undefined, 'the failing agent closed');
      const rev2 = h.storeRevision('felix');
      await Promise.all([...before, ...after].map((a) => a.untilRevision('felix', rev2)));
      for (const a of [...before, ...after]) {
        expect(a.digest('felix')).toEqual(h.storeDigest('felix'));
        expect(a.violations).toEqual([]);
      }
    } finally {
      spy.mockRestore();
    }
  });

  it('flush of several feeds: a socket that throws fails its connection alone; the connections after it get the change', async () => {
    const real = Connection.prototype.writeShared;
    let armed = false;
    const spy = vi.spyOn(Connection.prototype, 'writeShared').mockImplementation(function (this: Connection, buf: Buffer) {
      if (armed && this.node === 'bad') throw new Error('injected: the transport threw on write');
      return real.call(this, buf);
    });
    try {
      const h = await harness({ feeds: ['felix', 'bgp'] });
      seed(h, 10, 'a');
      h.upstream.apply('bgp', { '/pods/x/y': { v: 0 } }, { status: 'in-sync' });
      const feeds = [{ name: 'felix' }, { name: 'bgp' }];
      const bad = h.agent({ node: 'bad', feeds });
      const others = Array.from({ length: 4 }, (_, i) => h.agent({ node: `n${i}`, feeds }));
      for (const a of [bad, ...others]) for (const f of ['felix', 'bgp']) await a.untilRevision(f, h.storeRevision(f));
      armed = true;
      // Both feeds change in one flush: the walk over every connection (flushAll).
      seed(h, 10, 'b');
      h.upstream.apply('bgp', { '/pods/x/y': { v: 1 } }, { status: 'in-sync' });
      await bad.until(() => bad.closeCode !== undefined, 'the failing agent closed');
      expect(bad.errors.map((e) => e.code)).toEqual(['CATTAIL_INTERNAL']);
      for (const a of others) {
        for (const f of ['felix', 'bgp']) {
          await a.untilRevision(f, h.storeRevision(f));
          expect(a.digest(f)).toEqual(h.storeDigest(f));
        }
        expect(a.violations).toEqual([]);
      }
    } finally {
      spy.mockRestore();
    }
  });

  it('a close handler that throws is a process warning, not an uncaught exception: the server and the other agents go on', async () => {
    const proto = Connection.prototype as unknown as { onSocketClose(code: number): void };
    const real = proto.onSocketClose;
    const spy = vi.spyOn(proto, 'onSocketClose').mockImplementation(function (this: Connection, code: number) {
      real.call(this, code);
      if (this.node === 'bad') throw new Error('injected: the close bookkeeping threw');
    });
    const warnings: { text: string; code: string | undefined }[] = [];
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(((w: string, o?: { code?: string }) => void warnings.push({ text: String(w), code: o?.code })) as typeof process.emitWarning);
    try {
      const h = await harness();
      seed(h, 5, 'a');
      const bad = h.agent({ node: 'bad', feeds: [{ name: 'felix' }] });
      const good = h.agent({ node: 'good', feeds: [{ name: 'felix' }] });
      for (const a of [bad, good]) await a.untilRevision('felix', h.storeRevision('felix'));
      bad.ws.terminate();
      await waitUntil(() => warnings.length === 1, 'the warning');
      expect(warnings[0]).toEqual({ text: 'an agent socket\'s close handler threw: injected: the close bookkeeping threw', code: 'CATTAIL_INTERNAL' });
      seed(h, 5, 'b');
      await good.untilRevision('felix', h.storeRevision('felix'));
      expect(good.digest('felix')).toEqual(h.storeDigest('felix'));
      expect(h.server.connectionCount()).toBe(1);
    } finally {
      spy.mockRestore();
      warn.mockRestore();
    }
  });

  it('flush: a DELTA that cannot be encoded for one agent closes it alone; the others get the change', async () => {
    const h = await harness();
    seed(h, 10, 'a');
    const broken = h.agent({ node: 'broken', maxFrameBytes: BROKEN_FRAME_BYTES, feeds: [{ name: 'felix' }] });
    const others = Array.from({ length: 6 }, (_, i) => h.agent({ node: `n${i}`, feeds: [{ name: 'felix' }] }));
    const rev = h.storeRevision('felix');
    // Snapshots are encoded by the snapshot build, not encodeDelta: every agent starts live.
    await Promise.all([broken, ...others].map((a) => a.untilRevision('felix', rev)));
    seed(h, 10, 'b');
    await broken.until(() => broken.closeCode !== undefined, 'the failing agent closed');
    expect(broken.closeCode).toBe(4012);
    expect(broken.errors.map((e) => e.code)).toEqual(['CATTAIL_INTERNAL']);
    const rev2 = h.storeRevision('felix');
    await Promise.all(others.map((a) => a.untilRevision('felix', rev2)));
    for (const a of others) {
      expect(a.digest('felix')).toEqual(h.storeDigest('felix'));
      expect(a.feed('felix').snapshots).toBe(1); // the change came as a DELTA, not a resync
    }
  });
});
