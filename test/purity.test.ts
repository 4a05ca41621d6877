import { describe, expect, it } from 'vitest';
import { ruleIds } from './support/lint.js';

// The purity rule is a lint rule; prove it fires (and does not fire outside the pure core).

describe('lint - pure core', () => {
  it('rejects I/O, timers, logging and metrics imports in src/snapshot and proto', async () => {
    for (const mod of ['node:fs', 'node:net', 'ws', 'pino', 'prom-client', 'node:timers']) {
      expect(await ruleIds(`import x from '${mod}';\nexport const y = x;\n`, 'src/snapshot/bad.ts')).toContain('no-restricted-imports');
    }
    expect(await ruleIds(`import x from 'node:zlib';\nexport const y = x;\n`, 'proto/bad.ts')).toContain('no-restricted-imports');
  });

  it('rejects direct clock reads and timers there', async () => {
    expect(await ruleIds('export const t = Date.now();\n', 'src/snapshot/bad.ts')).toContain('no-restricted-properties');
    expect(await ruleIds('export const t = new Date();\n', 'proto/bad.ts')).toContain('no-restricted-syntax');
    expect(await ruleIds('setTimeout(() => {}, 1);\n', 'src/snapshot/bad.ts')).toContain('no-restricted-globals');
    expect(await ruleIds('export const t = performance.now();\n', 'proto/bad.ts')).toContain('no-restricted-globals');
  });

  it('allows node:crypto and timestamps passed in', async () => {
    expect(await ruleIds(`import { createHash } from 'node:crypto';\nexport const h = (b: Buffer): Buffer => createHash('sha256').update(b).digest();\n`, 'src/snapshot/ok.ts')).toEqual([]);
    expect(await ruleIds('export const age = (now: number, t: number): number => now - t;\n', 'proto/ok.ts')).toEqual([]);
  });

  it('does not restrict the server', async () => {
    expect(await ruleIds(`import { createServer } from 'node:net';\nexport const s = createServer;\nexport const t = Date.now();\n`, 'src/server/ok.ts')).toEqual([]);
  });

  it('forbids process.exit in libraries', async () => {
    expect(await ruleIds('process.exit(1);\n', 'src/client/bad.ts')).toContain('no-restricted-properties');
  });
});
