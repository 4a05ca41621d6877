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

const PURE_CORE = ['src/snapshot/**/*.ts', 'proto/**/*.ts'];

// The one module of the server that may load the simulator (for `serve --embedded-sim`), and only
// lazily, with `await import()`: a production replica never loads src/sim.
const SIM_SEAM = 'src/server/upstream-factory.ts';

/**
 * A forbidden dependency: `group` (gitignore-style globs, as no-restricted-imports takes them) for
 * static imports and re-exports, `dynamic` (a regular expression source) for `import()` and
 * `typeof import()` with a literal path, which no-restricted-imports does not see.
 */
const forbid = (dirs, message) => ({
  group: dirs.map((d) => `**/${d}/**`),
  // \x2F is '/': the selector syntax cannot hold a slash inside a regular expression.
  dynamic: `(^|\\x2F)(${dirs.join('|')})\\x2F`,
  message,
});

const NO_CLI = forbid(['cli'], 'Library code never imports the CLI (src/cli): the CLI depends on the library, not the other way round.');

const pureCoreRules = {
  paths: impureModules.map((name) => ({ name, message: 'src/snapshot and proto are pure: no I/O, timers, logging or metrics.' })),
  forbid: [
    NO_CLI,
    { group: ['**/server/**', '**/client/**', '**/log*', '**/metrics*'], dynamic: '(^|\\x2F)(server|client)\\x2F|(^|\\x2F)(log|metrics)[^\\x2F]*$', message: 'The pure core may not depend on the server, client, logging or metrics.' },
  ],
  syntax: [
    { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Pure core: `new Date()` reads the clock; take the time as an argument.' },
    { selector: "CallExpression[callee.name='Date']", message: 'Pure core: `Date()` reads the clock.' },
  ],
};

/** Every boundary of the tree, as lint rules; test/architecture.test.ts proves each one fires. */
function boundaries() {
  const parts = [
    { name: 'library', files: ['src/**/*.ts'], ignores: ['src/cli/**'], forbid: [NO_CLI] },
    {
      name: 'client', files: ['src/client/**/*.ts'],
      forbid: [NO_CLI, forbid(['server', 'upstream', 'sim'], 'src/client stands alone: it speaks the protocol (proto/) and never imports the server, the upstream or the simulator.')],
    },
    {
      name: 'sim', files: ['src/sim/**/*.ts'],
      forbid: [NO_CLI, forbid(['server', 'client'], 'src/sim is a stand-alone API server: it never imports the Cattail server or client.')],
    },
    {
      name: 'server', files: ['src/server/**/*.ts'], ignores: [SIM_SEAM],
      forbid: [NO_CLI, forbid(['sim'], `The server loads the simulator only through ${SIM_SEAM} (--embedded-sim).`)],
    },
    {
      // The seam itself: the simulator by dynamic import() only (no static import, not even of types).
      name: 'sim seam', files: [SIM_SEAM],
      forbid: [NO_CLI, { ...forbid(['sim'], `${SIM_SEAM} loads the simulator lazily, with await import(), never with a static import.`), dynamic: undefined }],
    },
    { name: 'snapshot', files: ['src/snapshot/**/*.ts'], ...pureCoreRules },
    {
      name: 'proto', files: ['proto/**/*.ts'], ...pureCoreRules,
      forbid: [
        ...pureCoreRules.forbid,
        // The coded-error base class is the one exception (src/errors.ts imports nothing).
        { group: ['**/src/**', '!**/src/errors.js'], dynamic: '(^|\\x2F)src\\x2F', message: 'proto/ is the protocol alone: it imports nothing from src/ (but the coded-error base, src/errors.ts).' },
      ],
    },
  ];
  return parts.map(({ name, files, ignores, paths = [], forbid: rules, syntax = [] }) => ({
    name: `boundary: ${name}`,
    files,
    ...(ignores ? { ignores } : {}),
    rules: {
      'no-restricted-imports': ['error', { paths, patterns: rules.map(({ group, message }) => ({ group, message })) }],
      'no-restricted-syntax': ['error',
        ...syntax,
        ...rules.filter((r) => r.dynamic).flatMap(({ dynamic, message }) => [
          { selector: `ImportExpression[source.value=/${dynamic}/]`, message },
          { selector: `TSImportType[source.value=/${dynamic}/]`, message },
        ]),
      ],
    },
  }));
}

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
  // Boundaries between the parts of the tree, one config object per part (a file gets the rule
  // settings of the last object that matches it, so each part lists everything it may not import).
  ...boundaries(),
  {
    // The pure core: no I/O, no timers, no logging, no metrics, no clock reads.
    files: PURE_CORE,
    rules: {
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'performance', 'process', 'fetch', 'console']
          .map((name) => ({ name, message: `src/snapshot and proto are pure: '${name}' is not allowed (time is injected).` })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Pure core: take the time as an argument.' },
        { object: 'performance', property: 'now', message: 'Pure core: take the time as an argument.' },
        { object: 'process', property: 'hrtime', message: 'Pure core: take the time as an argument.' },
      ],
    },
  },
);
