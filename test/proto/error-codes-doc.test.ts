/**
 * PROTOCOL.md lists every ERROR code a server sends, with its close code, for readers who never
 * see our source: the codes are collected from the server's own close paths and the protocol's
 * decode errors, so a new code without a row fails here.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODE_OF } from '../../proto/index.js';

const root = join(import.meta.dirname, '..', '..');
const protocol = readFileSync(join(root, 'proto', 'PROTOCOL.md'), 'utf8');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') ? [p] : [];
  });
}

describe('PROTOCOL.md - ERROR codes', () => {
  it('has a row for every code the server sends, with the close code the server uses', () => {
    const sent = new Map<string, number[]>();
    for (const [code, close] of Object.entries(CLOSE_CODE_OF)) sent.set(code, [close]);
    for (const f of files(join(root, 'src', 'server'))) {
      const text = readFileSync(f, 'utf8');
      // conn.fail(CloseCode.X, 'CODE', …) and the upgrade's own ERROR (bad subprotocol).
      for (const m of text.matchAll(/fail\(CloseCode\.[A-Z_]+, '(CATTAIL_[A-Z_]+)'/g)) sent.set(m[1] as string, sent.get(m[1] as string) ?? []);
      for (const m of text.matchAll(/type: 'error', code: '(CATTAIL_[A-Z_]+)'/g)) sent.set(m[1] as string, sent.get(m[1] as string) ?? []);
      for (const m of text.matchAll(/new InboundError\([^,]+, '(CATTAIL_[A-Z_]+)'/g)) sent.set(m[1] as string, sent.get(m[1] as string) ?? []);
    }
    expect(sent.size).toBeGreaterThanOrEqual(15);
    for (const [code, closes] of sent) {
      const row = protocol.split('\n').find((l) => l.startsWith(`| \`${code}\` |`));
      expect(row, `PROTOCOL.md §4.12 has no row for ${code}`).toBeDefined();
      for (const c of closes) expect(row, code).toContain(String(c));
    }
  });
});
