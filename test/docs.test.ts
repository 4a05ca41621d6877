import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED_DOCS, generatedSections, renderGenerated } from '../scripts/docs/generate.js';

const docs = GENERATED_DOCS.map((file) => ({ file, text: readFileSync(join(import.meta.dirname, '..', file), 'utf8') }));

describe('docs - generated sections', () => {
  it('places every generated section in some document', () => {
    for (const name of Object.keys(generatedSections())) {
      expect(docs.some((d) => d.text.includes(`<!-- generated:${name} -->`)), `no document holds <!-- generated:${name} -->`).toBe(true);
    }
  });

  it.each(docs)('$file matches the code (run `npm run docs` to regenerate)', ({ text }) => {
    expect(renderGenerated(text)).toBe(text);
  });
});
