/**
 * The per-watch byte tap: applies a stream fault after N lines, and bounds what a watcher that
 * stops reading can hold (DESIGN.md "Simulated API server", part 2).
 *
 * Slow watchers: the queue is the response's buffered bytes (`writableLength`), i.e. what Node
 * holds because the socket will not take more. Over `queueMaxBytes` the watcher may wait its share
 * of the shared {@link TimeBudget}; still over when that runs out, it is closed cleanly (terminating
 * chunk, no ERROR, as the cacher does) and counted. The socket is destroyed `closeGraceMs` later
 * if the client never read the end, so a stuck client cannot pin memory.
 */
import type { Clock, Timer } from '../../clock.js';
import type { ApiRequest, WatchTap } from '../context.js';
import type { Counters, WatchCloseReason } from '../counters.js';
import { goJson } from '../encode.js';
import { status } from '../status.js';
import type { TimeBudget } from './budget.js';
import type { ActiveRule, FaultEventKind } from './rules.js';

export interface SlowWatcherLimits {
  /** Bytes a watch may have buffered before it counts as slow. */
  queueMaxBytes: number;
  /** After a clean close, the socket is destroyed this long later if the client did not read the end. */
  closeGraceMs: number;
}

/** Delay between the last bytes and an RST/FIN fault, so a reading client has read them. */
const CUT_DELAY_MS = 20;

function errorLine(code: 500 | 504 | 410): Buffer {
  const st =
    code === 500
      ? status(500, 'InternalError', 'Internal error occurred: etcdserver: request timed out')
      : code === 504
        ? status(504, 'Timeout', 'Too large resource version', { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 })
        : status(410, 'Expired', 'The resourceVersion for the provided watch is too old.');
  return Buffer.from(`{"type":"ERROR","object":${goJson(st)}}\n`);
}

export class FaultTap implements WatchTap {
  private lines = 0;
  private fired = false;
  private waitTimer: Timer | undefined;
  private graceTimer: Timer | undefined;
  private done = false;
  cut = false;

  constructor(
    private readonly r: ApiRequest,
    private readonly close: (reason: WatchCloseReason) => void,
    private readonly rule: ActiveRule | undefined,
    private readonly limits: SlowWatcherLimits,
    private readonly budget: TimeBudget,
    private readonly clock: Clock,
    private readonly counters: Counters,
    private readonly count: (kind: FaultEventKind) => void,
  ) {
    // A fault due before any line fires as soon as the watch has started (after its headers).
    if (rule !== undefined && (rule.afterEvents ?? 0) === 0) queueMicrotask(() => this.fire(undefined));
  }

  beforeSend(line: Buffer): boolean {
    if (this.rule !== undefined && !this.fired && this.lines >= (this.rule.afterEvents ?? 0)) {
      if (!this.fire(line)) return false;
    }
    this.lines++;
    return true;
  }

  /** Applies the fault; returns whether `line` should still be written. */
  private fire(line: Buffer | undefined): boolean {
    if (this.fired || this.done || this.rule === undefined) return true;
    this.fired = true;
    const { res } = this.r;
    const kind = this.rule.kind;
    this.count(kind);
    switch (kind) {
      case 'reset':
      case 'fin_no_terminator':
      case 'reset_mid_line': {
        // The cut must follow what was already written onto the wire: Node corks a response until
        // the next tick, so wait for an empty write's callback (it completes after them), then a
        // few ms more, because Linux drops a socket's unread received data when an RST arrives.
        // Destroying the socket closes it with a FIN and no terminating chunk; resetAndDestroy
        // sets SO_LINGER 0, so the close is an RST.
        this.cut = true;
        this.close('fault');
        const sock = res.socket;
        if (kind === 'reset_mid_line') {
          const l = line ?? Buffer.from('{"type":"MODIFIED","object":{"kind":"Status","apiVersion":"v1","metadata":{}}}\n');
          res.write(l.subarray(0, Math.max(1, l.length >> 1)));
        }
        sock?.write(Buffer.alloc(0), () => {
          this.clock.setTimeout(() => (kind === 'fin_no_terminator' ? sock.destroy() : sock.resetAndDestroy()), CUT_DELAY_MS).unref();
        });
        return false;
      }
      case 'error_500':
      case 'error_504':
      case 'error_410':
      case 'error_410_keep_open': {
        const code = kind === 'error_500' ? 500 : kind === 'error_504' ? 504 : 410;
        const el = errorLine(code);
        this.counters.watchEvents.inc(['ERROR']);
        this.counters.bytesSent.inc(['error'], el.length);
        if (code === 410) this.counters.status410.inc(['event']);
        if (code === 504) this.counters.status504.inc([]);
        res.write(el);
        if (kind === 'error_410_keep_open') return true;
        this.close(code === 410 ? 'error410' : 'error_other');
        return false;
      }
      case 'malformed_json':
        res.write('{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":\n');
        return true;
      default:
        return true;
    }
  }

  afterSend(ok: boolean): void {
    if (ok || this.waitTimer !== undefined || this.done) return;
    if (this.r.res.writableLength <= this.limits.queueMaxBytes) return;
    const allotted = this.budget.takeAvailable();
    const startedMs = this.clock.monotonic();
    const onDrain = (): void => {
      this.waitTimer?.cancel();
      this.waitTimer = undefined;
      this.budget.returnUnused(allotted - (this.clock.monotonic() - startedMs));
    };
    if (allotted <= 0) {
      this.terminate();
      return;
    }
    this.r.res.once('drain', onDrain);
    this.waitTimer = this.clock.setTimeout(() => {
      this.waitTimer = undefined;
      this.r.res.off('drain', onDrain);
      if (this.r.res.writableLength > this.limits.queueMaxBytes) this.terminate();
    }, allotted);
  }

  private terminate(): void {
    this.counters.terminatedWatchers.inc([this.r.def.id]);
    this.count('slow_watcher');
    const { res } = this.r;
    this.close('slow');
    this.graceTimer = this.clock.setTimeout(() => res.destroy(), this.limits.closeGraceMs).unref();
    if (res.writableFinished) this.graceTimer.cancel();
    else res.once('finish', () => this.graceTimer?.cancel());
  }

  closed(): void {
    this.done = true;
    this.waitTimer?.cancel();
    this.waitTimer = undefined;
  }
}
