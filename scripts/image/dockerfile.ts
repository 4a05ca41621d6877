/**
 * A small Dockerfile reader and linter for our own Dockerfile.
 *
 * hadolint is not packaged in the registries our machines reach (Debian, npm), so the rules that
 * matter for this image are checked here, each with a test that proves it fires
 * (test/deploy/dockerfile.test.ts). The parser handles what Dockerfiles of this shape use:
 * comments, line continuations, parser directives, ARG substitution in FROM, and JSON (exec) or
 * shell forms. It is not a general Dockerfile implementation (no heredocs, no ONBUILD).
 */

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  readonly op: string;
  /** The rest of the instruction, continuation lines joined with a space. */
  readonly args: string;
  /** 1-based line of the keyword. */
  readonly line: number;
}

export interface Stage {
  readonly name: string | undefined;
  readonly image: string;
  readonly line: number;
  readonly instructions: readonly Instruction[];
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] as string).trim();
    if (line === '' || line.startsWith('#')) continue;
    const start = i + 1;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd();
      i++;
      const next = (lines[i] as string).trim();
      if (next.startsWith('#')) continue;
      line += ` ${next}`;
    }
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    out.push({ op: (m[1] as string).toUpperCase(), args: (m[2] as string).trim(), line: start });
  }
  return out;
}

/** Global ARG defaults (those before the first FROM), used to resolve `FROM ${NODE_IMAGE}`. */
function globalArgs(instructions: readonly Instruction[]): Map<string, string> {
  const args = new Map<string, string>();
  for (const ins of instructions) {
    if (ins.op === 'FROM') break;
    if (ins.op !== 'ARG') continue;
    const [name, value] = ins.args.split('=', 2) as [string, string | undefined];
    if (value !== undefined) args.set(name.trim(), value.trim());
  }
  return args;
}

export function substitute(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => vars.get((a ?? b) as string) ?? whole);
}

export function stages(instructions: readonly Instruction[]): Stage[] {
  const args = globalArgs(instructions);
  const out: { name: string | undefined; image: string; line: number; instructions: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      out.push({ image: substitute(m?.[1] ?? ins.args, args), name: m?.[2], line: ins.line, instructions: [] });
    } else {
      out.at(-1)?.instructions.push(ins);
    }
  }
  return out;
}

/** The words of an exec-form (JSON array) instruction, or undefined for the shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(args);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface Finding {
  readonly rule: string;
  readonly line: number;
  readonly message: string;
}

const REQUIRED_LABELS = ['org.opencontainers.image.title', 'org.opencontainers.image.version', 'org.opencontainers.image.revision', 'org.opencontainers.image.licenses'];

/** The rules: each names a failure that has bitten real images. An empty list means the file passes. */
export function lintDockerfile(text: string): Finding[] {
  const all = parseDockerfile(text);
  const found: Finding[] = [];
  const add = (rule: string, line: number, message: string): void => void found.push({ rule, line, message });
  const st = stages(all);
  if (st.length === 0) add('no-from', 1, 'no FROM instruction');
  const names = new Set(st.map((s) => s.name).filter((n): n is string => n !== undefined));
  for (const s of st) {
    // A floating tag changes the runtime under a fixed Dockerfile; a digest or a version tag does not.
    if (!/[:@]/.test(s.image) || /:latest$/.test(s.image)) add('pinned-base', s.line, `base image ${s.image} has no version tag (or uses :latest)`);
    for (const ins of s.instructions) {
      if (ins.op === 'ADD' && !/^https?:/.test(ins.args)) add('copy-not-add', ins.line, 'use COPY for local files; ADD also unpacks archives and fetches URLs');
      if (ins.op === 'RUN' && /\bnpm (install|i)\b/.test(ins.args)) add('npm-ci', ins.line, '`npm install` may change the lock file; use `npm ci` for reproducible installs');
      if (ins.op === 'RUN' && /\bapt-get install\b/.test(ins.args) && !/--no-install-recommends/.test(ins.args)) add('apt-no-recommends', ins.line, 'apt-get install without --no-install-recommends');
      if (ins.op === 'RUN' && /\bsudo\b/.test(ins.args)) add('no-sudo', ins.line, 'sudo in a Dockerfile: use USER');
      if (ins.op === 'WORKDIR' && !ins.args.startsWith('/')) add('absolute-workdir', ins.line, `WORKDIR ${ins.args} is relative`);
      if (ins.op === 'COPY') {
        const from = /--from=(\S+)/.exec(ins.args)?.[1];
        if (from !== undefined && !names.has(from) && !/[:/]/.test(from)) add('copy-from-stage', ins.line, `COPY --from=${from} names no earlier stage`);
      }
    }
  }
  const final = st.at(-1);
  if (final !== undefined) {
    const users = final.instructions.filter((i) => i.op === 'USER');
    const lastUser = users.at(-1)?.args;
    if (lastUser === undefined || /^(root|0)(:|$)/.test(lastUser)) add('non-root', final.line, 'the final stage must switch to a non-root USER');
    const entry = final.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    if (entry === undefined) add('entrypoint', final.line, 'the final stage has no ENTRYPOINT');
    // Shell form runs under /bin/sh -c, which does not forward SIGTERM: the drain would never start.
    else if (execForm(entry.args) === undefined) add('exec-form', entry.line, 'ENTRYPOINT must use the exec (JSON) form so SIGTERM reaches the process');
    const cmd = final.instructions.filter((i) => i.op === 'CMD').at(-1);
    if (cmd !== undefined && execForm(cmd.args) === undefined) add('exec-form', cmd.line, 'CMD must use the exec (JSON) form');
    const labels = final.instructions.filter((i) => i.op === 'LABEL').map((i) => i.args).join(' ');
    for (const l of REQUIRED_LABELS) if (!labels.includes(`${l}=`)) add('oci-labels', final.line, `the final stage lacks LABEL ${l}`);
  }
  return found;
}
