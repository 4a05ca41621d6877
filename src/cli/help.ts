import type { OptionSpec, OptionTable } from '../config/options.js';
import { envName, flagName } from '../config/options.js';
import type { Command } from './commands.js';
import { COMMANDS } from './commands.js';

export function showDefault(spec: OptionSpec<unknown>): string {
  const d = spec.default;
  if (spec.required) return '(required)';
  if (d === undefined) return '(unset)';
  if (Array.isArray(d)) return d.length === 0 ? '(none)' : d.join(',');
  if (typeof d === 'number') return Number.isInteger(d) && Math.abs(d) >= 10_000 ? d.toLocaleString('en-US').replace(/,/g, '_') : String(d);
  if (typeof d === 'object') return JSON.stringify(d);
  return String(d);
}

export function mainHelp(version: string): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `cattail ${version}: a Typha-style fan-out cache for Kubernetes`,
    '',
    'Usage: cattail <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --help, --config FILE (YAML or JSON) and --print-config.',
    'Options are read from flags, then CATTAIL_* environment variables, then the config file, then defaults.',
    '',
    '  cattail --version    print the version',
    '',
  ].join('\n');
}

export function commandHelp(cmd: Command): string {
  const table: OptionTable = cmd.options;
  const lines = [`Usage: ${cmd.usage}`, '', cmd.summary, '', 'Options:'];
  for (const [name, spec] of Object.entries(table)) {
    // A boolean flag takes no value, so its off form is shown beside it (`--watch-list false` is an error).
    const value = spec.type === 'boolean' ? `, --no-${flagName(name)}` : ' <' + (spec.type === 'enum' ? (spec.values ?? []).join('|') : spec.unit ?? spec.type) + '>';
    const flag = spec.fileOnly ? `(config file) ${name}` : `--${flagName(name)}${value}`;
    lines.push(`  ${flag}`);
    lines.push(`      ${spec.help}`);
    lines.push(`      default: ${showDefault(spec)}${spec.fileOnly ? '' : `   env: ${envName(name)}`}`);
  }
  lines.push('  --config <file>', '      YAML or JSON file of option values (camelCase keys).   env: CATTAIL_CONFIG');
  lines.push('  --print-config', '      Print the effective configuration (secrets redacted) with each value\'s source, and exit.');
  lines.push('');
  return lines.join('\n');
}
