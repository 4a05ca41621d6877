/**
 * Admission control at the upgrade: refuse (503 + Retry-After + X-Cattail-Endpoints, PROTOCOL.md
 * §1.1) rather than accept-then-kill. Typha accepts everything and later drops random connections,
 * including ones still in their handshake; a refusal costs the agent one HTTP round trip and no
 * snapshot, and the redirect hint tells it where to go instead.
 *
 * The governor also holds what the shedding and the drain need to agree with admission on: the
 * target share of connections and the peers to redirect to. Both can change at run time (a later
 * issue computes them from the Service's EndpointSlices), so they are fields, not constants.
 */
export type RefusalReason = 'draining' | 'not-ready' | 'max-connections' | 'over-target';

export interface Refusal {
  readonly reason: RefusalReason;
  /** Why, for the 503 body and /readyz. */
  readonly detail: string;
  readonly retryAfterSeconds: number;
  /** Other replicas to try (shuffled per refusal; may be empty). */
  readonly endpoints: readonly string[];
}

export interface GovernorOptions {
  readonly maxConnections: number;
  readonly retryAfterMs: number;
  /** Refuse at this many open connections (the shedder sheds above it). undefined: no target. */
  readonly targetConnections?: number | undefined;
  readonly peerEndpoints?: readonly string[];
  /** Why this replica cannot serve a new agent yet (no upstream sync); undefined when it can. */
  readonly notReady?: () => string | undefined;
  /** Uniform [0, 1) source for shuffling the hints. */
  readonly random: () => number;
}

/**
 * Most endpoints in one hint: the client keeps at most 16 (src/client/endpoints.ts), and a header
 * must stay small.
 */
const MAX_HINTED_ENDPOINTS = 16;

export class Governor {
  private draining = false;
  /** undefined: no target, only maxConnections. */
  targetConnections: number | undefined;
  private peers: readonly string[];

  constructor(private readonly o: GovernorOptions) {
    this.targetConnections = o.targetConnections;
    this.peers = [...(o.peerEndpoints ?? [])];
  }

  /** undefined: admit. */
  admit(openConnections: number): Refusal | undefined {
    const why = this.refusing(openConnections);
    if (why === undefined) return undefined;
    return { ...why, retryAfterSeconds: Math.max(1, Math.ceil(this.o.retryAfterMs / 1000)), endpoints: this.hint() };
  }

  /** Why a new agent would be refused now (/readyz says it), or undefined when one would be admitted. */
  refusing(openConnections: number): { reason: RefusalReason; detail: string } | undefined {
    if (this.draining) return { reason: 'draining', detail: 'draining for shutdown' };
    const notReady = this.o.notReady?.();
    if (notReady !== undefined) return { reason: 'not-ready', detail: notReady };
    if (openConnections >= this.o.maxConnections) return { reason: 'max-connections', detail: `at maxConnections (${openConnections} open, limit ${this.o.maxConnections})` };
    const target = this.targetConnections;
    if (target !== undefined && openConnections >= target) return { reason: 'over-target', detail: `at the target share (${openConnections} open, target ${target})` };
    return undefined;
  }

  /**
   * The peers, shuffled: every refused or shed agent gets its own order, so a crowd sent away at
   * once spreads over the peers instead of all trying the first one.
   */
  hint(): string[] {
    const list = [...this.peers];
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(this.o.random() * (i + 1)));
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    return list.slice(0, MAX_HINTED_ENDPOINTS);
  }

  set peerEndpoints(urls: readonly string[]) {
    this.peers = [...urls];
  }

  get peerEndpoints(): readonly string[] {
    return this.peers;
  }

  drain(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }
}
