/**
 * Which server to try next. A static list (discovery.ts orders one from EndpointSlices), shuffled once with the
 * injected random source so that a fleet of agents configured with the same list spreads over the
 * replicas instead of all starting on the first (Typha shuffles its discovered list too).
 *
 * Rules:
 * - Each endpoint has a `notBefore` time: a 503's Retry-After, a GOODBYE's delay, or a "behind"
 *   wait pin it; the rotation skips it until then (PROTOCOL.md §1.1: a client MUST wait at least
 *   Retry-After before retrying the same server).
 * - Hinted endpoints (GOODBYE `endpoints`, 503 `X-Cattail-Endpoints`) are tried first, once each.
 *   They need not be in the static list: a draining replica knows its peers better than a config.
 *   They are one server's advice for one reconnect: the next message with hints replaces them,
 *   and the client forgets them once in sync (clearHints). Kept, they outlived the pods they
 *   named: a rollout later, a GOODBYE's peers came after a 503's leftovers from days before, each
 *   a connect failure or a handshake timeout plus backoff, and at 16 the new ones were dropped.
 *   Not filtered by a discovered list (replace): a server may name its peers in another form than
 *   the EndpointSlices give (a static --peer-endpoints of DNS names), and PROTOCOL.md §1.1 lets a
 *   hint be outside the client's list; a filter would drop every hint of such a server.
 * - When every endpoint is pinned, the one free soonest is returned with the wait.
 */

/** Most hinted endpoints kept: a hostile or buggy server must not grow our memory. */
const MAX_HINTS = 16;

export interface Pick {
  url: string;
  /** ms to wait before connecting (0 when it may be tried now). */
  waitMs: number;
}

export class EndpointRotation {
  private cursor = 0;
  private hints: string[] = [];
  private readonly notBefore = new Map<string, number>();

  private list: string[];

  constructor(endpoints: readonly string[], random: () => number) {
    this.list = [...endpoints];
    for (let i = this.list.length - 1; i > 0; i--) {
      const j = Math.min(i, Math.floor(random() * (i + 1)));
      [this.list[i], this.list[j]] = [this.list[j]!, this.list[i]!];
    }
  }

  /**
   * Takes a freshly discovered list, already in the order to try (discovery.ts: local first, the
   * rest shuffled per agent). The same replicas in another order change nothing: discovery
   * shuffles the non-local ones at every look, and starting over at the first (the local replica)
   * after each look undid every `advance`, so an agent retried a failing local replica for good
   * while healthy peers waited. A changed set keeps the rotation at the endpoint it pointed at when
   * that one is still listed. Pins stay with their URLs: a Retry-After or GOODBYE wait outlives a
   * re-discovery, also one that leaves the URL out for a while (a not-ready replica that comes back
   * must still not be tried before its wait ends, PROTOCOL.md §1.1, §1.4). Pins that have ended
   * are dropped for URLs no longer listed, so the map holds no more than the URLs seen within the
   * longest wait a server can ask (Retry-After is capped).
   */
  replace(urls: readonly string[], now: number): void {
    if (urls.length === 0) return;
    const unique = new Set(urls);
    if (unique.size === this.list.length && this.list.every((u) => unique.has(u))) return;
    const at = this.current;
    this.list = [...unique];
    this.cursor = at === undefined ? 0 : Math.max(0, this.list.indexOf(at));
    for (const [u, at] of [...this.notBefore]) if (at <= now && !this.list.includes(u) && !this.hints.includes(u)) this.notBefore.delete(u);
  }

  get endpoints(): readonly string[] {
    return this.list;
  }

  /** The endpoint the rotation points at (the one to retry after a blip). */
  get current(): string | undefined {
    return this.list.length === 0 ? undefined : this.list[this.cursor % this.list.length];
  }

  /** Moves past `url` (it failed, refused, is behind or said goodbye). */
  advance(url: string): void {
    const i = this.list.indexOf(url);
    if (i >= 0 && this.list[this.cursor % this.list.length] === url) this.cursor = (i + 1) % this.list.length;
  }

  /** Do not connect to `url` before monotonic time `atMs`. */
  pin(url: string, atMs: number): void {
    this.notBefore.set(url, Math.max(atMs, this.notBefore.get(url) ?? 0));
  }

  /**
   * Endpoints to try first, in place of any hinted before (only ws:// or wss:// URLs are taken;
   * others are ignored). None at all leaves the held ones: a server that knows no peers says
   * nothing about the ones another named for this same reconnect.
   */
  hint(urls: readonly string[]): void {
    this.hints = replaceHints(this.hints, urls);
  }

  /** Forgets the hints: the agent is in sync, and they were advice for getting there. */
  clearHints(): void {
    this.hints = [];
  }

  /** Whether an endpoint other than `url` (listed or hinted) may be connected to at monotonic time `now`. */
  otherFree(url: string, now: number): boolean {
    const free = (u: string): boolean => u !== url && this.free(u, now);
    return this.hints.some(free) || this.list.some(free);
  }

  /** Not pinned at monotonic time `now`. */
  private free(url: string, now: number): boolean {
    return (this.notBefore.get(url) ?? 0) <= now;
  }

  /** The next endpoint at monotonic time `now`; undefined when there is none at all. Hints are consumed when picked. */
  next(now: number): Pick | undefined {
    const free = (u: string): boolean => this.free(u, now);
    const hi = this.hints.findIndex(free);
    if (hi >= 0) {
      const [url] = this.hints.splice(hi, 1);
      return { url: url!, waitMs: 0 };
    }
    for (let k = 0; k < this.list.length; k++) {
      const i = (this.cursor + k) % this.list.length;
      const url = this.list[i]!;
      if (free(url)) {
        this.cursor = i;
        return { url, waitMs: 0 };
      }
    }
    if (this.list.length === 0) return undefined;
    let best = this.list[0]!;
    for (const u of this.list) if ((this.notBefore.get(u) ?? 0) < (this.notBefore.get(best) ?? 0)) best = u;
    return { url: best, waitMs: (this.notBefore.get(best) ?? 0) - now };
  }
}

/**
 * The hint rule of {@link EndpointRotation.hint}, shared with the discard agents (fleet/): the
 * usable URLs of `urls` (ws:// or wss://, once each, at most MAX_HINTS) in place of `held`, or
 * `held` when `urls` has none.
 */
export function replaceHints(held: string[], urls: readonly string[]): string[] {
  const next: string[] = [];
  for (const u of urls) {
    if (!isWs(u) || next.includes(u)) continue;
    if (next.length >= MAX_HINTS) break;
    next.push(u);
  }
  return next.length > 0 ? next : held;
}

function isWs(u: string): boolean {
  try {
    const p = new URL(u).protocol;
    return p === 'ws:' || p === 'wss:';
  } catch {
    return false;
  }
}
