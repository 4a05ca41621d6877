// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Modules the pure core (src/snapshot, proto) may not import: anything that does I/O, owns
// timers, logs or exports metrics. node:crypto is allowed (hashing is pure), type-only
// imports of the Clock interface are allowed (time is passed in, never read).
const impureModules = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http',
  'https', 'node:https', 'http2', 'node:http2', 'tls', 'node:tls', 'dgram', 'node:dgram',
  'child_process', 'node:child_process', 'worker_threads', 'node:worker_threads',
  'timers', 'node:timers', 'timers/promises', 'node:timers/promises', 'perf_hooks',
  'node:perf_hooks', 'os', 'node:os', 'process', 'node:process', 'readline', 'node:readline',
  'cluster', 'node:cluster', 'dns', 'node:dns', 'zlib', 'node:zlib',
  'ws', 'pino', 'prom-client', '@kubernetes/client-node',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly',
        clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly',
        setImmediate: 'readonly', clearImmediate: 'readonly', URL: 'readonly', TextEncoder: 'readonly',
        TextDecoder: 'readonly', performance: 'readonly', queueMicrotask: 'readonly', fetch: 'readonly',
        AbortController: 'readonly', AbortSignal: 'readonly', structuredClone: 'readonly', global: 'readonly',
        FinalizationRegistry: 'readonly', WeakRef: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
      // A library never ends its host process; only the CLI entry point may.
      'no-restricted-properties': ['error', { object: 'process', property: 'exit', message: 'Libraries never call process.exit; throw a coded CattailError (only src/cli/main.ts exits).' }],
    },
  },
  {
    files: ['src/cli/main.ts', 'bin/**', 'scripts/**', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // The pure core: no I/O, no timers, no logging, no metrics, no clock reads.
    files: ['src/snapshot/**/*.ts', 'proto/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impureModules.map((name) => ({ name, message: 'src/snapshot and proto are pure: no I/O, timers, logging or metrics.' })),
        patterns: [{ group: ['**/server/**', '**/client/**', '**/log*', '**/metrics*'], message: 'The pure core may not depend on the server, client, logging or metrics.' }],
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'performance', 'process', 'fetch', 'console']
          .map((name) => ({ name, message: `src/snapshot and proto are pure: '${name}' is not allowed (time is injected).` })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Pure core: take the time as an argument.' },
        { object: 'performance', property: 'now', message: 'Pure core: take the time as an argument.' },
        { object: 'process', property: 'hrtime', message: 'Pure core: take the time as an argument.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Pure core: `new Date()` reads the clock; take the time as an argument.' },
        { selector: "CallExpression[callee.name='Date']", message: 'Pure core: `Date()` reads the clock.' },
      ],
    },
  },
);
