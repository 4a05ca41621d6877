/**
 * `cattail agent`: a node agent built on the client library. It keeps the requested feeds, prints
 * snapshot progress while they load, then a live one-line status (revision, objects per feed, lag,
 * reconnects); `--once` exits as soon as every feed is in sync (after writing `--dump`).
 *
 * It is also the library's first user, so it uses only the public surface (./index.js).
 * Output goes to stdout (status is the command's product); nothing is logged.
 */
import { type Stats, type WriteStream, constants as fsConstants, accessSync, createWriteStream, openSync, statSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { CommandContext } from './commands.js';
import { realClock, type Clock, type Timer } from '../clock.js';
import { type ConfigOf, flagName } from '../config/options.js';
import { selectOptions } from '../config/resolve.js';
import { CattailError, ConfigError } from '../errors.js';
import { attachSyncer, connect, tlsOptions, type Client, type SnapshotProgress, type StatusEvent } from '../client/index.js';
import type { agentOptions } from '../client/options.js';
import { resolveDiscoveryAccess } from '../client/discovery-access.js';

export type AgentConfig = ConfigOf<typeof agentOptions>;

export interface AgentDeps {
  clock?: Clock;
}

/** Progress lines per feed at most this often while a snapshot loads, in ms. */
const PROGRESS_INTERVAL_MS = 500;

export async function runAgent(config: AgentConfig, ctx: CommandContext, deps: AgentDeps = {}): Promise<number> {
  const clock = deps.clock ?? realClock;
  if (config.server.length === 0 && config.service === undefined) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', 'give the replicas with --server URL (repeatable) or discover them with --service NAMESPACE/NAME', { details: { option: 'server' } });
  }
  if (config.agents > 1 || config.discard) {
    if (config.server.length === 0) {
      // The load agents are for benchmarks on loopback: they take explicit URLs, not a Service.
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', '--agents and --discard need --server URLs (--service discovery is for a single full agent)', { details: { option: 'service' } });
    }
    if (config.once || config.dump !== undefined) {
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', 'options --once and --dump apply to a single full agent, not to --agents or --discard', { details: { option: config.once ? 'once' : 'dump' } });
    }
    // The load agents are plain ws:// agents named by --node-prefix: options they would not use
    // are refused, not silently dropped (a wss:// fleet failed TLS with no hint why).
    const unused = (['service', 'stateDir', 'node', 'kubeconfig', ...Object.keys(tlsOptions)] as const).filter((o) => (config as Record<string, unknown>)[o] !== undefined);
    if (unused.length > 0) {
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `--agents and --discard run plain load agents; ${unused.map((o) => `--${flagName(o)}`).join(', ')} would not be used (name them with --node-prefix; TLS, state and discovery are for a single full agent)`, { details: { option: unused[0] } });
    }
    const { runFleet } = await import('./agent-fleet.js');
    return runFleet(config, ctx, clock);
  }
  // Before connecting: a dump that cannot be written would otherwise fail only after a full sync.
  if (config.dump !== undefined) checkDumpPath(config.dump, config.dumpFormat);
  // And a --service without a usable kube config would fail every discovery, retried forever.
  if (config.service !== undefined) await resolveDiscoveryAccess(config.kubeconfig, ctx.env, '--server URL');
  const tls = selectOptions(tlsOptions, config);
  let client: Client;
  try {
    client = connect({
      endpoints: config.server,
      ...(config.service !== undefined ? { service: config.service, servicePortName: config.servicePortName } : {}),
      ...(config.kubeconfig !== undefined ? { kubeconfig: config.kubeconfig } : {}),
      ...(config.stateDir !== undefined ? { stateDir: config.stateDir, checkpointIntervalMs: config.checkpointIntervalMs, checkpointIoMaxMs: config.checkpointIoMaxMs } : {}),
      feeds: config.feed,
      node: config.node ?? hostname(),
      tls,
      reconnectMaxDelayMs: config.reconnectMaxDelayMs,
      clock,
    });
  } catch (err) {
    // Option errors of the library name library options; re-word them as the command's.
    if (CattailError.is(err) && err.code === 'CATTAIL_INVALID_ARGUMENT') {
      throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `invalid agent options: ${err.message}`, { cause: err });
    }
    throw err;
  }
  const out = new Output(ctx, config, client, clock);
  out.start();
  // --dump-format syncer: the Felix-style KV stream, from the first status on.
  let kvLog: SyncerLog | undefined;
  try {
    kvLog = config.dump !== undefined && config.dumpFormat === 'syncer' ? new SyncerLog(client, config.dump, (err) => out.problem(err)) : undefined;
  } catch (err) {
    out.stop();
    client.destroy();
    throw err;
  }
  const stateDump = kvLog === undefined ? config.dump : undefined;
  // One dump at a time: the one taken at the first sync may still be writing when the signal's
  // comes, and both write the same temporary file.
  let dumping: Promise<void> = Promise.resolve();
  const dump = (file: string): Promise<void> => (dumping = dumping.catch(() => undefined).then(() => writeDump(client, file)));
  try {
    if (config.once) {
      await waitInSync(client, config.timeoutMs, clock, ctx.signal);
      if (stateDump !== undefined) await dump(stateDump);
      await kvLog?.close();
      out.line(true);
      await client.close();
      return 0;
    }
    let dumped = false;
    const offDump = client.on('status', (e) => {
      if (!dumped && stateDump !== undefined && (e.state === 'in-sync' || e.state === 'upstream-stale')) {
        dumped = true;
        // Reported, not fatal: the agent keeps its state and writes the dump again on exit.
        void dump(stateDump).catch((err: unknown) => out.problem(err));
      }
    });
    await abortion(ctx.signal);
    offDump();
    if (stateDump !== undefined && client.feedNames.some((f) => client.feed(f).revision !== undefined)) await dump(stateDump);
    await kvLog?.close();
    await client.close();
    return 0;
  } catch (err) {
    kvLog?.destroy();
    client.destroy();
    throw err;
  } finally {
    out.stop();
  }
}

function abortion(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

async function waitInSync(client: Client, timeoutMs: number, clock: Clock, signal: AbortSignal): Promise<void> {
  const ac = new AbortController();
  let last: StatusEvent | undefined;
  const off = client.on('status', (e) => {
    if (e.reason !== undefined) last = e;
  });
  const timer = clock.setTimeout(() => {
    const feeds = client.feedNames.map((f) => `${f}=${client.feed(f).status.sync}`).join(' ');
    const why = last?.reason === undefined ? '' : `; last problem: ${last.reason.code}: ${last.reason.message}`;
    ac.abort(new CattailError('CATTAIL_CLIENT_SYNC_TIMEOUT', `not every feed was in sync after ${timeoutMs} ms (state ${client.state}, feeds ${feeds})${why}`, {
      cause: last?.reason,
      details: { timeoutMs, state: client.state },
    }));
  }, timeoutMs);
  const onSignal = (): void => ac.abort(new CattailError('CATTAIL_CLIENT_CLOSED', 'interrupted before every feed was in sync'));
  signal.addEventListener('abort', onSignal, { once: true });
  // A signal that came while the command was still starting (imports, discovery access) fired
  // no listener: without this check the agent ran on until in sync or the timeout.
  if (signal.aborted) onSignal();
  try {
    await client.whenInSync(ac.signal);
  } finally {
    timer.cancel();
    off();
    signal.removeEventListener('abort', onSignal);
  }
}

/** Bytes inside values become base64 strings: JSON has no bytes, and `{type:'Buffer',data:[…]}` is unreadable. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
  if (typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)) {
    return Buffer.from((value as { data: number[] }).data).toString('base64');
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

function dumpInvalid(file: string, reason: string, cause?: unknown): ConfigError {
  return new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', `option dump (--dump): ${reason}, got ${JSON.stringify(file)}`, { cause, details: { option: 'dump', value: file } });
}

function dumpFailed(file: string, err: unknown): CattailError {
  return new CattailError('CATTAIL_CLIENT_DUMP_WRITE_FAILED', `cannot write the dump ${file}: ${(err as Error).message}`, { cause: err, details: { path: file } });
}

/**
 * Refuses a --dump that cannot be written, before the agent connects: its directory must exist and
 * be writable (the state format renames a temporary file there), and the path must not be a
 * directory. What can still go wrong later (disk full, the directory removed) is a coded
 * CATTAIL_CLIENT_DUMP_WRITE_FAILED.
 * @throws ConfigError CATTAIL_CONFIG_INVALID_VALUE
 */
export function checkDumpPath(file: string, format: 'state' | 'syncer'): void {
  const path = resolve(file);
  let target: Stats | undefined;
  try {
    target = statSync(path);
  } catch (err) {
    // ENOTDIR: a parent is a file; the directory check below says which.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw dumpInvalid(file, `cannot look at it (${(err as Error).message})`, err);
  }
  if (target?.isDirectory()) throw dumpInvalid(file, `it is a directory; name a file in it, e.g. ${join(file, 'state.jsonl')}`);
  const dir = dirname(path);
  let parent: Stats;
  try {
    parent = statSync(dir);
  } catch (err) {
    throw dumpInvalid(file, `its directory ${dir} does not exist`, err);
  }
  if (!parent.isDirectory()) throw dumpInvalid(file, `${dir} is not a directory`);
  try {
    accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch (err) {
    throw dumpInvalid(file, `its directory ${dir} is not writable`, err);
  }
  // The syncer format writes the file itself (no rename), so an existing one must be writable too.
  if (target !== undefined && format === 'syncer') {
    try {
      accessSync(path, fsConstants.W_OK);
    } catch (err) {
      throw dumpInvalid(file, 'the file is not writable', err);
    }
  }
}

/**
 * Writes the state as JSON lines `{"feed","key","value"}`, keys sorted per feed, to a temporary
 * file renamed into place: a reader never sees half a dump. On failure the temporary file is
 * removed and the previous dump (if any) stays as it was.
 * @throws CattailError CATTAIL_CLIENT_DUMP_WRITE_FAILED
 */
async function writeDump(client: Client, file: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    let written = false;
    try {
      let buf = '';
      // One state: every feed copied before the first await (the client applies units meanwhile,
      // and a live read mixed revisions, missed keys created during the write, and wrote deleted
      // ones without a value).
      const feeds = client.feedNames.map((name) => ({ name, ...client.feed(name).frozen() }));
      for (const { name, entries, decode } of feeds) {
        entries.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
        for (const [key, raw] of entries) {
          buf += JSON.stringify({ feed: name, key, value: decode(raw) }, replacer) + '\n';
          if (buf.length > 65_536) {
            await fh.write(buf);
            buf = '';
          }
        }
      }
      await fh.write(buf);
      written = true;
    } finally {
      // A close that fails after a failed write must not hide the write's error (the one that
      // says why); after good writes its failure counts (a deferred write error, never a rename).
      const closing = fh.close();
      await (written ? closing : closing.catch(() => undefined));
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw dumpFailed(file, err);
  }
}

/**
 * `--dump-format syncer`: every callback of the Felix-style syncer adapter (src/client/syncer.ts) as
 * a JSON line, appended as it happens, so the file reads like what a Felix built on Typha's client
 * would have been told: `{"feed","key","value","updateType"}` per KV, `{"status"}` per status edge.
 */
class SyncerLog {
  private readonly stream: WriteStream;
  private readonly detach: () => void;
  private detached = false;
  /** The first write error; later lines are dropped (a log with a hole would mislead). */
  private failure: CattailError | undefined;

  /**
   * Opens `file` at once, so a file that cannot be created fails the command before anything is
   * logged. `onFailure` hears of a later write error as it happens; close() then throws it.
   * @throws CattailError CATTAIL_CLIENT_DUMP_WRITE_FAILED
   */
  constructor(client: Client, private readonly file: string, private readonly onFailure: (err: CattailError) => void) {
    let fd: number;
    try {
      fd = openSync(file, 'w');
    } catch (err) {
      throw dumpFailed(file, err);
    }
    this.stream = createWriteStream('', { fd });
    // A persistent listener: a stream may emit more than one error, and an unheard one is an
    // uncaught exception that kills the agent without a code.
    this.stream.on('error', (err) => this.fail(err));
    this.detach = attachSyncer(client, {
      onUpdates: (kvs) => {
        let buf = '';
        for (const u of kvs) buf += JSON.stringify({ feed: u.feed, key: u.key, value: u.value, updateType: u.updateType }, replacer) + '\n';
        this.write(buf);
      },
      onStatusUpdated: (status) => this.write(JSON.stringify({ status }) + '\n'),
    });
  }

  private write(text: string): void {
    if (this.failure === undefined && !this.stream.destroyed) this.stream.write(text);
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = dumpFailed(this.file, err);
    this.stop();
    this.onFailure(this.failure);
  }

  private stop(): void {
    if (this.detached) return;
    this.detached = true;
    this.detach();
  }

  /** Flushes and closes the file. @throws CattailError CATTAIL_CLIENT_DUMP_WRITE_FAILED */
  async close(): Promise<void> {
    this.stop();
    if (this.failure === undefined && !this.stream.destroyed) {
      // The callback may hear of a failed last write before the 'error' listener does.
      await new Promise<void>((resolve) => this.stream.end((err?: Error | null) => {
        if (err) this.fail(err);
        resolve();
      }));
    }
    // A failed write destroys the stream a tick before its 'error' event reaches fail().
    const errored = this.stream.errored;
    if (errored !== null) this.fail(errored);
    this.stream.destroy();
    if (this.failure !== undefined) throw this.failure;
  }

  destroy(): void {
    this.stop();
    this.stream.destroy();
  }
}

/** Everything the agent prints. */
class Output {
  private timer: Timer | undefined;
  private lastLine = '';
  private lastCheckpointProblem: string | undefined;
  private readonly lastProgressAt = new Map<string, number>();
  private readonly tty: boolean;
  private readonly offs: (() => void)[] = [];
  private pendingTtyLine = false;

  constructor(
    private readonly ctx: CommandContext,
    private readonly config: AgentConfig,
    private readonly client: Client,
    private readonly clock: Clock,
  ) {
    this.tty = !config.json && (ctx.stdout as { isTTY?: boolean }).isTTY === true;
  }

  start(): void {
    this.offs.push(this.client.on('status', (e) => this.status(e)));
    this.offs.push(this.client.on('progress', (p) => this.progress(p)));
    this.timer = this.clock.setInterval(() => this.line(false), this.config.statusIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.timer?.cancel();
    for (const o of this.offs) o();
    if (this.pendingTtyLine) this.write('\n');
  }

  private write(s: string): void {
    this.ctx.stdout.write(s);
  }

  private println(s: string): void {
    if (this.pendingTtyLine) {
      this.write('\r\x1b[2K');
      this.pendingTtyLine = false;
    }
    this.write(s + '\n');
  }

  problem(err: unknown): void {
    const e = CattailError.is(err) ? err : new CattailError('CATTAIL_INTERNAL', String(err), { cause: err });
    if (this.config.json) this.println(JSON.stringify({ type: 'problem', code: e.code, message: e.message }));
    else this.println(`problem: ${e.code}: ${e.message}`);
  }

  private status(e: StatusEvent): void {
    if (this.config.json) {
      this.println(JSON.stringify({
        type: 'status', state: e.state, from: e.from, endpoint: e.endpoint ?? null, serverId: e.serverId ?? null,
        reason: e.reason === undefined ? null : { code: e.reason.code, message: e.reason.message }, delayMs: e.delayMs ?? null,
        staleFeeds: e.staleFeeds ?? null, at: new Date(e.at).toISOString(),
      }));
      return;
    }
    const where = e.serverId !== undefined ? ` ${e.serverId} (${e.endpoint ?? '?'})` : e.endpoint !== undefined ? ` ${e.endpoint}` : '';
    const wait = e.delayMs !== undefined ? `, next attempt in ${e.delayMs} ms` : '';
    const why = e.reason !== undefined ? ` — ${e.reason.code}: ${e.reason.message}` : '';
    const stale = e.staleFeeds !== undefined ? ` [stale: ${e.staleFeeds.join(', ')}]` : '';
    this.println(`${e.state}${where}${stale}${wait}${why}`);
  }

  private progress(p: SnapshotProgress): void {
    const now = this.clock.monotonic();
    const last = this.lastProgressAt.get(p.feed) ?? -Infinity;
    if (p.received !== 0 && p.received !== p.total && now - last < PROGRESS_INTERVAL_MS) return;
    this.lastProgressAt.set(p.feed, now);
    const pct = p.total === 0 ? 100 : Math.floor((p.received / p.total) * 100);
    if (this.config.json) {
      this.println(JSON.stringify({ type: 'progress', feed: p.feed, revision: p.revision, received: p.received, total: p.total, rawBytes: p.rawBytes }));
    } else {
      this.println(`${p.feed}: snapshot ${p.received.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} objects (${pct}%)`);
    }
  }

  /** The live status line; printed when it changed (or always on a terminal, in place). */
  line(force: boolean): void {
    const st = this.client.stats;
    // A checkpoint that cannot be read or written (--state-dir) is not fatal, warm restarts are
    // just off: said once per new problem, where it used to be kept in the stats unseen.
    const cp = st.checkpoint?.problem;
    if (cp !== undefined && cp !== this.lastCheckpointProblem) {
      const code = cp.slice(0, cp.indexOf(':'));
      if (this.config.json) this.println(JSON.stringify({ type: 'problem', code, message: cp.slice(code.length + 2) }));
      else this.println(`problem: ${cp}`);
    }
    this.lastCheckpointProblem = cp;
    if (this.config.json) {
      const feeds = Object.fromEntries(Object.values(st.feeds).map((f) => [f.feed, { sync: f.sync, stale: f.stale, revision: f.revision ?? null, objects: f.size, lagMs: f.lagMs ?? null }]));
      const text = JSON.stringify({ type: 'line', state: st.state, serverId: st.serverId ?? null, reconnects: st.reconnects, feeds });
      const key = JSON.stringify({ ...JSON.parse(text), feeds: Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, { ...v, lagMs: null }])) });
      if (force || key !== this.lastLine) this.println(text);
      this.lastLine = key;
      return;
    }
    const parts = Object.values(st.feeds).map((f) => `${f.feed} rev ${f.revision ?? '-'} ${f.size.toLocaleString('en-US')} objects${f.stale ? ' stale' : ''}`);
    const lags = Object.values(st.feeds).map((f) => f.lagMs ?? 0);
    const lag = lags.length === 0 ? 0 : Math.max(...lags);
    const text = `${st.state} | ${parts.join(' | ')} | lag ${formatMs(lag)} | reconnects ${st.reconnects}`;
    if (this.tty) {
      this.write(`\r\x1b[2K${text}`);
      this.pendingTtyLine = true;
      return;
    }
    const key = text.replace(/lag \S+/, '');
    if (force || key !== this.lastLine) this.println(text);
    this.lastLine = key;
  }
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
