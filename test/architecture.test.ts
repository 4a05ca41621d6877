import { describe, expect, it } from 'vitest';
import { ruleIds } from './support/lint.js';

/**
 * The boundaries between the parts of the tree are lint rules (eslint.config.js, `boundaries()`);
 * each test here proves one fires where it should and stays quiet where the import is allowed.
 * Static imports and re-exports are no-restricted-imports; `import()` and `typeof import()` with a
 * literal path are no-restricted-syntax (no-restricted-imports does not see them).
 */
const staticImport = (from: string): string => `import { x } from '${from}';\nexport const y = x;\n`;
const typeImport = (from: string): string => `import type { X } from '${from}';\nexport type Y = X;\n`;
const reExport = (from: string): string => `export { x } from '${from}';\n`;
const dynamicImport = (from: string): string => `export const load = async (): Promise<unknown> => import('${from}');\n`;
const typeofImport = (from: string): string => `export type M = typeof import('${from}');\n`;

/** Every way of reaching `from` fires (static, type-only, re-export, dynamic, typeof import). */
async function expectForbidden(file: string, from: string): Promise<void> {
  for (const code of [staticImport(from), typeImport(from), reExport(from)]) {
    expect(await ruleIds(code, file), `${file}: ${code}`).toContain('no-restricted-imports');
  }
  for (const code of [dynamicImport(from), typeofImport(from)]) {
    expect(await ruleIds(code, file), `${file}: ${code}`).toContain('no-restricted-syntax');
  }
}

async function expectAllowed(file: string, from: string): Promise<void> {
  for (const code of [staticImport(from), dynamicImport(from)]) expect(await ruleIds(code, file), `${file}: ${code}`).toEqual([]);
}

describe('lint - architecture boundaries', () => {
  it('src/client never imports the server, the upstream, the simulator or the CLI', async () => {
    for (const from of ['../server/server.js', '../server/upstream/index.js', '../server/upstream/json.js', '../sim/index.js', '../cli/agent.js']) {
      await expectForbidden('src/client/bad.ts', from);
    }
    await expectForbidden('src/client/deep/bad.ts', '../../server/transport/framing.js');
    for (const from of ['../../proto/index.js', '../clock.js', '../errors.js', './connection.js']) await expectAllowed('src/client/ok.ts', from);
  });

  it('src/sim never imports the server, the client or the CLI', async () => {
    for (const from of ['../server/server.js', '../server/upstream/json.js', '../client/index.js', '../cli/sim.js']) {
      await expectForbidden('src/sim/bad.ts', from);
    }
    await expectForbidden('src/sim/faults/bad.ts', '../../client/index.js');
    for (const from of ['../clock.js', '../registry.js', './store.js']) await expectAllowed('src/sim/ok.ts', from);
  });

  it('library code never imports src/cli; the CLI imports the library', async () => {
    for (const file of ['src/config/bad.ts', 'src/server/bad.ts', 'src/server/transport/bad.ts', 'src/snapshot/bad.ts', 'src/bad.ts']) {
      const up = file.split('/').length - 2;
      await expectForbidden(file, `${'../'.repeat(up) || './'}cli/commands.js`);
    }
    for (const from of ['../server/serve.js', '../client/index.js', '../sim/index.js', './agent.js']) await expectAllowed('src/cli/ok.ts', from);
  });

  it('the server reaches the simulator only through the upstream-factory seam, and only lazily', async () => {
    await expectForbidden('src/server/bad.ts', '../sim/index.js');
    await expectForbidden('src/server/upstream/bad.ts', '../../sim/index.js');
    await expectForbidden('src/server/fanout/bad.ts', '../../sim/store.js');
    // The seam: `await import()` of the simulator is allowed; a static import (of values or types) is not.
    expect(await ruleIds(dynamicImport('../sim/index.js'), 'src/server/upstream-factory.ts')).toEqual([]);
    for (const code of [staticImport('../sim/index.js'), typeImport('../sim/index.js')]) {
      expect(await ruleIds(code, 'src/server/upstream-factory.ts')).toContain('no-restricted-imports');
    }
    expect(await ruleIds(dynamicImport('../cli/main.js'), 'src/server/upstream-factory.ts')).toContain('no-restricted-syntax');
  });

  it('proto/ imports nothing from src/ but the coded-error base', async () => {
    for (const from of ['../src/clock.js', '../src/registry.js', '../src/snapshot/index.js', '../src/frame-compression.js']) {
      await expectForbidden('proto/bad.ts', from);
    }
    expect(await ruleIds(staticImport('../src/errors.js'), 'proto/ok.ts')).toEqual([]);
    expect(await ruleIds(staticImport('./types.js'), 'proto/ok.ts')).toEqual([]);
  });

  it('the pure core also refuses the server, client, logging and metrics by dynamic import', async () => {
    for (const from of ['../server/server.js', '../client/index.js', '../log.js', '../server/ops/metrics.js', '../cli/main.js']) {
      await expectForbidden('src/snapshot/bad.ts', from);
    }
  });

  it('keeps the pure core rules when the boundaries are merged in', async () => {
    expect(await ruleIds(staticImport('node:fs'), 'proto/bad.ts')).toContain('no-restricted-imports');
    expect(await ruleIds('export const t = new Date();\n', 'src/snapshot/bad.ts')).toContain('no-restricted-syntax');
  });
});
