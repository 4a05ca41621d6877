/**
 * `cattail bench`'s live display. On a terminal: one status line (phase, agents connected / in
 * sync, deliveries/s) redrawn in place, with events printed above it. Anywhere else (CI logs,
 * a pipe): plain lines, the status only when its phase changed or every `plainEveryMs`, so a log
 * stays readable. Time comes from the caller's clock (monotonic ms), for tests.
 */
export interface FleetStatus {
  readonly agents: number;
  readonly connected: number;
  readonly inSync: number;
  /** Frames the agents received per second, summed over the workers (each a delivery). */
  readonly deliveriesPerSec: number;
}

export class Progress {
  private phase = 'starting';
  private liveShown = false;
  private lastPlainMs = -Infinity;
  private lastPlainPhase = '';

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly tty: boolean,
    private readonly nowMs: () => number,
    private readonly plainEveryMs = 5_000,
  ) {}

  private stamp(): string {
    return `[${(this.nowMs() / 1000).toFixed(1)} s]`;
  }

  /** An event line (a phase began, a scenario's summary). */
  line(text: string): void {
    this.clearLive();
    this.out.write(`${this.stamp()} ${text}\n`);
  }

  setPhase(phase: string): void {
    this.phase = phase;
    this.line(`phase: ${phase}`);
  }

  status(s: FleetStatus): void {
    const text = `${this.phase}: ${s.connected}/${s.agents} connected, ${s.inSync}/${s.agents} in sync, ${s.deliveriesPerSec.toLocaleString('en-US')} deliveries/s`;
    if (this.tty) {
      this.out.write(`\r\x1b[2K${this.stamp()} ${text}`);
      this.liveShown = true;
      return;
    }
    const now = this.nowMs();
    if (this.phase === this.lastPlainPhase && now - this.lastPlainMs < this.plainEveryMs) return;
    this.lastPlainMs = now;
    this.lastPlainPhase = this.phase;
    this.out.write(`${this.stamp()} ${text}\n`);
  }

  /** Ends the live line (before the final table). */
  done(): void {
    this.clearLive();
  }

  private clearLive(): void {
    if (!this.liveShown) return;
    this.out.write('\r\x1b[2K');
    this.liveShown = false;
  }
}
