/**
 * Admission control at the upgrade: refuse (503 + Retry-After, PROTOCOL.md §1.1) rather than
 * accept-then-kill. Typha accepts everything and later drops random connections, including ones
 * still in their handshake; a refusal costs the agent one HTTP round trip and no snapshot.
 */
export type Refusal = { readonly reason: 'max-connections' | 'draining'; readonly retryAfterSeconds: number };

export class Governor {
  private draining = false;

  constructor(
    private readonly maxConnections: number,
    private readonly retryAfterMs: number,
  ) {}

  /** undefined: admit. */
  admit(openConnections: number): Refusal | undefined {
    const retryAfterSeconds = Math.max(1, Math.ceil(this.retryAfterMs / 1000));
    if (this.draining) return { reason: 'draining', retryAfterSeconds };
    if (openConnections >= this.maxConnections) return { reason: 'max-connections', retryAfterSeconds };
    return undefined;
  }

  drain(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }
}
