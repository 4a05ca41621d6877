import { describe, expect, it } from 'vitest';
import { parseRetryAfter, RETRY_AFTER_CAP_MS } from '../src/retry-after.js';
import { retryAfterMs } from '../src/server/upstream/failure.js';

describe('Retry-After (one parser for the API server and for replicas)', () => {
  it('reads delay-seconds and HTTP-dates', () => {
    expect(parseRetryAfter('7', 0)).toBe(7_000);
    expect(parseRetryAfter(' 0 ', 0)).toBe(0);
    expect(parseRetryAfter(['3', '9'], 0)).toBe(3_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    // A date in the past means "now", never a negative wait.
    expect(parseRetryAfter(new Date(1_000).toUTCString(), 4_000)).toBe(0);
  });

  it('ignores what RFC 9110 does not allow instead of guessing', () => {
    for (const bad of [undefined, '', '  ', 'soon', '1.5', '-3', '1e3', 'Tue 2026']) expect(parseRetryAfter(bad, 0), String(bad)).toBeUndefined();
  });

  it('caps the wait so a hostile peer cannot park a reconnect for a day', () => {
    expect(parseRetryAfter('86400', 0)).toBe(RETRY_AFTER_CAP_MS);
    expect(parseRetryAfter('86400', 0, 20_000)).toBe(20_000);
  });

  it('upstream: the header wins, else the Status body, both capped', () => {
    const body = { kind: 'Status', code: 429, details: { retryAfterSeconds: 4 } } as const;
    expect(retryAfterMs('2', body, 0)).toBe(2_000);
    expect(retryAfterMs(undefined, body, 0)).toBe(4_000);
    expect(retryAfterMs('soon', body, 0)).toBe(4_000);
    expect(retryAfterMs(undefined, { kind: 'Status', details: { retryAfterSeconds: 10_000 } }, 0, 60_000)).toBe(60_000);
    expect(retryAfterMs(undefined, undefined, 0)).toBeUndefined();
  });
});
