/**
 * FeedState and the data model of the held entries (PROTOCOL.md §3.2): a checkpoint is taken only
 * while the entries are in the model the server announces. A resume or rebase continues the held
 * entries under the same feed definition (§7), so it sets their model to the announced one: a
 * checkpoint restored with no model (written before models were recorded), or with another one
 * than a server that announces none, was otherwise never taken again after such a continuation.
 */
import { describe, expect, it } from 'vitest';
import { FeedState } from '../../src/client/internal.js';
import { fullDigest, pack } from './helpers/fake-server.js';

const entries: [string, Buffer][] = [['/k1', pack('a')]];
const after: [string, Buffer][] = [...entries, ['/k2', pack('b')]];

function restored(model: string | undefined): FeedState {
  const fs = new FeedState('felix');
  fs.restore({ name: 'felix', revision: 5, tokenRevision: 5, token: Buffer.from('t5'), watermarks: { nodes: '10' }, digest: fullDigest(entries), entries: new Map(entries), ...(model !== undefined ? { model } : {}) });
  return fs;
}

/** WELCOME (mode, model), then one DELTA and the STATUS that verifies it. */
function continued(fs: FeedState, mode: 'resume' | 'rebase', model: string | undefined): void {
  fs.startConnection(mode, mode === 'rebase' ? 5 : undefined);
  fs.welcomeModel(model, mode);
  expect(fs.deltaFrame(5, 6, false, [['/k2', pack('b')]], [])).toBeDefined();
  const r = fs.status({ revision: 6, status: 'in-sync', stale: false, watermarks: { nodes: '11' }, digest: fullDigest(after), token: Buffer.from('t6') });
  expect(r.kind).toBe('applied');
  expect(fs.verifiedRevision).toBe(6);
}

describe('client units - the held entries\' model', () => {
  for (const mode of ['resume', 'rebase'] as const) {
    it(`a checkpoint without a model, continued by a ${mode} under an announced one, is taken again in that model`, () => {
      const fs = restored(undefined);
      continued(fs, mode, 'libcalico.v3');
      expect(fs.checkpoint()).toMatchObject({ revision: 6, model: 'libcalico.v3' });
    });
  }

  it('a checkpoint with a model, resumed by a server that announces none, is taken again (without one)', () => {
    const fs = restored('libcalico.v3');
    continued(fs, 'resume', undefined);
    const cp = fs.checkpoint();
    expect(cp).toMatchObject({ revision: 6 });
    expect(cp?.model).toBeUndefined();
  });

  it('a snapshot under another model: no checkpoint until it ends, then one in the new model', () => {
    const fs = restored('calico.v1');
    fs.startConnection('snapshot');
    fs.welcomeModel('libcalico.v3', 'snapshot');
    expect(fs.checkpoint()).toBeUndefined();
    fs.snapshotBegin(7, after.length, 0);
    fs.snapshotChunk(7, after);
    expect(fs.snapshotEnd({ revision: 7, digest: fullDigest(after), watermarks: { nodes: '12' }, status: 'in-sync', stale: false, token: Buffer.from('t7') }).kind).toBe('applied');
    expect(fs.checkpoint()).toMatchObject({ revision: 7, model: 'libcalico.v3' });
  });
});
