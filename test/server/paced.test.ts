/**
 * PacedTurns: the transports' upgrade queue. Work is done in arrival order, in turns bounded by
 * time, at least one item per turn; a failing item does not stop the others.
 */
import { describe, expect, it } from 'vitest';
import { PacedTurns } from '../../src/server/transport/paced.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('PacedTurns', () => {
  it('does nothing in the caller\'s turn, then items in order within the time of a turn', async () => {
    let t = 0;
    const done: number[] = [];
    // Each item "takes" 2 ms on the injected clock: a 5 ms turn does 3 (the check comes before each).
    const q = new PacedTurns<number>(5, (i) => {
      done.push(i);
      t += 2;
    }, () => undefined, () => t);
    for (let i = 0; i < 10; i++) q.push(i);
    expect(done).toEqual([]);
    expect(q.size).toBe(10);
    const perTurn: number[] = [];
    while (q.size > 0) {
      const before = done.length;
      await turn();
      perTurn.push(done.length - before);
    }
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(perTurn.every((n) => n <= 3)).toBe(true);
    expect(perTurn.length).toBeGreaterThanOrEqual(4);
  });

  it('runs at least one item per turn however long it takes, and goes on after one throws', async () => {
    let t = 0;
    const done: string[] = [];
    const failed: string[] = [];
    const q = new PacedTurns<string>(1, (s) => {
      t += 50;
      if (s === 'bad') throw new Error('no');
      done.push(s);
    }, (s, err) => failed.push(`${s}: ${(err as Error).message}`), () => t);
    q.push('a');
    q.push('bad');
    q.push('c');
    await turn();
    expect(done).toEqual(['a']);
    await turn();
    await turn();
    expect(done).toEqual(['a', 'c']);
    expect(failed).toEqual(['bad: no']);
    expect(q.size).toBe(0);
  });

  it('drain() takes the waiting items out so a closing transport can end them', async () => {
    const done: number[] = [];
    const q = new PacedTurns<number>(5, (i) => done.push(i), () => undefined);
    q.push(1);
    q.push(2);
    expect(q.drain()).toEqual([1, 2]);
    await turn();
    expect(done).toEqual([]);
    expect(q.size).toBe(0);
  });
});
