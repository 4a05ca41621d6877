import { describe, expect, it } from 'vitest';
import { MAX_PINGS_WHILE_BACKED, PingBound } from '../../src/server/transport/ping-bound.js';

describe('PingBound (uWS: pings from a peer that reads nothing)', () => {
  it('cuts after the bound of pings in a row while bytes are held, as ws does (60)', () => {
    const b = new PingBound();
    for (let i = 0; i < MAX_PINGS_WHILE_BACKED; i++) expect(b.ping(4_096)).toBe(false);
    expect(b.ping(4_096)).toBe(true);
  });

  it('a ping that finds nothing held starts the count again', () => {
    const b = new PingBound(3);
    for (let i = 0; i < 3; i++) expect(b.ping(1)).toBe(false);
    expect(b.ping(0)).toBe(false);
    for (let i = 0; i < 3; i++) expect(b.ping(1)).toBe(false);
    expect(b.ping(1)).toBe(true);
  });

  it('a slow reader that pings through a long snapshot (held bytes never reach 0, drains between) is never cut', () => {
    // One ping a second over ten minutes of a snapshot that keeps uWS's buffer topped up: the
    // peer reads (a drain) between pings. Before c4aa3ab only an empty buffer reset the count,
    // and this agent was cut after a minute.
    const b = new PingBound();
    for (let s = 0; s < 600; s++) {
      expect(b.ping(900_000)).toBe(false);
      b.drained();
    }
  });

  it('a drain does not forgive pings that come after it', () => {
    const b = new PingBound(2);
    b.ping(1);
    b.drained();
    expect(b.ping(1)).toBe(false);
    expect(b.ping(1)).toBe(false);
    expect(b.ping(1)).toBe(true);
  });
});
