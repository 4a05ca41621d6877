import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALLOWED } from '../../src/client/internal.js';

// The mermaid diagram in src/client/README.md and ALLOWED in status.ts are one state machine
// written twice; this keeps them from drifting apart.
describe('client - documented state machine', () => {
  it('the README diagram has exactly the edges of ALLOWED', () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'src', 'client', 'README.md'), 'utf8');
    const block = /```mermaid\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const name = (s: string): string => s.replace('in_sync', 'in-sync').replace('upstream_stale', 'upstream-stale');
    const documented = new Set<string>();
    for (const m of block.matchAll(/^\s*([a-z_]+) --> ([a-z_]+)/gm)) documented.add(`${name(m[1]!)} → ${name(m[2]!)}`);
    const code = new Set<string>();
    for (const [from, tos] of Object.entries(ALLOWED)) for (const to of tos) code.add(`${from} → ${to}`);
    expect([...documented].sort()).toEqual([...code].sort());
  });
});
