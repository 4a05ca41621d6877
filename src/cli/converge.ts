/**
 * `cattail converge`: has every agent of the fleet applied resourceVersion RV of a resource? Asks
 * GET /v1/convergence of every replica in parallel (each waits for its own agents, up to the
 * timeout), prints the laggards by node name, and exits 0 only when every replica answered and
 * every agent converged (else a coded error: NOT_CONVERGED, or REPLICA_FAILED when a replica could
 * not be asked, because its agents are then unknown). A busy replica (503 TOO_MANY_WAITERS) is
 * asked again after its Retry-After while the timeout lasts (askUntilAdmitted).
 *
 * The replicas are --endpoints, plus every endpoint of --service's EndpointSlices (converge-discovery.ts).
 *
 * With --node, a node is connected to one replica, not all: asking each replica for every named
 * node would make each wait for nodes it will never see. So it asks twice: first with timeout 0
 * to learn where each named node is connected, then each replica for its own nodes only. A node
 * connected nowhere is a laggard; one that moves between the two asks is one too (conservative).
 */
import type { CommandContext } from './commands.js';
import type { ConfigOf } from '../config/options.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { CattailError, ConfigError } from '../errors.js';
import { parseRetryAfter } from '../retry-after.js';
import type { ConvergenceReport, Laggard } from '../server/fanout/convergence.js';
import { type convergeOptions, splitUrls } from './converge-options.js';

export type ConvergeConfig = ConfigOf<typeof convergeOptions>;

/** Beyond the replica's own timeout, how long an answer may take before the replica counts as failed. */
const ANSWER_MARGIN_MS = 10_000;
/** The longest Retry-After of a busy replica honoured (a broken one must not park the command). */
const BUSY_RETRY_CAP_MS = 30_000;

type Answer = { readonly endpoint: string; readonly report: ConvergenceReport } | { readonly endpoint: string; readonly error: CattailError };

interface Ask {
  readonly resource: string;
  readonly resourceVersion: string;
  readonly timeoutMs: number;
  readonly nodes: readonly string[] | undefined;
}

/** At most this many asks of one replica that answers 503 TOO_MANY_WAITERS (each after its Retry-After). */
const BUSY_ATTEMPTS = 5;

/**
 * ask(), again after the replica's Retry-After while it answers 503 CATTAIL_CONVERGENCE_TOO_MANY_WAITERS
 * (its waiting requests are at their bound, at once or after they grew), within the command's own
 * timeout and at most BUSY_ATTEMPTS times: busy is not failed. Each retry asks for what is left of
 * the timeout. Anything else is answered at once.
 */
async function askUntilAdmitted(endpoint: string, q: Ask, signal: AbortSignal, withinMs = q.timeoutMs): Promise<Answer> {
  const deadline = Date.now() + withinMs;
  for (let attempt = 1; ; attempt++) {
    // A waiting ask asks for what is left of the command's timeout; a timeout-0 ask stays one.
    const a = await ask(endpoint, { ...q, timeoutMs: q.timeoutMs === 0 ? 0 : Math.max(0, deadline - Date.now()) }, signal);
    const busy = 'error' in a ? a.error.details?.['busyRetryAfterMs'] : undefined;
    if (typeof busy !== 'number' || attempt >= BUSY_ATTEMPTS || Date.now() + busy >= deadline || signal.aborted) return a;
    await sleep(busy, undefined, { signal }).catch(() => undefined);
  }
}

async function ask(endpoint: string, q: Ask, signal: AbortSignal): Promise<Answer> {
  const url = new URL('/v1/convergence', endpoint);
  url.searchParams.set('resource', q.resource);
  url.searchParams.set('resourceVersion', q.resourceVersion);
  url.searchParams.set('timeoutMs', String(q.timeoutMs));
  for (const n of q.nodes ?? []) url.searchParams.append('node', n);
  let status: number;
  let body: unknown;
  let retryAfter: string | null = null;
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(q.timeoutMs + ANSWER_MARGIN_MS)]) });
    status = res.status;
    retryAfter = res.headers.get('retry-after');
    body = await res.json();
  } catch (err) {
    return { endpoint, error: new CattailError('CATTAIL_CONVERGENCE_REPLICA_FAILED', `${endpoint}: ${(err as Error).message}`, { cause: err, details: { endpoint } }) };
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  // A bad parameter is the caller's mistake, the same on every replica: it ends the command.
  if (status === 400 && error?.code === 'CATTAIL_CONVERGENCE_BAD_REQUEST') throw new CattailError('CATTAIL_CONVERGENCE_BAD_REQUEST', `${endpoint}: ${String(error.message)}`, { details: { endpoint } });
  if (status !== 200 || typeof (body as ConvergenceReport | null)?.converged !== 'boolean') {
    const why = error !== undefined ? `${String(error.code)}: ${String(error.message)}` : `HTTP ${status} without a convergence report`;
    const busy = status === 503 && error?.code === 'CATTAIL_CONVERGENCE_TOO_MANY_WAITERS' ? (parseRetryAfter(retryAfter ?? undefined, Date.now(), BUSY_RETRY_CAP_MS) ?? 1_000) : undefined;
    return { endpoint, error: new CattailError('CATTAIL_CONVERGENCE_REPLICA_FAILED', `${endpoint}: ${why}`, { details: { endpoint, status, ...(busy !== undefined ? { busyRetryAfterMs: busy } : {}) } }) };
  }
  return { endpoint, report: body as ConvergenceReport };
}

/** Which replicas to ask for which nodes; undefined nodes: every agent. */
async function plan(endpoints: readonly string[], config: ConvergeConfig, signal: AbortSignal): Promise<{ asks: Map<string, readonly string[] | undefined>; failed: Answer[]; nowhere: string[] }> {
  if (config.node.length === 0) return { asks: new Map(endpoints.map((e) => [e, undefined])), failed: [], nowhere: [] };
  const named = [...new Set(config.node)];
  // Busy is not failed here either (a replica of an older release refuses even a timeout-0 ask at
  // its waiter bound): asked again after its Retry-After, within the command's timeout.
  const first = await Promise.all(endpoints.map((e) => askUntilAdmitted(e, { resource: config.resource, resourceVersion: config.resourceVersion, timeoutMs: 0, nodes: named }, signal, config.timeoutMs)));
  const asks = new Map<string, string[]>();
  const placed = new Set<string>();
  for (const a of first) {
    if (!('report' in a)) continue;
    const missing = new Set(a.report.missingNodes);
    const here = named.filter((n) => !missing.has(n));
    for (const n of here) placed.add(n);
    if (here.length > 0) asks.set(a.endpoint, here);
  }
  return { asks, failed: first.filter((a) => !('report' in a)), nowhere: named.filter((n) => !placed.has(n)) };
}

function describeRv(l: Laggard): string {
  return l.appliedResourceVersion === null ? 'applied unknown (no ACK yet)' : `applied ${l.appliedResourceVersion}`;
}

export async function runConverge(config: ConvergeConfig, ctx: CommandContext): Promise<number> {
  const given = splitUrls(config.endpoints);
  if (given.length === 0 && config.service === undefined) {
    throw new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', 'cattail converge needs the replicas: --endpoints http://HOST:PORT[,...] or --service NAMESPACE/NAME', { details: { option: 'endpoints' } });
  }
  if (config.service !== undefined) await (await import('../client/discovery-access.js')).resolveDiscoveryAccess(config.kubeconfig, ctx.env, '--endpoints http://HOST:PORT');
  const discovered = config.service === undefined ? [] : await (await import('./converge-discovery.js')).discoverReplicas(config.service, config.servicePortName, config.serviceScheme, config.kubeconfig, ctx.signal, config.timeoutMs + ANSWER_MARGIN_MS);
  const endpoints = [...new Set([...given, ...discovered])];
  const { asks, failed, nowhere } = await plan(endpoints, config, ctx.signal);
  const answers = [
    ...failed,
    ...(await Promise.all([...asks].map(([e, nodes]) => askUntilAdmitted(e, { resource: config.resource, resourceVersion: config.resourceVersion, timeoutMs: config.timeoutMs, nodes }, ctx.signal)))),
  ];
  const reports = answers.flatMap((a) => ('report' in a ? [a] : []));
  const errors = answers.flatMap((a) => ('error' in a ? [a.error] : []));
  const laggards = reports.flatMap((a) => a.report.laggards.map((l) => ({ ...l, replica: a.report.serverId }))).sort((x, y) => (x.node < y.node ? -1 : x.node > y.node ? 1 : 0));
  const unnamed = reports.reduce((n, a) => n + a.report.laggardCount - a.report.laggards.length, 0);
  const converged = errors.length === 0 && nowhere.length === 0 && reports.every((a) => a.report.converged);
  const agents = reports.reduce((n, a) => n + a.report.agents, 0);
  if (config.json) {
    ctx.stdout.write(`${JSON.stringify({ converged, resourceVersion: config.resourceVersion, agents, laggards, notConnected: nowhere, replicas: answers.map((a) => ('report' in a ? a : { endpoint: a.endpoint, error: { code: a.error.code, message: a.error.message } })) })}\n`);
  } else {
    for (const a of reports) {
      const r = a.report;
      const verdict = r.converged ? 'converged' : r.timedOut ? `NOT converged (timed out after ${r.waitedMs} ms)` : 'NOT converged';
      ctx.stdout.write(`${r.serverId} (${a.endpoint}): ${verdict}: ${r.convergedAgents}/${r.agents} agents have applied ${r.resource} ${r.resourceVersion} (replica at ${r.replicaResourceVersion ?? 'none yet'})\n`);
    }
    for (const e of errors) ctx.stdout.write(`${e.message} (${e.code})\n`);
    for (const l of laggards) {
      ctx.stdout.write(l.connected ? `laggard ${l.node} (client ${l.clientId ?? '?'} on ${l.replica}): ${describeRv(l)}\n` : `laggard ${l.node}: not connected to ${l.replica}\n`);
    }
    for (const n of nowhere) ctx.stdout.write(`laggard ${n}: not connected to any replica\n`);
    if (unnamed > 0) ctx.stdout.write(`… and ${unnamed} more laggards not listed (each replica names at most 100)\n`);
  }
  if (errors.length > 0) throw new CattailError('CATTAIL_CONVERGENCE_REPLICA_FAILED', `${errors.length} of ${endpoints.length} replicas could not be asked; convergence is not proven`);
  if (!converged) throw new CattailError('CATTAIL_CONVERGENCE_NOT_CONVERGED', `${laggards.length + unnamed + nowhere.length} agents or nodes have not applied ${config.resource} ${config.resourceVersion}`);
  if (!config.json) ctx.stdout.write(`converged: ${agents} agents on ${reports.length} replicas have applied ${config.resource} ${config.resourceVersion}\n`);
  return 0;
}
