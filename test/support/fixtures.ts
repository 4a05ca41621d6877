import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The shared fixtures folder (`shared/fixtures`), which sits beside the repository checkout (in
 * development and in CI alike). CATTAIL_FIXTURES overrides the lookup.
 */
export function fixturesDir(): string {
  const override = process.env['CATTAIL_FIXTURES'];
  if (override) return override;
  let dir = resolve(import.meta.dirname, '..', '..');
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'shared', 'fixtures');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('shared/fixtures not found beside the checkout; set CATTAIL_FIXTURES');
}
