/**
 * LIST: resourceVersion × resourceVersionMatch rules, limit/continue paging over one snapshot,
 * selectors, and a streamed body (as the Kubernetes API concepts page, "Efficient detection of changes" and "Retrieving large results sets in chunks", describes).
 */
import type { ResourceDef } from '../registry.js';
import type { ApiRequest, SimContext } from './context.js';
import type { StoreView } from './store-view.js';
import { apiVersionOf, goJson } from './encode.js';
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector, type FieldRequirement, type LabelRequirement } from './selectors.js';
import { badRequest, expired, invalid, StatusError, tooLargeRv } from './status.js';
import type { Snapshot, StoredObject } from './store.js';
import { writeBody } from './respond.js';

export interface Filter {
  namespace: string | undefined;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

export function parseFilter(def: ResourceDef, namespace: string | undefined, q: URLSearchParams): Filter {
  return {
    namespace,
    labels: parseLabelSelector(q.get('labelSelector') ?? ''),
    fields: parseFieldSelector(q.get('fieldSelector') ?? '', def.id === 'pods'),
  };
}

export function matches(f: Filter, o: StoredObject | undefined): boolean {
  if (o === undefined) return false;
  if (f.namespace !== undefined && o.namespace !== f.namespace) return false;
  if (f.labels.length > 0 && !matchLabels(f.labels, o.labels)) return false;
  if (f.fields.length > 0 && !matchFields(f.fields, { name: o.name, namespace: o.namespace, nodeName: o.nodeName })) return false;
  return true;
}

/** Parses a resourceVersion parameter: "" → undefined; non-numeric → 400 as the apiserver does. */
export function parseRv(s: string | null): number | undefined {
  if (s === null || s === '') return undefined;
  if (!/^(0|[1-9][0-9]{0,15})$/.test(s)) throw badRequest(`invalid resource version: ${JSON.stringify(s)}`);
  return Number(s);
}

interface ContinueToken {
  rv: number;
  start: string;
}

/** base64url(JSON) exactly as apimachinery's storage encodes it (fixtures README fact 3). */
export function encodeContinue(rv: number, lastKey: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${lastKey}\u0000` })).toString('base64url');
}

function decodeContinue(token: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { v?: unknown; rv?: unknown; start?: unknown };
    if (t.v !== 'meta.k8s.io/v1' || typeof t.rv !== 'number' || !Number.isSafeInteger(t.rv) || t.rv <= 0 || typeof t.start !== 'string') throw new Error('shape');
    return { rv: t.rv, start: t.start };
  } catch {
    throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
}

/** Index of the first item whose key is >= key (items are sorted by key). */
function lowerBound(items: readonly StoredObject[], key: string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((items[mid] as StoredObject).key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function parseLimit(s: string | null): number {
  if (s === null || s === '') return 0;
  if (!/^-?[0-9]+$/.test(s)) throw badRequest(`invalid limit: ${JSON.stringify(s)}`);
  return Math.max(0, Number(s));
}

export async function handleList(ctx: SimContext<StoreView>, r: ApiRequest): Promise<void> {
  const q = r.query;
  const { store } = ctx;
  ctx.counters.onList(r.clientId, r.def.id);
  const rvStr = q.get('resourceVersion') ?? '';
  const rvm = q.get('resourceVersionMatch') ?? '';
  const cont = q.get('continue') ?? '';
  if (q.has('sendInitialEvents')) throw invalid('sendInitialEvents is forbidden for list', 'sendInitialEvents');
  if (rvm !== '' && rvm !== 'Exact' && rvm !== 'NotOlderThan') throw invalid(`unsupported resourceVersionMatch ${JSON.stringify(rvm)}`, 'resourceVersionMatch');
  if (rvm !== '' && rvStr === '') throw invalid('resourceVersionMatch is forbidden unless resourceVersion is provided', 'resourceVersionMatch');
  if (rvm !== '' && cont !== '') throw invalid('resourceVersionMatch is forbidden when continue is provided', 'resourceVersionMatch');
  if (rvm === 'Exact' && rvStr === '0') throw invalid('resourceVersionMatch "exact" is forbidden for resourceVersion "0"', 'resourceVersionMatch');
  if (cont !== '' && rvStr !== '' && rvStr !== '0') throw badRequest('specifying resource version is not allowed when using continue');
  const rv = parseRv(rvStr);
  let limit = parseLimit(q.get('limit'));
  const filter = parseFilter(r.def, r.namespace, q);

  let snap: Snapshot;
  let startKey: string | undefined;
  if (cont !== '') {
    const token = decodeContinue(cont);
    startKey = token.start;
    try {
      // A continue page is read from etcd at the token's RV, however far a follower's cache lags.
      snap = store.etcdSnapshot(r.def, token.rv);
    } catch (err) {
      if (!(err instanceof StatusError) || err.code !== 410) throw err;
      ctx.counters.continueExpired.inc([]);
      // The fresh token continues at the latest state: usable, but no longer one consistent snapshot.
      const fresh = encodeContinue(store.currentRv, token.start.endsWith('\u0000') ? token.start.slice(0, -1) : token.start);
      throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.', fresh);
    }
  } else if (rv === undefined) {
    // Consistent: at etcd's current revision, a lagging follower's too (StoreView.etcdSnapshot).
    snap = store.etcdSnapshot(r.def);
  } else if (rv === 0) {
    // Served from the cache at any RV; the cacher ignores limit here (computeListLimit).
    limit = 0;
    snap = store.snapshot(r.def, store.currentRv);
  } else if (rvm === 'Exact' || (rvm === '' && limit > 0)) {
    if (rv > store.currentRv) throw tooLargeRv();
    snap = store.snapshot(r.def, rv);
  } else {
    if (rv > store.currentRv && !(await store.waitForRv(rv, ctx.behaviour.rvWaitMs))) throw tooLargeRv();
    snap = store.snapshot(r.def, store.currentRv);
  }
  await writeList(ctx, r, snap, filter, limit, startKey);
}

async function writeList(ctx: SimContext<StoreView>, r: ApiRequest, snap: Snapshot, filter: Filter, limit: number, startKey: string | undefined): Promise<void> {
  const { def } = r;
  const items = snap.items;
  let i = 0;
  let end = items.length;
  if (filter.namespace !== undefined && def.namespaced) {
    i = lowerBound(items, `${filter.namespace}/`);
    end = lowerBound(items, `${filter.namespace}0`); // '0' is the character after '/'
  }
  if (startKey !== undefined) i = Math.max(i, lowerBound(items, startKey));
  const selected: StoredObject[] = [];
  const hasSelector = filter.labels.length > 0 || filter.fields.length > 0;
  for (; i < end && (limit === 0 || selected.length < limit); i++) {
    const o = items[i] as StoredObject;
    if (!hasSelector || matches(filter, o)) selected.push(o);
  }
  let cont = '';
  let remaining: number | undefined;
  if (limit > 0 && i < end && selected.length > 0) {
    cont = encodeContinue(snap.rv, (selected[selected.length - 1] as StoredObject).key);
    if (!hasSelector) remaining = end - i;
  }
  const rs = ctx.store.resource(def.id);
  const prefix = rs?.prefix;
  const listKind = `${def.kind}List`;
  const apiVersion = apiVersionOf(def);
  let head: string;
  let tail: string;
  if (def.encoding === 'builtin') {
    const meta: Record<string, unknown> = { resourceVersion: String(snap.rv) };
    if (cont !== '') meta['continue'] = cont;
    if (remaining !== undefined) meta['remainingItemCount'] = remaining;
    head = `{"kind":${JSON.stringify(listKind)},"apiVersion":${JSON.stringify(apiVersion)},"metadata":${goJson(meta)},"items":[`;
    tail = ']}';
  } else {
    const meta: Record<string, unknown> = { continue: cont };
    if (remaining !== undefined) meta['remainingItemCount'] = remaining;
    meta['resourceVersion'] = String(snap.rv);
    head = `{"apiVersion":${JSON.stringify(apiVersion)},"items":[`;
    tail = `],"kind":${JSON.stringify(listKind)},"metadata":${goJson(meta)}}`;
  }
  const open = Buffer.from('{');
  const comma = Buffer.from(',');
  function* chunks(): Generator<Buffer> {
    yield Buffer.from(head);
    let first = true;
    for (const o of selected) {
      if (!first) yield comma;
      first = false;
      if (prefix !== undefined) {
        // Built-in list items carry no kind/apiVersion: drop the stored prefix.
        yield open;
        yield o.bytes.subarray(prefix.length);
      } else yield o.bytes;
    }
    yield Buffer.from(tail);
  }
  ctx.counters.listPages.inc([def.id]);
  ctx.counters.listItems.inc([def.id], selected.length);
  const bytes = await writeBody(r.res, 200, chunks());
  ctx.counters.bytesSent.inc(['list'], bytes);
  ctx.counters.listResponseBytes.observe(bytes);
}
