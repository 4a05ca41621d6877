/**
 * The one `Retry-After` parser (RFC 9110 §10.2.3), for both directions it arrives from: the API
 * server's 429/503 answers to the upstream reflector, and a Cattail replica's 503 refusals to the
 * client library (PROTOCOL.md §1.1).
 *
 * The header is either delay-seconds (digits only) or an HTTP-date. Anything else ("soon", "1.5",
 * "-3") is ignored rather than guessed at: the caller then falls back to its own backoff, which is
 * always safe. The result is clamped to [0, capMs] so a hostile or broken peer cannot park us for
 * a day.
 */

/** Default cap: five minutes, the longest any of our callers waits on a peer's word. */
export const RETRY_AFTER_CAP_MS = 300_000;

/** Milliseconds to wait, or undefined when the header is absent or not RFC 9110 syntax. */
export function parseRetryAfter(value: string | readonly string[] | undefined, nowWallMs: number, capMs = RETRY_AFTER_CAP_MS): number | undefined {
  const v = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (v === undefined || v === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    // Date.parse accepts far more than IMF-fixdate; require a weekday-less or full HTTP-date shape.
    if (!Number.isFinite(at) || !/\d{2}:\d{2}:\d{2}/.test(v)) return undefined;
    ms = at - nowWallMs;
  }
  return Math.max(0, Math.min(capMs, ms));
}
