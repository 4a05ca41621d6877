import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lintDockerfile, parseDockerfile, stages } from '../../scripts/image/dockerfile.js';

const repo = join(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { engines: { node: string } };

const GOOD = `ARG IMG=node:24-bookworm-slim
FROM \${IMG} AS build
WORKDIR /src
RUN npm ci
FROM \${IMG}
LABEL org.opencontainers.image.title="t" org.opencontainers.image.version="1" \\
      org.opencontainers.image.revision="r" org.opencontainers.image.licenses="x"
COPY --from=build /src/dist ./dist
USER 1000:1000
ENTRYPOINT ["node", "x.js"]
CMD ["--a"]
`;

function rules(text: string): string[] {
  return lintDockerfile(text).map((f) => f.rule);
}

describe('Dockerfile', () => {
  it('passes every lint rule', () => {
    expect(lintDockerfile(dockerfile)).toEqual([]);
  });

  it('runs on a Node.js major that package.json engines admits, as a non-root user with the serve entrypoint', () => {
    const st = stages(parseDockerfile(dockerfile));
    const major = Number(/node:(\d+)/.exec(st.at(-1)?.image ?? '')?.[1]);
    expect(major).toBeGreaterThanOrEqual(22);
    expect(pkg.engines.node).toContain(`^${major}.`);
    const final = st.at(-1)?.instructions ?? [];
    expect(final.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["node", "/app/bin/cattail.js", "serve"]');
    expect(final.filter((i) => i.op === 'RUN').every((i) => i.args.includes('--omit=dev'))).toBe(true);
  });

  it('parses continuations, ARG substitution and stage names', () => {
    const st = stages(parseDockerfile(GOOD));
    expect(st.map((s) => [s.name, s.image])).toEqual([['build', 'node:24-bookworm-slim'], [undefined, 'node:24-bookworm-slim']]);
    expect(rules(GOOD)).toEqual([]);
  });

  // Each rule fires on the mistake it names (a linter whose rules never fire proves nothing).
  it.each([
    ['pinned-base', GOOD.replace('node:24-bookworm-slim', 'node')],
    ['pinned-base', GOOD.replace('node:24-bookworm-slim', 'node:latest')],
    ['non-root', GOOD.replace('USER 1000:1000', 'USER root')],
    ['non-root', GOOD.replace('USER 1000:1000\n', '')],
    ['exec-form', GOOD.replace('ENTRYPOINT ["node", "x.js"]', 'ENTRYPOINT node x.js')],
    ['exec-form', GOOD.replace('CMD ["--a"]', 'CMD --a')],
    ['entrypoint', GOOD.replace('ENTRYPOINT ["node", "x.js"]\n', '')],
    ['npm-ci', GOOD.replace('RUN npm ci', 'RUN npm install')],
    ['apt-no-recommends', GOOD.replace('RUN npm ci', 'RUN apt-get install -y curl')],
    ['no-sudo', GOOD.replace('RUN npm ci', 'RUN sudo npm ci')],
    ['copy-not-add', GOOD.replace('COPY --from=build /src/dist ./dist', 'ADD dist ./dist')],
    ['copy-from-stage', GOOD.replace('--from=build', '--from=builder')],
    ['absolute-workdir', GOOD.replace('WORKDIR /src', 'WORKDIR src')],
    ['oci-labels', GOOD.replace('org.opencontainers.image.revision="r" ', '')],
  ])('rule %s fires', (rule, text) => {
    expect(rules(text)).toContain(rule);
  });
});
