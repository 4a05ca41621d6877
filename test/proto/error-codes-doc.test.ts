/**
 * PROTOCOL.md §4.12 lists every ERROR code a peer may receive, with its close code, for readers who
 * never see our source. The codes come from proto's one table (CLOSE_OF_ERROR), which both sides'
 * close paths are typed against; the scan of src/server and src/client catches an ERROR written
 * by hand outside that table.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE_OF_ERROR, closeCodeOf, isClosingErrorCode, type ClosingErrorCode } from '../../proto/index.js';

const root = join(import.meta.dirname, '..', '..');
const protocol = readFileSync(join(root, 'proto', 'PROTOCOL.md'), 'utf8');
const section = protocol.slice(protocol.indexOf('### 4.12 ERROR'), protocol.indexOf('## 5. Compression'));

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') ? [p] : [];
  });
}

function rowOf(code: string): string | undefined {
  return section.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
}

describe('PROTOCOL.md - ERROR codes', () => {
  it('has a row for every code either side sends, with the one close code the table gives it', () => {
    const codes = Object.keys(CLOSE_OF_ERROR) as ClosingErrorCode[];
    expect(codes.length).toBeGreaterThanOrEqual(25);
    for (const code of codes) {
      if (CLOSE_OF_ERROR[code].close === 'NORMAL') continue; // a GOODBYE, not an ERROR
      const row = rowOf(code);
      expect(row, `PROTOCOL.md §4.12 has no row for ${code}`).toBeDefined();
      const closes = row!.split('|')[2]!.split(',').map((c) => Number(c.trim()));
      expect(closes, code).toEqual([closeCodeOf(code)]);
    }
  });

  it('every ERROR written in the server or the client carries a code of the table', () => {
    const written = new Set<string>();
    for (const f of [...files(join(root, 'src', 'server')), ...files(join(root, 'src', 'client'))]) {
      const text = readFileSync(f, 'utf8');
      for (const m of text.matchAll(/type: 'error', code: '(CATTAIL_[A-Z_]+)'/g)) written.add(m[1]!);
      for (const m of text.matchAll(/\bfail\('(CATTAIL_[A-Z_]+)'/g)) written.add(m[1]!);
    }
    expect(written.size).toBeGreaterThanOrEqual(5);
    for (const code of written) expect(isClosingErrorCode(code), code).toBe(true);
  });
});
