import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generatedSections, renderGenerated } from '../scripts/docs/generate.js';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');

describe('docs - README generated sections', () => {
  it('contains every generated section', () => {
    for (const name of Object.keys(generatedSections())) {
      expect(readme, `README.md lacks <!-- generated:${name} -->`).toContain(`<!-- generated:${name} -->`);
    }
  });

  it('matches the code (run `npm run docs` to regenerate)', () => {
    expect(renderGenerated(readme)).toBe(readme);
  });
});
