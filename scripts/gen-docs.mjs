// Rewrites the generated sections of README.md from the built code (run via `npm run docs`).
import { readFileSync, writeFileSync } from 'node:fs';

const { renderGenerated } = await import('../dist/src/docs/generate.js');
const path = new URL('../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = renderGenerated(before);
if (after !== before) writeFileSync(path, after);
process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md regenerated\n');
