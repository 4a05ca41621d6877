import { join } from 'node:path';
import { ESLint } from 'eslint';

/**
 * Lints `code` as if it were the file `file` of this repository (with the repository's own
 * eslint.config.js) and returns the ids of the rules that fired, so a test can prove a rule fires.
 */
const root = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({ cwd: root });

export async function ruleIds(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, file) });
  return (result?.messages ?? []).map((m) => m.ruleId ?? 'parse');
}
