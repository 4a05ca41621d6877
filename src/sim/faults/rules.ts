/**
 * Fault rules: which requests get which fault. A rule matches by resource, client id
 * (`X-Client-Id`, else `User-Agent`), verb and probability, and fires a bounded number of times.
 *
 * Determinism: the probability draw uses the simulator's seeded RNG and is made only after every
 * other criterion matched, so the same seed and the same request sequence give the same faults.
 */
import { CattailError } from '../../errors.js';
import type { Verb } from '../context.js';
import type { Rng } from '../rng.js';

/** Faults tied to one request. Stream kinds act on a WATCH after `afterEvents` lines. */
export const FAULT_KINDS = {
  reset: { verbs: ['WATCH'], text: 'TCP RST after `afterEvents` lines (mid-stream).' },
  reset_mid_line: { verbs: ['WATCH'], text: 'Half of the next JSON line, then a TCP RST.' },
  blackhole: { verbs: ['WATCH', 'LIST'], text: 'Headers (200), then silence forever.' },
  no_headers: { verbs: ['WATCH', 'LIST'], text: 'The request is read and never answered: no headers, silence forever.' },
  tls_handshake_failure: { verbs: [], text: 'Per connection, before any request (so only `probability` and `times` select): the server answers the TLS ClientHello with bytes that are not TLS and closes.' },
  fin_no_terminator: { verbs: ['WATCH'], text: 'FIN without the terminating zero-length chunk.' },
  close_after_headers: { verbs: ['WATCH'], text: 'A clean, empty 200 stream that ends right after the headers.' },
  error_500: { verbs: ['WATCH'], text: 'In-stream ERROR with a 500 InternalError Status, then close.' },
  error_504: { verbs: ['WATCH'], text: 'In-stream ERROR with a 504 ResourceVersionTooLarge Status (as after an etcd restore), then close.' },
  error_410: { verbs: ['WATCH'], text: 'In-stream ERROR with a 410 Expired Status, then close.' },
  error_410_keep_open: { verbs: ['WATCH'], text: 'In-stream ERROR 410 and the stream stays open (non-conformance probe).' },
  http_410: { verbs: ['WATCH', 'LIST'], text: 'HTTP 410 Expired instead of the response.' },
  unauthorized: { verbs: ['WATCH', 'LIST'], text: 'HTTP 401 Unauthorized (an expired or rotated token).' },
  forbidden: { verbs: ['WATCH', 'LIST'], text: 'HTTP 403 Forbidden (RBAC removed).' },
  malformed_json: { verbs: ['WATCH'], text: 'One line that is not valid JSON, then the stream goes on.' },
  expire_continue: { verbs: ['LIST'], text: 'A LIST with a continue token gets 410 Expired with a fresh, inconsistent continue token.' },
} as const satisfies Record<string, { verbs: readonly Verb[]; text: string }>;

export type FaultKind = keyof typeof FAULT_KINDS;

/** Faults counted in `sim_faults_total{kind}` that are not rules but admin actions or server policies. */
export type FaultEventKind = FaultKind | 'slow_watcher' | 'terminate_watches' | 'throttle_429' | 'restart' | 'restore' | 'large_object' | 'compact' | 'rv_too_large';

export interface FaultRule {
  kind: FaultKind;
  /** Resource id (src/registry.ts), e.g. `pods`. @default any */
  resource?: string;
  /** Exact client id (`X-Client-Id`, else `User-Agent`). @default any */
  clientId?: string;
  /** Restrict to one verb the kind applies to. @default every verb of the kind */
  verb?: 'LIST' | 'WATCH';
  /** Chance per matching request, in [0, 1]. @default 1 */
  probability?: number;
  /** How many times the rule fires before it retires. @default unlimited */
  times?: number;
  /** Stream kinds: lines (events) written before the fault. @default 0 */
  afterEvents?: number;
}

export interface ActiveRule extends FaultRule {
  readonly id: string;
  fired: number;
}

export function validateRule(x: unknown): FaultRule {
  const r = x as Partial<FaultRule> | null;
  const bad = (m: string): never => {
    throw new CattailError('CATTAIL_SIM_FAULT_INVALID', `fault rule: ${m}`, { details: { rule: x } });
  };
  if (r === null || typeof r !== 'object') return bad('must be an object');
  if (typeof r.kind !== 'string' || !Object.hasOwn(FAULT_KINDS, r.kind)) return bad(`kind must be one of ${Object.keys(FAULT_KINDS).join(', ')}`);
  if (r.resource !== undefined && typeof r.resource !== 'string') return bad('resource must be a string');
  if (r.clientId !== undefined && typeof r.clientId !== 'string') return bad('clientId must be a string');
  if (r.verb !== undefined && !(FAULT_KINDS[r.kind].verbs as readonly string[]).includes(r.verb)) return bad(`verb ${String(r.verb)} does not apply to ${r.kind}`);
  if (r.kind === 'tls_handshake_failure' && (r.resource !== undefined || r.clientId !== undefined)) return bad('tls_handshake_failure happens before any request: select it by probability and times only');
  if (r.probability !== undefined && !(typeof r.probability === 'number' && r.probability >= 0 && r.probability <= 1)) return bad('probability must be in [0, 1]');
  if (r.times !== undefined && !(Number.isSafeInteger(r.times) && r.times >= 1)) return bad('times must be an integer >= 1');
  if (r.afterEvents !== undefined && !(Number.isSafeInteger(r.afterEvents) && r.afterEvents >= 0)) return bad('afterEvents must be an integer >= 0');
  return { ...r } as FaultRule;
}

export class FaultRules {
  private rules: ActiveRule[] = [];
  private nextId = 1;

  constructor(private readonly rng: Rng) {}

  add(rule: FaultRule): string {
    const r = validateRule(rule);
    const id = `f${this.nextId++}`;
    this.rules.push({ ...r, id, fired: 0 });
    return id;
  }

  remove(id: string): boolean {
    const n = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length !== n;
  }

  clear(): void {
    this.rules = [];
  }

  list(): ActiveRule[] {
    return this.rules.map((r) => ({ ...r }));
  }

  /** A connection-level rule (tls_handshake_failure) for a new connection, if any. */
  matchConnection(): ActiveRule | undefined {
    for (const r of this.rules) {
      if (r.kind !== 'tls_handshake_failure') continue;
      if (r.probability !== undefined && r.probability < 1 && !this.rng.chance(r.probability)) continue;
      this.consume(r);
      return r;
    }
    return undefined;
  }

  private consume(r: ActiveRule): void {
    r.fired++;
    if (r.times !== undefined && r.fired >= r.times) this.rules = this.rules.filter((x) => x !== r);
  }

  /** The first rule that applies to this request (and consumes one of its `times`), if any. */
  match(resource: string, clientId: string, verb: Verb, hasContinue: boolean): ActiveRule | undefined {
    for (const r of this.rules) {
      if (!(FAULT_KINDS[r.kind].verbs as readonly string[]).includes(verb)) continue;
      if (r.verb !== undefined && r.verb !== verb) continue;
      if (r.resource !== undefined && r.resource !== resource) continue;
      if (r.clientId !== undefined && r.clientId !== clientId) continue;
      if (r.kind === 'expire_continue' && !hasContinue) continue;
      if (r.probability !== undefined && r.probability < 1 && !this.rng.chance(r.probability)) continue;
      this.consume(r);
      return r;
    }
    return undefined;
  }
}
