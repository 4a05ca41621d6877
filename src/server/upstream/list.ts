/**
 * A reflector's paged LIST: the first list is consistent and paged, relists are NotOlderThan the
 * last applied resourceVersion; an expired continue token restarts the list consistently (never
 * continues at a newer snapshot). The pages fill one list session that the reflector commits.
 *
 * Each page body is read up to `listMaxBytes` (upstreamListMaxBytes): `limit` bounds items, not
 * bytes, and a server may ignore it. A larger body fails the list with 'body-too-large'
 * (CATTAIL_UPSTREAM_LIST_TOO_LARGE); recovery.ts then halves `r.listLimit` for the next list, and
 * a list that succeeds LIST_PAGE_KEEP_MS (an hour) after the last too-large body puts it back to
 * listPageSize.
 */
import { UpstreamFailure, checkedResourceVersion, tooLargeResourceVersion } from './failure.js';

/**
 * Pages one list may have: 20,000 pages of `listPageSize` (500 by default) is 10 million objects,
 * far above any cluster's; past it the server is answering garbage (refused as malformed).
 */
export const MAX_LIST_PAGES = 20_000;
import { parseJson } from './json.js';
import { LIST_PAGE_KEEP_MS, type ReflectorCore } from './reflector-core.js';
import type { GuardedResponse } from './request.js';
import type { ListSession } from './resource-view.js';
import { readBody } from './stream.js';
import type { KubeObject } from './types.js';

/**
 * A failure a continue page is asked again for: the page did not arrive (throttled, a server
 * error, the connection dropped or went silent), and the token stays valid until its snapshot is
 * compacted (then 410, which restarts the list). Not a 504 that says "too large resourceVersion"
 * (failure.ts tooLargeResourceVersion; recovery.ts relists consistently), nor anything the list
 * itself is wrong about.
 */
function pageRetryable(err: unknown): boolean {
  if (!(err instanceof UpstreamFailure)) return false;
  if (err.kind === 'network' || err.kind === 'watchdog') return true;
  const code = err.k8sCode;
  return err.kind === 'http' && code !== undefined && (code === 429 || (code >= 500 && !tooLargeResourceVersion(err)));
}

export async function listPages(r: ReflectorCore): Promise<void> {
  // A list that failed at a continue page goes on from that page (after recovery's backoff or
  // Retry-After), with the same mode and page size: starting over threw its pages away, and on a
  // cluster of 300 pages a 1 % chance of a throttled page left ~5 % of lists ever completing, each
  // retry adding list load to the server that throttled it.
  const resume = r.partialList !== undefined && r.partialList.mode === r.listMode && r.partialList.limit === r.listLimit ? r.partialList : undefined;
  r.partialList = undefined;
  const mode = r.listMode;
  const limit = r.listLimit;
  const maxBytes = r.o.listMaxBytes;
  r.o.metrics.listPageSize.set({ resource: r.id }, limit);
  const tooLarge = (bytes: number): UpstreamFailure =>
    new UpstreamFailure('body-too-large', `list ${r.id}: response body of ${bytes} bytes or more is above upstreamListMaxBytes (${maxBytes}) at limit=${limit}`, 200);
  // First list: consistent and paged (RV unset + limit). RV=0 would be served from the watch
  // cache but ignores `limit`, answering 150k pods in one body (beyond V8's string limit) and
  // possibly older than another replica's data. Relists: NotOlderThan the last RV.
  let first: Record<string, string | number | undefined> =
    mode === 'not-older-than' && r.rv !== undefined ? { resourceVersion: r.rv, resourceVersionMatch: 'NotOlderThan', limit } : { limit };
  let session: ListSession = resume?.session ?? r.o.view.beginList();
  let listRv: string | undefined = resume?.listRv;
  let cont: string | undefined = resume?.cont;
  let restartedConsistent = resume?.restartedConsistent ?? false;
  /** The continue tokens of this list (see MAX_LIST_PAGES). */
  const tokens = resume?.tokens ?? new Set<string>();
  /** Pages of this list received so far (over the attempts it went on through). */
  let pages = resume?.pages ?? 0;
  try {
    await fetchPages();
  } catch (err) {
    // Pages received count towards health only once (see fetchPages), over every attempt until
    // a list commits: a relist that fails at page 150 and starts over must not keep the resource
    // "fresh" by fetching pages 2-149 again and again while nothing is applied.
    r.listPagesReached = Math.max(r.listPagesReached, pages);
    if (cont !== undefined && pageRetryable(err) && !r.stopped) {
      r.partialList = { mode, limit, session, listRv, cont, tokens, restartedConsistent, pages };
      r.o.logger.info({ resource: r.id, pages, err: (err as Error).message }, 'a list page failed; the next attempt goes on from it');
    }
    throw err;
  }
  r.finishList(session, listRv);
  // The smaller size that worked is kept for a while (LIST_PAGE_KEEP_MS): put back at once, every
  // relist read up to the cap again before halving.
  if (r.listLimit !== r.o.listPageSize && r.o.clock.monotonic() - r.listTooLargeAtMs >= LIST_PAGE_KEEP_MS) {
    r.o.logger.info({ resource: r.id, pageSize: r.listLimit, listPageSize: r.o.listPageSize }, 'list succeeded with smaller pages, the last too-large body long ago; the next list uses listPageSize again');
    r.listLimit = r.o.listPageSize;
  }

  async function fetchPages(): Promise<void> {
    for (;;) {
      let page: GuardedResponse;
      try {
        page = await r.request('list', r.query(cont === undefined ? first : { limit, continue: cont }));
      } catch (err) {
        if (err instanceof UpstreamFailure && err.kind === 'http' && err.status === 410 && cont !== undefined && !restartedConsistent) {
          // The continue token expired (its snapshot was compacted). The fresh token in the 410
          // would continue at a newer snapshot (inconsistent): start over with a consistent list.
          r.o.metrics.relists.inc({ resource: r.id, reason: 'continue-expired' });
          r.o.logger.info({ resource: r.id }, 'continue token expired; restarting the list consistently');
          restartedConsistent = true;
          session = r.o.view.beginList();
          cont = undefined;
          tokens.clear();
          listRv = undefined;
          pages = 0;
          first = { limit };
          continue;
        }
        throw err;
      }
      let text: string;
      try {
        text = await readBody(page.res, page.watchdog, page.signal, maxBytes, tooLarge);
      } finally {
        page.done();
      }
      let parsed: { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown };
      try {
        parsed = parseJson(text) as typeof parsed;
      } catch (err) {
        // A RangeError is the text being too large to parse (or to quote big integers in), not bad JSON.
        if (err instanceof RangeError) throw new UpstreamFailure('body-too-large', `list ${r.id}: response of ${text.length} characters too large to parse at limit=${limit}: ${err.message}`, 200, undefined, undefined, err);
        throw new UpstreamFailure('malformed', `list ${r.id}: response is not JSON`, 200, undefined, undefined, err);
      }
      if (!Array.isArray(parsed?.items)) throw new UpstreamFailure('malformed', `list ${r.id}: response has no items`, 200);
      listRv ??= parsed.metadata?.resourceVersion;
      const next = parsed.metadata?.continue || undefined;
      // Refused at its first page (finishList would at the end), before it counts as a healthy
      // answer: no resourceVersion, or older than the state already served. Counted healthy, a
      // server stuck behind (etcd restored without a revision bump) answered every retry "in time"
      // and the resource never turned stale while nothing moved.
      if (cont === undefined) {
        const rv = checkedResourceVersion(listRv, `list of ${r.id}`);
        if (rv === undefined) throw new UpstreamFailure('malformed', `list of ${r.id} has no resourceVersion`, 200);
        r.refuseOlderList(rv);
      }
      // Pages are fetched back to back (the attempt gate and backoff apply between attempts): a
      // server that hands the same token again, or never stops, must not make that a hot loop.
      if (next !== undefined && (tokens.has(next) || tokens.size >= MAX_LIST_PAGES)) {
        throw new UpstreamFailure('malformed', `list ${r.id}: ${tokens.has(next) ? 'a continue token came twice' : `more than ${MAX_LIST_PAGES} pages`}`, 200);
      }
      // Healthy once the list is seen to move: its last page, or a page after the first (a new
      // token) that no failed attempt of this list got to before. The first page of several
      // confirms nothing yet: a server that repeats its token would otherwise be "fresh" at every
      // retry; nor does a page fetched again after a failed attempt.
      pages++;
      if (next === undefined || (cont !== undefined && pages > r.listPagesReached)) r.confirmHealthy();
      for (const item of parsed.items as unknown[]) {
        if (typeof item !== 'object' || item === null) {
          r.o.metrics.skipped.inc({ resource: r.id, reason: 'malformed' });
          continue;
        }
        session.add(item as KubeObject);
      }
      cont = next;
      if (cont === undefined) break;
      tokens.add(cont);
    }
  }
}
