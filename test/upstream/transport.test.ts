/**
 * KubeTransport: a request's abort signal (the watchdog's, stop()'s) ends it in every phase,
 * credentials included: client-node waits for an exec credential plugin with no timeout.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeTransport } from '../../src/server/upstream/transport.js';

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

describe('upstream transport', () => {
  it('an abort ends a request whose credentials never come (a hung exec plugin)', async () => {
    const kc = kubeConfig();
    let asked = 0;
    kc.applyToHTTPSOptions = () => {
      asked++;
      return new Promise<void>(() => undefined); // the plugin never answers
    };
    const ac = new AbortController();
    const transport = new KubeTransport(kc, 'cattail-test');
    const got = transport.get('/api/v1/pods', ac.signal).then(() => 'resolved', (err: Error) => `rejected: ${err.name}`);
    setTimeout(() => ac.abort(new DOMException('watchdog', 'AbortError')), 20);
    const bound = new Promise<string>((resolve) => setTimeout(() => resolve('still waiting'), 2_000));
    expect(await Promise.race([got, bound])).toBe('rejected: AbortError');
    expect(asked).toBe(1);
    // The next attempts wait for the hung call (abortable too) instead of starting another
    // plugin each: client-node spawns one per call, so that leaked a process per attempt.
    for (let i = 0; i < 3; i++) {
      const next = new AbortController();
      const r = transport.get('/api/v1/pods', next.signal).then(() => 'resolved', (err: Error) => `rejected: ${err.name}`);
      setTimeout(() => next.abort(new DOMException('watchdog', 'AbortError')), 10);
      expect(await r).toBe('rejected: AbortError');
    }
    expect(asked).toBe(1);
  });
});
