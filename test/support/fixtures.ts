import { resolve } from 'node:path';

/**
 * The object fixtures (test/fixtures: Calico v3.31 CRDs, real and schema-valid Kubernetes and
 * Calico objects, a paged list and watch streams in wire form; test/fixtures/README.md says where
 * each file comes from). They live in the repository so a clone tests on its own.
 * CATTAIL_FIXTURES points the tests at another copy.
 */
export function fixturesDir(): string {
  return process.env['CATTAIL_FIXTURES'] || resolve(import.meta.dirname, '..', 'fixtures');
}
