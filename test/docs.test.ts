import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED_DOCS, generatedSections, renderGenerated } from '../scripts/docs/generate.js';
import { COMMANDS } from '../src/cli/commands.js';

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

const root = join(import.meta.dirname, '..');
/** The operator-facing texts: the front page, docs/, and the Dockerfile's comments. */
const prose = ['README.md', 'Dockerfile', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  .map((file) => ({ file, text: readFileSync(join(root, file), 'utf8') }));

describe('docs - claims the code can check', () => {
  it('the reference\'s command list names every command', () => {
    const reference = readFileSync(join(root, 'docs', 'reference.md'), 'utf8');
    const list = reference.slice(reference.indexOf('## The `cattail` command'), reference.indexOf('Every command takes'));
    for (const c of COMMANDS) expect(list, `docs/reference.md command list lacks ${c.name}`).toMatch(new RegExp(`^cattail ${c.name} `, 'm'));
  });

  it.each(prose)('$file cites only files that exist', ({ text }) => {
    const cited = [...text.matchAll(/\b(?:scripts|src|test|deploy|bench|proto)\/[\w./-]+\.(?:ts|sh|js|md|yaml|json)\b/g)].map((m) => m[0]);
    expect(cited.filter((p) => !existsSync(join(root, p)))).toEqual([]);
  });

  it('every metric the texts name is one the code defines (docs, DESIGN.md, PROTOCOL.md, error texts)', () => {
    const srcFiles = (dir: string): string[] => readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? srcFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const code = srcFiles('src').map((f) => readFileSync(join(root, f), 'utf8'));
    // A metric is defined where its name is a string literal of its own (`name: '…'`, stateGauge('…', …)).
    const defined = new Set(code.flatMap((t) => [...t.matchAll(/'(cattail_[a-z0-9_]+)'/g)].map((m) => m[1] as string)));
    const texts = [...prose, ...['DESIGN.md', 'proto/PROTOCOL.md', 'src/client/README.md', 'src/errors.ts'].map((file) => ({ file, text: readFileSync(join(root, file), 'utf8') }))];
    const unknown: string[] = [];
    for (const { file, text } of texts) {
      for (const [name] of text.matchAll(/\bcattail_[a-z0-9_]*[a-z0-9]\b/g)) {
        // prom-client's default metrics carry the prefix (metrics.ts); histograms add their series suffixes.
        if (/^cattail_(process|nodejs)_/.test(name) || defined.has(name) || defined.has(name.replace(/_(bucket|sum|count)$/, ''))) continue;
        unknown.push(`${file}: ${name}`);
      }
    }
    expect([...new Set(unknown)]).toEqual([]);
  });

  it.each(prose)('$file does not say the logs go to stdout (they are JSON lines on stderr, src/log.ts)', ({ text }) => {
    expect(text).not.toMatch(/logs? (?:go(?:es)? |are written |is written )?to stdout/i);
  });
});
