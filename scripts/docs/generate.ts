/**
 * Generated documentation: docs/reference.md's option tables (one per command), the client README's
 * `connect()` option tables, and the error-code table come
 * from the code's own tables, between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`
 * markers. `npm run docs` rewrites them; test/docs.test.ts fails when a generated section drifts.
 */
import { COMMANDS } from '../../src/cli/commands.js';
import { showDefault } from '../../src/cli/help.js';
import type { OptionTable } from '../../src/config/options.js';
import { envName, flagName } from '../../src/config/options.js';
import { ERROR_CODES } from '../../src/errors.js';
import { connectOptions, tlsOptions } from '../../src/client/connect-options.js';
import { FanOutStats } from '../../src/server/fanout/stats.js';
import { registerConvergenceGauges } from '../../src/server/ops/convergence-metrics.js';
import { createMetrics, registerStateGauges } from '../../src/server/ops/metrics.js';
import { UpstreamMetrics } from '../../src/server/upstream/metrics.js';
import { warmStateMetrics } from '../../src/server/upstream/warm-state.js';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function optionTable(table: OptionTable): string {
  const rows = ['| option (file key) | flag | environment | default | unit | description |', '|---|---|---|---|---|---|'];
  for (const [name, spec] of Object.entries(table)) {
    const flag = spec.fileOnly ? '(file only)' : `\`--${flagName(name)}\`${spec.type === 'boolean' ? `, \`--no-${flagName(name)}\`` : ''}`;
    const env = spec.fileOnly ? '' : `\`${envName(name)}\``;
    const unit = spec.type === 'enum' ? (spec.values ?? []).join(' | ') : (spec.unit ?? '');
    rows.push(`| \`${name}\` | ${flag} | ${env} | \`${cell(showDefault(spec))}\` | ${cell(unit)} | ${cell(spec.help)} |`);
  }
  return rows.join('\n');
}

/** A library entry's options (function arguments: no flags or variables), e.g. `connect()`'s. */
export function libraryOptionTable(table: OptionTable, prefix = ''): string {
  const rows = ['| option | default | unit | description |', '|---|---|---|---|'];
  for (const [name, spec] of Object.entries(table)) {
    const unit = spec.type === 'enum' || (spec.type === 'list' && spec.values) ? (spec.values ?? []).join(' | ') : (spec.unit ?? '');
    rows.push(`| \`${prefix}${name}\` | \`${cell(showDefault(spec))}\` | ${cell(unit)} | ${cell(spec.help)} |`);
  }
  return rows.join('\n');
}

export function errorTable(): string {
  const rows = ['| code | exit | meaning |', '|---|---|---|'];
  for (const [code, { exit, text }] of Object.entries(ERROR_CODES)) rows.push(`| \`${code}\` | ${exit} | ${cell(text)} |`);
  return rows.join('\n');
}

/** The files, relative to the repository root, whose marked sections are generated. */
export const GENERATED_DOCS: readonly string[] = ['README.md', 'docs/reference.md', 'src/client/README.md'];

/**
 * The metrics `cattail serve` exports, from the metrics' own names, types, labels and help strings
 * (built without starting anything; prom-client's default process metrics are left out).
 */
export function metricsTable(): string {
  const rows = ['| metric | type | labels | meaning |', '|---|---|---|---|'];
  const server = createMetrics(new FanOutStats(), { defaultMetrics: false });
  // Registered by startServer beside the fan-out (they read its connections); no sources needed to list them.
  registerConvergenceGauges(server, { resources: () => [], connections: () => [], waiting: () => 0, checks: () => 0 });
  registerStateGauges(server, { connections: () => [], serviceQueueLength: () => 0, catchUpCache: () => ({ entries: 0, bytes: 0 }), handshakeQueueLength: () => 0, snapshotCache: () => ({ builds: 0, bytes: 0 }), snapshotPinned: () => ({ builds: 0, bytes: 0 }), transportWaiting: () => 0, inbound: () => ({ heldBytes: 0, holding: 0 }), ownFrames: { heldBytes: 0, refused: 0 }, feeds: [] });
  const upstream = new UpstreamMetrics();
  warmStateMetrics(upstream.registry);
  const registries = [server.registry, upstream.registry];
  const metrics = registries.flatMap((r) => r.getMetricsAsArray() as unknown as { name: string; type: string; labelNames?: readonly string[]; help: string }[]);
  for (const m of metrics.sort((a, b) => a.name.localeCompare(b.name))) {
    rows.push(`| \`${m.name}\` | ${m.type} | ${(m.labelNames ?? []).map((l) => `\`${l}\``).join(', ')} | ${cell(m.help)} |`);
  }
  return rows.join('\n');
}

/** Every generated section by name. */
export function generatedSections(): Record<string, string> {
  const out: Record<string, string> = { errors: errorTable(), metrics: metricsTable() };
  for (const c of COMMANDS) out[`options-${c.name}`] = optionTable(c.options);
  out['options-connect'] = libraryOptionTable(connectOptions);
  out['options-connect-tls'] = libraryOptionTable(tlsOptions, 'tls.');
  return out;
}

/** Replaces each marked section of `text` with its generated content; unknown markers are kept. */
export function renderGenerated(text: string, sections = generatedSections()): string {
  return text.replace(/<!-- generated:([\w-]+) -->\n[\s\S]*?<!-- \/generated:\1 -->/g, (whole, name: string) => {
    const body = sections[name];
    return body === undefined ? whole : `<!-- generated:${name} -->\n${body}\n<!-- /generated:${name} -->`;
  });
}
