import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { FeedDispatcher, type FeedState } from '../../src/server/upstream/dispatcher.js';
import { builtinFeed } from '../../src/server/upstream/feeds.js';
import { evidenceOf } from '../../src/server/upstream/not-served.js';
import { RecordingSink } from './helpers.js';

describe('what a CRD list proves (evidenceOf)', () => {
  it('an empty list at a decimal resourceVersion: absent at that version', () => {
    expect(evidenceOf({ kind: 'CustomResourceDefinitionList', metadata: { resourceVersion: '4711' }, items: [] })).toEqual({ kind: 'absent', rv: '4711' });
  });

  it('a list holding the CRD: present', () => {
    expect(evidenceOf({ metadata: { resourceVersion: '4711' }, items: [{ metadata: { name: 'ippools.crd.projectcalico.org' } }] })).toEqual({ kind: 'present' });
  });

  it('a CRD that lists its versions is present only when it serves the one watched', () => {
    const crd = (versions: unknown): unknown => ({ metadata: { resourceVersion: '7' }, items: [{ metadata: { name: 'ippools.crd.projectcalico.org' }, spec: { versions } }] });
    expect(evidenceOf(crd([{ name: 'v1', served: true }]), 'v1')).toEqual({ kind: 'present' });
    expect(evidenceOf(crd([{ name: 'v1', served: false }, { name: 'v2', served: true }]), 'v1')).toMatchObject({ kind: 'unknown', reason: 'the CRD does not serve version v1' });
    expect(evidenceOf(crd([{ name: 'v2', served: true }]), 'v1').kind).toBe('unknown');
    expect(evidenceOf(crd('garbage'), 'v1').kind).toBe('present'); // no version list to judge by
  });

  it.each([
    ['not an object', 'garbage'],
    ['null', null],
    ['no items array', { metadata: { resourceVersion: '5' }, items: 'none' }],
    ['no resourceVersion', { metadata: {}, items: [] }],
    ['a resourceVersion that is not a decimal', { metadata: { resourceVersion: 'abc' }, items: [] }],
    ['resourceVersion 0 ("any": no point in time)', { metadata: { resourceVersion: '0' }, items: [] }],
    ['a numeric resourceVersion', { metadata: { resourceVersion: 12 }, items: [] }],
  ])('%s proves nothing, as a failed probe (a 404 beside it may be a blip)', (_why, body) => {
    expect(evidenceOf(body)).toMatchObject({ kind: 'unknown', failed: true });
  });

  it('a CRD that does not serve the version is no failed probe: the 404 is not a blip', () => {
    const e = evidenceOf({ metadata: { resourceVersion: '5' }, items: [{ spec: { versions: [{ name: 'v2', served: true }] } }] }, 'v1');
    expect(e).toEqual({ kind: 'unknown', reason: 'the CRD does not serve version v1' });
  });
});

describe('FeedDispatcher watermarks', () => {
  it('only move forward: a lower resourceVersion (a lagging API server answering the probe) is ignored', () => {
    const d = new FeedDispatcher([builtinFeed('tunnel-ip-allocation')], createLogger('silent'));
    const sink = new RecordingSink();
    d.start(sink);
    const pools = 'ippools.crd.projectcalico.org';
    const marks = (): string | undefined => sink.batches.at(-1)?.batch.watermarks?.[pools];
    // A queued update makes each flush a batch (watermark-only batches are rate-limited).
    const flush = (): void => {
      d.queue(d.feeds[0] as FeedState, 'k', Buffer.from(String(sink.batches.length)));
      d.flush();
    };
    d.setWatermark(pools, '900');
    flush();
    expect(marks()).toBe('900');
    d.setWatermark(pools, '899');
    flush();
    expect(marks()).toBe('900');
    d.setWatermark(pools, '1000');
    flush();
    expect(marks()).toBe('1000');
  });
});
