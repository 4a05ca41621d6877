// Writes the generated deployment files (`npm run deploy:generate`).
import { readFileSync, writeFileSync } from 'node:fs';
import { generatedDeployFiles } from './deploy/generate.js';

for (const [file, content] of Object.entries(generatedDeployFiles())) {
  const path = new URL(`../${file}`, import.meta.url);
  let before = '';
  try {
    before = readFileSync(path, 'utf8');
  } catch {
    // new file
  }
  if (before !== content) writeFileSync(path, content);
  process.stdout.write(before === content ? `${file} is up to date\n` : `${file} written\n`);
}
