// Rewrites the generated sections of the docs from the code's own tables (`npm run docs`).
import { readFileSync, writeFileSync } from 'node:fs';
import { GENERATED_DOCS, renderGenerated } from './docs/generate.js';

for (const file of GENERATED_DOCS) {
  const path = new URL(`../${file}`, import.meta.url);
  const before = readFileSync(path, 'utf8');
  const after = renderGenerated(before);
  if (after !== before) writeFileSync(path, after);
  process.stdout.write(after === before ? `${file} is up to date\n` : `${file} regenerated\n`);
}
