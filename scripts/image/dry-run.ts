/**
 * Runs the Dockerfile's own commands outside Docker (`npm run image:dry-run`; CI runs it).
 *
 * Our machines have no Docker engine, so the image is checked the next best way: the build
 * context is made exactly as Docker would (the repository's files that .dockerignore lets through,
 * matched by @balena/dockerignore, a port of Docker's own matcher), then every stage's WORKDIR,
 * COPY, ENV and RUN is carried out in a scratch directory standing in for the stage's filesystem,
 * and the final ENTRYPOINT is started as uid 1000 on a read-only copy of the app:
 *   1. with the image's CMD replaced by loopback ports and `--embedded-sim`: it must become ready
 *      (/readyz 200) and exit 0 on SIGTERM;
 *   2. with no upstream configured: it must refuse to start with CATTAIL_SERVE_NO_UPSTREAM_CONFIG
 *      (the image never falls back to simulated data).
 * What it cannot check: the base image itself (the host's Node stands in for it) and Docker's
 * layer semantics. Every wait is bounded; the script stops by itself.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { createRequire } from 'node:module';
import type { Ignore } from '@balena/dockerignore';
import { execForm, parseDockerfile, stages, substitute } from './dockerfile.js';

// The package is CommonJS whose typings declare an ES default export; require() gives the factory.
const dockerignore = createRequire(import.meta.url)('@balena/dockerignore') as (options?: { ignorecase?: boolean }) => Ignore;
const repo = join(import.meta.dirname, '..', '..');
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

function log(line: string): void {
  process.stdout.write(`image dry-run: ${line}\n`);
}

/** The build context: tracked and untracked-but-not-gitignored files that .dockerignore admits. */
function makeContext(dir: string): number {
  const ig = dockerignore({ ignorecase: false }).add(readFileSync(join(repo, '.dockerignore'), 'utf8'));
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: repo, encoding: 'utf8' }).split('\0').filter((f) => f !== '');
  let n = 0;
  for (const f of files) {
    if (ig.ignores(f)) continue;
    let isFile = false;
    try {
      isFile = statSync(join(repo, f)).isFile();
    } catch {
      continue; // deleted in the working tree
    }
    if (!isFile) continue;
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    cpSync(join(repo, f), join(dir, f));
    n++;
  }
  return n;
}

/** Maps an absolute path inside a stage to the scratch directory standing in for its filesystem. */
function inStage(root: string, workdir: string, p: string): string {
  return p.startsWith('/') ? join(root, p) : join(root, workdir, p);
}

function copyInto(src: string, dest: string): void {
  const st = statSync(src);
  if (st.isDirectory()) {
    mkdirSync(dest, { recursive: true });
    for (const e of readdirSync(src)) cpSync(join(src, e), join(dest, e), { recursive: true });
  } else {
    mkdirSync(dest.endsWith('/') ? dest : dirname(dest), { recursive: true });
    cpSync(src, dest.endsWith('/') ? join(dest, src.split('/').at(-1) as string) : dest);
  }
}

interface Built {
  readonly root: string;
  readonly workdir: string;
  readonly env: Record<string, string>;
  readonly entrypoint: string[];
  readonly cmd: string[];
  readonly user: string | undefined;
}

function build(context: string, scratch: string): Built {
  const st = stages(parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8')));
  const roots = new Map<string, string>();
  let last: Built | undefined;
  st.forEach((stage, i) => {
    const root = join(scratch, `stage-${i}`);
    mkdirSync(root, { recursive: true });
    if (stage.name !== undefined) roots.set(stage.name, root);
    let workdir = '/';
    const env: Record<string, string> = {};
    const args = new Map<string, string>();
    let entrypoint: string[] = [];
    let cmd: string[] = [];
    let user: string | undefined;
    log(`stage ${stage.name ?? i} (FROM ${stage.image}: the host's node ${process.version} stands in)`);
    for (const ins of stage.instructions) {
      const text = substitute(ins.args, new Map([...args, ...Object.entries(env)]));
      switch (ins.op) {
        case 'ARG': {
          const [k, v] = text.split('=', 2) as [string, string | undefined];
          args.set(k.trim(), (v ?? '').trim());
          break;
        }
        case 'ENV': {
          const [k, v] = text.split('=', 2) as [string, string | undefined];
          env[k.trim()] = (v ?? '').trim();
          break;
        }
        case 'WORKDIR':
          workdir = text;
          mkdirSync(inStage(root, '/', workdir), { recursive: true });
          break;
        case 'COPY': {
          const words = text.split(/\s+/);
          const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
          const paths = words.filter((w) => !w.startsWith('--'));
          const dest = paths.pop() as string;
          const srcRoot = from === undefined ? context : (roots.get(from) ?? (() => { throw new Error(`COPY --from=${from}: no such stage`); })());
          for (const p of paths) {
            const src = from === undefined ? join(context, p) : inStage(srcRoot, '/', p);
            const target = inStage(root, workdir, dest);
            copyInto(src, dest.endsWith('/') || paths.length > 1 ? `${target}/` : target);
          }
          log(`  COPY ${text}`);
          break;
        }
        case 'RUN':
          log(`  RUN ${text}`);
          // The image's own npm cache, not the host's (`npm cache clean` in a RUN must not empty it).
          execFileSync('/bin/sh', ['-c', text], { cwd: inStage(root, '/', workdir), stdio: 'inherit', env: { ...process.env, npm_config_cache: join(scratch, 'npm-cache'), ...env } });
          break;
        case 'USER':
          user = text;
          break;
        case 'ENTRYPOINT':
          entrypoint = execForm(text) ?? ['/bin/sh', '-c', text];
          break;
        case 'CMD':
          cmd = execForm(text) ?? ['/bin/sh', '-c', text];
          break;
        default:
          break; // LABEL, EXPOSE: metadata only
      }
    }
    last = { root, workdir, env, entrypoint, cmd, user };
  });
  if (last === undefined) throw new Error('Dockerfile has no stages');
  return last;
}

function start(img: Built, extraArgs: readonly string[]): ChildProcess {
  // Absolute paths in ENTRYPOINT point into the image: map them into the stage directory.
  const argv = [...img.entrypoint, ...extraArgs].map((a) => (a.startsWith('/') && !a.startsWith('/bin/') && !a.startsWith('/usr/') ? inStage(img.root, '/', a) : a));
  const [uid, gid] = (img.user ?? '0').split(':');
  const wrapped = process.getuid?.() === 0 ? ['setpriv', `--reuid=${uid}`, `--regid=${gid ?? uid}`, '--clear-groups', ...argv] : argv;
  log(`start ${relative(img.root, argv[1] ?? '')} ${extraArgs.join(' ')} (as ${process.getuid?.() === 0 ? `uid ${uid}` : 'the current user'})`);
  const cmd = wrapped[0] === 'node' ? process.execPath : (wrapped[0] as string);
  const rest = wrapped.slice(1).map((a) => (a === 'node' ? process.execPath : a));
  return spawn(cmd, rest, { cwd: inStage(img.root, '/', img.workdir), env: { PATH: process.env['PATH'] ?? '', ...img.env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

function collect(child: ChildProcess): { text: () => string; exited: Promise<number | null> } {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { text: () => out, exited };
}

async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

async function checkServesEmbedded(img: Built): Promise<void> {
  const child = start(img, ['--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--health-listen', '127.0.0.1:0', '--embedded-sim']);
  const out = collect(child);
  try {
    const httpUrl = await within(START_TIMEOUT_MS, 'the banner naming the HTTP port', (async () => {
      for (;;) {
        const m = /\/readyz on (http:\S+)/.exec(out.text());
        if (m !== null) return m[1] as string;
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode} before listening:\n${out.text()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    })());
    await within(START_TIMEOUT_MS, '/readyz 200', (async () => {
      for (;;) {
        const r = await fetch(`${httpUrl}/readyz`).catch(() => undefined);
        if (r?.status === 200) return;
        await new Promise((res) => setTimeout(res, 200));
      }
    })());
    log(`ready at ${httpUrl}/readyz; sending SIGTERM`);
    child.kill('SIGTERM');
    const code = await within(STOP_TIMEOUT_MS, 'exit after SIGTERM', out.exited);
    if (code !== 0) throw new Error(`exited ${code} after SIGTERM:\n${out.text()}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function checkRefusesWithoutUpstream(img: Built): Promise<void> {
  const child = start(img, img.cmd);
  const out = collect(child);
  const code = await within(START_TIMEOUT_MS, 'exit without an upstream', out.exited);
  if (code === 0 || !out.text().includes('CATTAIL_SERVE_NO_UPSTREAM_CONFIG')) throw new Error(`expected CATTAIL_SERVE_NO_UPSTREAM_CONFIG and a non-zero exit, got ${code}:\n${out.text()}`);
  log(`without an upstream: exit ${code}, CATTAIL_SERVE_NO_UPSTREAM_CONFIG (no fallback to simulated data)`);
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'cattail-image-'));
  // mkdtemp makes it 0700: the unprivileged user the image runs as must be able to enter it.
  chmodSync(scratch, 0o755);
  try {
    const context = join(scratch, 'context');
    mkdirSync(context);
    log(`build context: ${makeContext(context)} files admitted by .dockerignore`);
    const img = build(context, scratch);
    // Read-only root filesystem: nothing under the app may be written at run time.
    execFileSync('chmod', ['-R', 'a-w', img.root]);
    try {
      await checkServesEmbedded(img);
      await checkRefusesWithoutUpstream(img);
    } finally {
      chmodSync(img.root, 0o755);
      execFileSync('chmod', ['-R', 'u+w', img.root]);
    }
    log('ok');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`image dry-run FAILED: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
