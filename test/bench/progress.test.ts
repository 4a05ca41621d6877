/** `cattail bench`'s live display: redrawn in place on a terminal, plain and sparse otherwise. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Progress } from '../../src/bench/progress.js';

function capture(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

const status = (inSync: number): { agents: number; connected: number; inSync: number; deliveriesPerSec: number } => ({ agents: 10, connected: 10, inSync, deliveriesPerSec: 1234 });

describe('bench - progress display', () => {
  it('on a terminal redraws one status line in place and clears it before an event line', () => {
    const c = capture();
    let now = 0;
    const p = new Progress(c.out, true, () => now);
    p.setPhase('cold-start');
    p.status(status(3));
    now = 100;
    p.status(status(7));
    p.line('done');
    p.done();
    const t = c.text();
    expect(t).toContain('\r\x1b[2K[0.0 s] cold-start: 10/10 connected, 3/10 in sync, 1,234 deliveries/s');
    expect(t).toContain('\r\x1b[2K[0.1 s] cold-start: 10/10 connected, 7/10 in sync');
    // The live line is erased before the event is printed on a line of its own.
    expect(t.endsWith('in sync, 1,234 deliveries/s\r\x1b[2K[0.1 s] done\n')).toBe(true);
  });

  it('elsewhere prints plain lines: the status once per phase and then at most every plainEveryMs', () => {
    const c = capture();
    let now = 0;
    const p = new Progress(c.out, false, () => now, 5_000);
    p.setPhase('churn');
    p.status(status(1));
    now = 1_000;
    p.status(status(2)); // within 5 s of the last one, same phase: not printed
    now = 6_000;
    p.status(status(3));
    p.setPhase('burst');
    p.status(status(4)); // a new phase: printed at once
    p.done();
    const lines = c.text().split('\n').filter((l) => l !== '');
    expect(c.text()).not.toContain('\x1b[');
    expect(lines).toEqual([
      '[0.0 s] phase: churn',
      '[0.0 s] churn: 10/10 connected, 1/10 in sync, 1,234 deliveries/s',
      '[6.0 s] churn: 10/10 connected, 3/10 in sync, 1,234 deliveries/s',
      '[6.0 s] phase: burst',
      '[6.0 s] burst: 10/10 connected, 4/10 in sync, 1,234 deliveries/s',
    ]);
  });
});
