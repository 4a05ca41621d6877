import { describe, expect, it } from 'vitest';
import { CattailError } from '../../src/errors.js';
import { DEFAULT_CLIENTS_LIMIT, MAX_CLIENTS_LIMIT, pageOf, parseClientsQuery } from '../../src/server/ops/debug-clients.js';

const q = (s: string): ReturnType<typeof parseClientsQuery> => parseClientsQuery(new URLSearchParams(s));

describe('/debug/clients paging', () => {
  // 10,000 connections in ascending id, as the fan-out holds them; ids have gaps (agents left).
  const conns = Array.from({ length: 10_000 }, (_, i) => ({ id: 3 * i + 1, node: `node-${i % 2_500}` }));

  it('walks 10,000 connections in pages never larger than the limit, each exactly once', () => {
    const seen: number[] = [];
    let after = 0;
    let pages = 0;
    for (;;) {
      const p = pageOf(conns, q(`limit=5000&after=${after}`));
      expect(p.items.length).toBeLessThanOrEqual(MAX_CLIENTS_LIMIT);
      seen.push(...p.items.map((c) => c.id));
      pages++;
      if (p.next === null) break;
      after = p.next;
    }
    expect(pages).toBe(10);
    expect(seen).toEqual(conns.map((c) => c.id));
  });

  it('filters by node across pages, and says there is no next page on the last one', () => {
    const first = pageOf(conns, q('node=node-7&limit=3'));
    expect(first.items.map((c) => c.node)).toEqual(['node-7', 'node-7', 'node-7']);
    expect(first.next).toBe(first.items[2]?.id);
    const second = pageOf(conns, q(`node=node-7&limit=3&after=${String(first.next)}`));
    expect(second.items.map((c) => c.id)).toEqual([conns[7_507]?.id]);
    expect(second.next).toBeNull();
    // A full last page: next is null too, not a pointer to an empty page.
    expect(pageOf(conns, q('node=node-7&limit=4')).next).toBeNull();
  });

  it('defaults, caps and rejects query values', () => {
    expect(q('')).toEqual({ node: undefined, limit: DEFAULT_CLIENTS_LIMIT, after: 0 });
    expect(q('limit=999999').limit).toBe(MAX_CLIENTS_LIMIT);
    for (const bad of ['limit=0', 'limit=-1', 'limit=abc', 'after=1.5', 'after=-3']) {
      expect(() => q(bad), bad).toThrow(CattailError);
      try {
        q(bad);
      } catch (err) {
        expect((err as CattailError).code).toBe('CATTAIL_INVALID_ARGUMENT');
      }
    }
  });
});
