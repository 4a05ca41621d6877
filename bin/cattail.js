#!/usr/bin/env node
// The `cattail` command. The TypeScript sources are compiled to dist/ by `npm run build`, which
// `npm ci` runs through the `prepare` script, so a fresh checkout only needs `npm ci`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('cattail: CATTAIL_INTERNAL: dist/ is missing; run `npm ci` (or `npm run build`) first\n');
  process.exit(1);
}
const { runAsProcess } = await import(entry.href);
await runAsProcess(process.argv.slice(2));
