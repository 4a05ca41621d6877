/**
 * Bearer-token checks with rotation. After {@link TokenAuth.rotate} the previous token stays valid
 * for a grace window (clock time), as a projected service-account token does while kubelet
 * rewrites the file and clients re-read it; after the window it answers 401.
 */
import type { Clock } from '../../clock.js';

export class TokenAuth {
  private previous: string | undefined;
  private previousUntilMs = 0;

  constructor(
    private current: string,
    private readonly clock: Clock,
  ) {}

  get token(): string {
    return this.current;
  }

  /** Whether an `Authorization` header carries a valid token. */
  check(header: string | undefined): boolean {
    const m = /^Bearer\s+(.+)$/i.exec(header ?? '');
    const t = m?.[1]?.trim();
    if (t === undefined || t === '') return false;
    if (t === this.current) return true;
    return t === this.previous && this.clock.monotonic() < this.previousUntilMs;
  }

  rotate(next: string, graceMs: number): void {
    this.previous = this.current;
    this.previousUntilMs = this.clock.monotonic() + graceMs;
    this.current = next;
  }
}
