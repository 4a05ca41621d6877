/**
 * The whole system as separate processes on loopback, for the convergence suite, the soak and
 * `cattail bench`:
 * the simulated API server (`cattail sim`), Cattail replicas (`cattail serve`), and agents (the
 * client library, in this process, so the oracle can read their state).
 *
 * Each run gets its own loopback address block (127.X.Y.0/24, X and Y from the seed), so replicas
 * keep their URL across restarts (a fixed port on their own address) and parallel test files
 * never collide. Every wait is bounded; every process is killed at the end.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { RESOURCES, collectionPath } from '../registry.js';
import { parseJson } from '../server/upstream/json.js';
import type { KubeObject } from '../server/upstream/types.js';

/** bin/cattail.js, found from src/bench (tests) or dist/src/bench (the built command). */
function findBin(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'bin', 'cattail.js');
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new Error('bin/cattail.js not found above ' + import.meta.dirname);
}
const BIN = findBin();

/**
 * The CPU to pin a process to with `taskset`, when the machine has it and more than one core:
 * server and load generators on different cores, so the load is not what is measured.
 */
export type Pin = number | undefined;

/**
 * Pins a running process (every thread: -a) to one CPU with `taskset`; false where that fails
 * (no taskset, not Linux). For processes forked from modules rather than started as `cattail`.
 */
export function pinProcess(pid: number, cpu: number): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function command(args: readonly string[], pin: Pin): [string, string[]] {
  if (pin !== undefined && existsSync('/usr/bin/taskset')) return ['/usr/bin/taskset', ['-c', String(pin), process.execPath, BIN, ...args]];
  return [process.execPath, [BIN, ...args]];
}
const START_TIMEOUT_MS = 30_000;
const AGENT_PORT = 15473;
const HTTP_PORT = 19093;
const HEALTH_PORT = 19098;
/** Tries of a replica's first start when its address is in use (ReplicaProc.start). */
const FIRST_START_ATTEMPTS = 3;

/** `ss`'s lines for TCP sockets on `host` with their processes, for a diagnostic ('' without ss). */
function socketsOn(host: string): string {
  try {
    return execFileSync('ss', ['-tanp'], { encoding: 'utf8', timeout: 5_000 }).split('\n').filter((l) => l.includes(`${host}:`)).join('\n');
  } catch {
    return '(ss not available)';
  }
}

export interface Proc {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<number | null>;
}

/** Starts `cattail ARGS…` and resolves once `ready` matches its output (stdout or stderr). */
async function spawnCattail(args: readonly string[], ready: RegExp, timeoutMs = START_TIMEOUT_MS, pin?: Pin): Promise<Proc & { match: RegExpExecArray }> {
  const [cmd, argv] = command(args, pin);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cattail ${args[0]} not ready within ${timeoutMs} ms:\n${out.slice(-4000)}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.length > 1_000_000) out = out.slice(-500_000); // bounded: only the tail is ever shown
      const m = ready.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`cattail ${args[0]} exited ${code} before it was ready:\n${out.slice(-4000)}`));
    });
  });
  return { child, output: () => out, exited, match };
}

/** The loopback block of one run: 127.X.Y.Z for Z = 1 (sim) and 10+i (replica i). */
export function loopbackBlock(seed: number): (host: number) => string {
  const x = 100 + (seed % 100);
  const y = Math.floor(seed / 100) % 250;
  return (host) => `127.${x}.${y}.${host}`;
}

export class SimProc {
  /** With `haLagRvs`: a kubeconfig for the round-robin port over the leader and its lagging follower. */
  haKubeconfig: string | undefined;

  private constructor(
    readonly proc: Proc,
    readonly url: string,
    readonly kubeconfig: string,
    private readonly dir: string,
  ) {}

  static async start(o: { host: string; nodes: number; podsPerNode: number; seed: number; pin?: Pin; haLagRvs?: number }): Promise<SimProc> {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-conv-'));
    const kubeconfig = join(dir, 'kubeconfig');
    const p = await spawnCattail(
      ['sim', '--port', '0', '--nodes', String(o.nodes), '--pods-per-node', String(o.podsPerNode), '--seed', String(o.seed), '--churn', '0', '--kubeconfig', kubeconfig, '--bookmark-interval-ms', '1000', '--log-level', 'warn',
        ...(o.haLagRvs !== undefined ? ['--ha-lag-rvs', String(o.haLagRvs)] : [])],
      /listening (http:\/\/\S+)/,
      // Generating a 150,000-pod cluster takes a while on a shared 2-core machine.
      Math.max(START_TIMEOUT_MS, o.nodes * o.podsPerNode * 2),
      o.pin,
    );
    const sim = new SimProc(p, p.match[1] as string, kubeconfig, dir);
    if (o.haLagRvs !== undefined) {
      // The same kubeconfig (credentials, TLS) with the round-robin port as the server: what a
      // client behind a load balancer over an HA control plane sees.
      const { roundRobinUrl } = await sim.admin<{ roundRobinUrl: string }>('GET', '/ha');
      sim.haKubeconfig = join(dir, 'kubeconfig-ha');
      writeFileSync(sim.haKubeconfig, readFileSync(kubeconfig, 'utf8').split(sim.url).join(roundRobinUrl));
    }
    return sim;
  }

  /**
   * One admin request. While the simulator restarts (a fault of its own) it refuses connections
   * for a moment: a connection failure is retried for up to five seconds.
   */
  async admin<T = unknown>(method: string, path: string, body?: unknown, retry = true): Promise<T> {
    if (!retry) return this.adminOnce<T>(method, path, body);
    const deadline = Date.now() + 5_000;
    for (;;) {
      try {
        return await this.adminOnce<T>(method, path, body);
      } catch (err) {
        if (!(err instanceof TypeError) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async adminOnce<T>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await fetch(`${this.url}/_sim${path}`, { method, ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
    const text = await r.text();
    if (!r.ok) throw new Error(`sim admin ${method} ${path}: ${r.status} ${text}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * Every object of a resource, by a plain LIST (what any client would see now), or its first
   * `limit` objects (one page). A whole LIST of a big cluster's pods does not fit one string
   * (about 6 KB of JSON per pod: past ~85,000 pods it exceeds V8's 512 MiB string limit and the
   * benchmark died right after its cold start); callers that need a sample ask for a page.
   */
  async list(resourceId: string, limit?: number): Promise<KubeObject[]> {
    const def = RESOURCES.find((r) => r.id === resourceId);
    if (def === undefined) throw new Error(`unknown resource ${resourceId}`);
    const url = `${this.url}${collectionPath(def)}${limit !== undefined ? `?limit=${limit}` : ''}`;
    // The simulator may be throttling (a 429 fault of the timeline) or restarting: retry briefly.
    const deadline = Date.now() + 15_000;
    let r = await fetch(url).catch(() => undefined);
    while ((r === undefined || r.status === 429 || r.status >= 500) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 250));
      r = await fetch(url).catch(() => undefined);
    }
    if (r === undefined) throw new Error(`LIST ${resourceId}: no answer`);
    if (r.status === 404) return [];
    if (!r.ok) throw new Error(`LIST ${resourceId}: ${r.status}`);
    // The upstream's own parser: integers above 2^53 (IPAM sequence numbers) stay exact strings.
    return (parseJson(await r.text()) as { items: KubeObject[] }).items;
  }

  /** CPU seconds (user + system) the simulator has used (Linux /proc; 0 elsewhere). */
  cpuSeconds(): number {
    return processCpuSeconds(this.proc.child.pid);
  }

  async stop(): Promise<void> {
    this.proc.child.kill('SIGKILL');
    await this.proc.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class ReplicaProc {
  private proc: Proc | undefined;
  /** Times this replica was started. */
  starts = 0;
  /** Spawns its first start took (more than 1: its address was in use, see start()). */
  firstStartAttempts = 0;

  constructor(
    readonly name: string,
    readonly host: string,
    private readonly kubeconfig: string,
    private readonly feeds: readonly string[],
    private readonly extraArgs: readonly string[] = [],
    private readonly pin: Pin = undefined,
    /** `--state-dir` of the replica (warm restarts), checkpointing every 5 s. Unset: none. */
    readonly stateDir?: string,
  ) {}

  /** Current values of the replica's metrics, summed over labels: `name → value`. */
  async metrics(): Promise<Map<string, number>> {
    return scrape(`${this.httpUrl}/metrics`);
  }

  /** One metric's values by label set (`code="4005"` → value), for counters split by label. */
  async metricByLabel(name: string): Promise<Record<string, number>> {
    const text = await (await fetch(`${this.httpUrl}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      if (!line.startsWith(`${name}{`)) continue;
      const m = /^[^{]+\{([^}]*)\}\s+(\S+)/.exec(line);
      if (m !== null) out[m[1] as string] = Number(m[2]);
    }
    return out;
  }

  /** Resolves once /readyz answers 200 (the upstream is in sync), or throws after `timeoutMs`. */
  async ready(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await fetch(`${this.httpUrl}/readyz`).catch(() => undefined);
      if (r?.status === 200) return;
      if (Date.now() > deadline) throw new Error(`replica ${this.name} not ready within ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  get pid(): number | undefined {
    return this.proc?.child.pid;
  }

  get url(): string {
    return `ws://${this.host}:${AGENT_PORT}/`;
  }

  get httpUrl(): string {
    return `http://${this.host}:${HTTP_PORT}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.child.exitCode === null && this.proc.child.signalCode === null;
  }

  /**
   * Starts the replica on its fixed address. A FIRST start that finds its address in use is tried
   * again, at most FIRST_START_ATTEMPTS times a second apart, after printing who holds the port:
   * once in a full test run a first start met EADDRINUSE on a port of its own address block that
   * nothing held five minutes later (cause not found). A restart is never retried: there it would
   * hide a replica that did not release its port.
   */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.starts === 0) this.firstStartAttempts = attempt;
      try {
        this.proc = await spawnCattail(
          ['serve', '--kubeconfig', this.kubeconfig, '--listen', `${this.host}:${AGENT_PORT}`, '--http-listen', `${this.host}:${HTTP_PORT}`, '--health-listen', `${this.host}:${HEALTH_PORT}`, '--server-id', this.name, '--feeds', this.feeds.join(','), '--log-level', 'warn', ...this.extraArgs,
            ...(this.stateDir !== undefined ? ['--state-dir', this.stateDir, '--state-checkpoint-interval-ms', '5000'] : [])],
          /connect an agent with/,
          START_TIMEOUT_MS,
          this.pin,
        );
        this.starts++;
        return;
      } catch (err) {
        if (this.starts > 0 || attempt >= FIRST_START_ATTEMPTS || !/EADDRINUSE/.test(String(err))) throw err;
        process.stderr.write(`replica ${this.name}: ${this.host} port in use at first start (attempt ${attempt}); sockets on it:\n${socketsOn(this.host)}\n`);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }

  /** Highest resident set of any process this replica ran, in MB (Linux: VmHWM). */
  peakRssMb = 0;
  /** Most open file descriptors seen at a sample (Linux: /proc/<pid>/fd). */
  peakFds = 0;

  /** Samples the resident-set high-water mark and the open file descriptors. */
  sampleRss(): void {
    const pid = this.proc?.child.pid;
    if (pid === undefined) return;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m !== null) this.peakRssMb = Math.max(this.peakRssMb, Math.round(Number(m[1]) / 1024));
      this.peakFds = Math.max(this.peakFds, readdirSync(`/proc/${pid}/fd`).length);
    } catch {
      // not Linux, or already gone
    }
  }

  /** CPU seconds (user + system) the replica's current process has used (Linux /proc; 0 elsewhere). */
  cpuSeconds(): number {
    return processCpuSeconds(this.proc?.child.pid);
  }

  /** Sends `signal` without waiting (a first SIGTERM starts the drain; kill() waits for the exit). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.proc?.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; the exit code (SIGKILL: -1). */
  async kill(signal: NodeJS.Signals): Promise<number | null> {
    const p = this.proc;
    if (p === undefined || !this.running) return null;
    this.sampleRss();
    p.child.kill(signal);
    const code = await Promise.race([p.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000).unref())]);
    if (code === 'timeout') {
      p.child.kill('SIGKILL');
      return p.exited;
    }
    return code;
  }

  output(): string {
    return this.proc?.output() ?? '';
  }

  /** The replica's process exited without being told to (a crash). */
  get crashed(): boolean {
    return this.proc !== undefined && this.proc.child.exitCode !== null && this.proc.child.exitCode !== 0 && this.proc.child.signalCode === null;
  }
}

/**
 * CPU seconds of a process from /proc/PID/stat (utime + stime, fields 14 and 15, in clock ticks
 * of 1/100 s on Linux), for processes that expose no metrics of their own (the simulator) or
 * that may be unresponsive when asked. 0 where /proc is missing.
 */
export function processCpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** Prometheus text → `name → value` summed over label sets (comments and histograms' _bucket skipped). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null || (m[1] as string).endsWith('_bucket')) continue;
    out.set(m[1] as string, (out.get(m[1] as string) ?? 0) + Number(m[2]));
  }
  return out;
}

/** What an agent worker (`cattail agent --agents N --discard --json`) last reported. */
export interface WorkerStatus {
  final?: boolean;
  agents: number;
  inSync: number;
  frames: number;
  bytes: number;
  reconnects: number;
  snapshots: number;
  resumes: number;
  violations: number;
  minTrackedRv?: number;
  modes?: Record<string, number>;
  framesPerSec?: number;
  arrivals?: Record<string, [number, number, number]>;
  /** With impairments: per group (normal, slow, stalled). */
  groups?: Record<string, { agents: number; inSync: number; snapshots: number; resumes: number; reconnects: number; impaired: number; closeCodes: Record<string, number> }>;
}

/** Slow and stalled agents of a worker (`cattail agent --slow-agents-percent …`). */
export interface WorkerImpairments {
  readonly slowAgentsPercent: number;
  readonly slowReadBytesPerSec: number;
  readonly stalledAgentsPercent: number;
  readonly stallMs: number;
}

/** A process playing many discard-mode agents, with the latency probe on one resource. */
export class AgentWorker {
  last: WorkerStatus | undefined;
  private final: WorkerStatus | undefined;

  private constructor(readonly proc: Proc) {}

  static async start(o: { servers: readonly string[]; feeds: readonly string[]; agents: number; nodePrefix: string; durationMs: number; trackResource?: string; pin?: Pin; connectRatePerSec?: number; impairments?: WorkerImpairments }): Promise<AgentWorker> {
    const imp = o.impairments;
    const args = ['agent', '--agents', String(o.agents), '--discard', '--json', '--status-interval-ms', '250', '--duration-ms', String(o.durationMs), '--node-prefix', o.nodePrefix,
      '--connect-rate-per-sec', String(o.connectRatePerSec ?? 0), ...o.servers.flatMap((u) => ['--server', u]), ...o.feeds.flatMap((f) => ['--feed', f]),
      ...(o.trackResource !== undefined ? ['--track-resource', o.trackResource] : []),
      ...(imp !== undefined ? ['--slow-agents-percent', String(imp.slowAgentsPercent), '--slow-read-bytes-per-sec', String(imp.slowReadBytesPerSec), '--stalled-agents-percent', String(imp.stalledAgentsPercent), '--stall-ms', String(imp.stallMs)] : [])];
    const p = await spawnCattail(args, /"agents":/, START_TIMEOUT_MS, o.pin);
    const w = new AgentWorker(p);
    let buf = '';
    p.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        try {
          const st = JSON.parse(line) as WorkerStatus;
          w.last = st;
          if (st.final === true) w.final = st;
        } catch {
          // a partial or foreign line: the next status line replaces it
        }
      }
    });
    return w;
  }

  /** Every agent of this worker drops its connection (SIGUSR1). */
  blip(): void {
    this.proc.child.kill('SIGUSR1');
  }

  /** Stops the worker (SIGTERM) and returns its final report. */
  async stop(): Promise<WorkerStatus | undefined> {
    this.proc.child.kill('SIGTERM');
    await Promise.race([this.proc.exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
    if (this.proc.child.exitCode === null) this.proc.child.kill('SIGKILL');
    return this.final ?? this.last;
  }
}
