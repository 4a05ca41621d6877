/**
 * Every JSON log line holds each key once per object. pino writes a child logger's bindings and
 * the log call's object side by side without merging, so a key bound by a child and repeated by a
 * call (or bound twice down a chain of children) appears twice; JSON.parse hides that (the last
 * wins), log pipelines do not. The lines here come from `cattail serve`'s real logger chain.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/load.js';
import { childLogger, createLogger } from '../../src/log.js';
import { serveOptions } from '../../src/server/options.js';
import { REPLICA_CHECKPOINT_FILE } from '../../src/server/state/replica-checkpoint.js';
import { kubernetesUpstreamFactory } from '../../src/server/upstream-factory.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { duplicateKeys } from '../support/json-keys.js';
import { waitUntil } from '../support/wait.js';
import { RecordingSink } from '../upstream/helpers.js';

function capture(): Writable & { lines: () => string[] } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return Object.assign(w, { lines: () => text.split('\n').filter((l) => l !== '') });
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

describe('duplicateKeys (the check the log tests rely on)', () => {
  it('finds a key repeated in one object, at any depth, and not keys shared by two objects', () => {
    expect(duplicateKeys('{"a":1,"b":"a","a":2}')).toEqual(['a']);
    expect(duplicateKeys('{"x":{"s":"\\"s\\"","s":[{"s":1}]},"y":{"s":1}}')).toEqual(['s']);
    expect(duplicateKeys('{"a":[{"k":1},{"k":2}],"b":{"k":{"k":1}}}')).toEqual([]);
  });
});

describe('serve log lines carry each key once', () => {
  it('"list/watch failed; backing off" and CATTAIL_SERVER_STATE_INVALID through the upstream built for serve', async () => {
    const api = await new FakeApiServer().start();
    cleanups.push(() => api.close());
    // A list that always fails: the reflector logs its backoff line (bound resource + logged resource).
    api.intercept = (info, _req, res) => {
      if (info.def.id !== 'pods') return false;
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 500, reason: 'InternalError', message: 'boom' }));
      return true;
    };
    const dir = mkdtempSync(join(tmpdir(), 'cattail-log-keys-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, api.kubeConfig().exportConfig());
    // A checkpoint that does not parse: the state logger (a child of the upstream's) warns with CATTAIL_SERVER_STATE_INVALID.
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir);
    writeFileSync(join(stateDir, REPLICA_CHECKPOINT_FILE), 'not a checkpoint');

    const out = capture();
    const log = createLogger('debug', 'cattail-serve', out);
    const config = resolveConfig(serveOptions, { argv: ['--feeds', 'felix', '--state-dir', stateDir] }).config;
    const ac = new AbortController();
    const built = await kubernetesUpstreamFactory({ kind: 'kubeconfig', path: kubeconfig, from: 'flag' }, { config, log, env: {}, signal: ac.signal });
    cleanups.push(() => built.upstream.stop());
    built.upstream.start(new RecordingSink());
    const has = (msg: string): boolean => out.lines().some((l) => l.includes(msg));
    await waitUntil(() => has('list/watch failed; backing off') && has('CATTAIL_SERVER_STATE_INVALID'), 'both log lines', { timeoutMs: 15_000 });

    const lines = out.lines();
    const backoff = lines.find((l) => l.includes('list/watch failed; backing off')) as string;
    const state = lines.find((l) => l.includes('CATTAIL_SERVER_STATE_INVALID')) as string;
    for (const line of lines) expect(duplicateKeys(line), line).toEqual([]);
    expect(JSON.parse(backoff)).toMatchObject({ level: 40, stage: 'upstream', resource: 'pods' });
    expect(JSON.parse(state)).toMatchObject({ level: 40, stage: 'upstream', component: 'state' });
  });

  it('childLogger refuses to bind a key its parent already binds', () => {
    const root = pino({ name: 'cattail-serve', base: { pid: 1 }, level: 'silent' });
    const upstream = childLogger(root, { stage: 'upstream' });
    expect(() => childLogger(upstream, { stage: 'state' })).toThrow(/already binds stage/);
    expect(() => childLogger(root, { pid: 2 })).toThrow(/already binds pid/);
    expect(childLogger(upstream, { component: 'state' }).bindings()).toEqual({ name: 'cattail-serve', stage: 'upstream', component: 'state' });
  });
});
