import { afterEach } from 'vitest';
import { startSim, type Sim, type SimOptions } from '../../src/sim/index.js';

/**
 * The simulator fixture of a test file: `start()` runs a simulator (the file's defaults, then the
 * test's options) and `track()` registers a stream or connection opened on it; after each test
 * every tracked stream is closed, then every simulator.
 */
export function simFixture(defaults: SimOptions = {}): { start(o?: SimOptions): Promise<Sim>; track<T extends { close(): void }>(c: T): T } {
  const sims: Sim[] = [];
  const open: { close(): void }[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) c.close();
    await Promise.all(sims.splice(0).map((s) => s.close()));
  });
  return {
    async start(o = {}) {
      const s = await startSim({ ...defaults, ...o });
      sims.push(s);
      return s;
    },
    track(c) {
      open.push(c);
      return c;
    },
  };
}
