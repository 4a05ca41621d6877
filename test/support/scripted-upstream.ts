/**
 * An `Upstream` driven by its caller: tests and benches push batches by hand, exactly as the
 * Kubernetes upstream would deliver them to the pipeline (seams.ts).
 */
import { Packr } from 'msgpackr';
import type { FeedBatch, FeedDefinition, FeedSink, ResourceHealth, Upstream } from '../../src/server/pipeline/seams.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });

/** A projected value as the store keeps it: plain msgpack in an exact-size Buffer. */
export function encodeValue(v: unknown): Buffer {
  return Buffer.from(packr.pack(v));
}

export class ScriptedUpstream implements Upstream {
  private sink: FeedSink | undefined;
  stopped = false;
  /** What the fan-out asked to look at again (Upstream.recheckMissing), one entry per call. */
  readonly rechecks: string[][] = [];
  /** The cluster's name for agents (Upstream.cluster); undefined: none, as before the key. */
  clusterName: string | undefined;

  constructor(readonly feeds: readonly FeedDefinition[]) {}

  static withFeeds(...names: string[]): ScriptedUpstream {
    return new ScriptedUpstream(names.map((name) => ({ name, resources: ['pods'], projectionVersion: 1 })));
  }

  start(sink: FeedSink): void {
    this.sink = sink;
  }

  cluster(): string | undefined {
    return this.clusterName;
  }

  stop(): Promise<void> {
    this.stopped = true;
    this.sink = undefined;
    return Promise.resolve();
  }

  health(): readonly ResourceHealth[] {
    return [];
  }

  recheckMissing(resources: readonly string[]): void {
    this.rechecks.push([...resources]);
  }

  push(feed: string, batch: FeedBatch): void {
    if (this.sink === undefined) throw new Error('ScriptedUpstream: not started');
    this.sink.onBatch(feed, batch);
  }

  /** Upserts (`value` an object, encoded once) and deletions (`null`) as one batch. */
  apply(feed: string, changes: Record<string, unknown>, extra: Omit<FeedBatch, 'updates'> = {}): void {
    const updates = Object.entries(changes).map(([key, v]) => ({ key, value: v === null ? null : Buffer.isBuffer(v) ? v : encodeValue(v) }));
    this.push(feed, { ...extra, updates });
  }
}
