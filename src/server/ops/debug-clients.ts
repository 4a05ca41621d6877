/**
 * /debug/clients: what each agent connection is doing, as JSON, for the operator's question
 * "which node is behind, and why" (Typha cannot answer it: it has per-syncer aggregates only).
 * It names every node and address, so the server serves it only with `--debug-endpoints`.
 *
 * Bounded: one page holds at most {@link MAX_CLIENTS_LIMIT} connections (default
 * {@link DEFAULT_CLIENTS_LIMIT}) in ascending connection id; the answer's `next` is the `after` of
 * the next page. 10,000 agents are ten requests of a few hundred kilobytes, never one 10 MB body
 * built while the event loop waits. `?node=NAME` keeps the connections of one node.
 *
 * Rejected: a total count of matching connections in every page (a full walk per page for a
 * number `open` nearly gives away), and offsets (a page shifts when an earlier agent leaves).
 */
import type { Clock } from '../../clock.js';
import { InvalidArgumentError } from '../../errors.js';
import { type Connection, type ConnectionMode, cursorMode } from '../transport/connection.js';

export const DEFAULT_CLIENTS_LIMIT = 100;
export const MAX_CLIENTS_LIMIT = 1_000;

export interface ClientsQuery {
  /** Only connections whose HELLO named this node. */
  readonly node: string | undefined;
  /** Connections per page, 1 to MAX_CLIENTS_LIMIT. */
  readonly limit: number;
  /** Only connections with an id above this (the previous page's `next`); 0 for the first page. */
  readonly after: number;
}

export interface ClientFeedInfo {
  readonly feed: string;
  readonly mode: 'snapshot' | 'catching-up' | 'streaming';
  /** The revision the agent will hold once everything written so far arrives. */
  readonly revisionSent: number;
  /** The highest revision the agent acknowledged (0 before its first ACK). */
  readonly revisionAcked: number;
  /** The feed's newest flushed revision, for comparison. */
  readonly revisionLatest: number;
  /** Milliseconds the acknowledged revision is behind the newest (0 when caught up). */
  readonly lagMs: number;
}

export interface ClientInfo {
  readonly id: number;
  /** null until the HELLO arrives. */
  readonly node: string | null;
  readonly clientId: string | null;
  readonly remoteAddress: string | null;
  /** The client certificate's identity on a TLS agent port; null on a cleartext one. */
  readonly tlsIdentity: string | null;
  readonly mode: ConnectionMode;
  readonly compression: string;
  /** ISO 8601 wall time (from the server's injected clock). */
  readonly connectedSince: string;
  /** Bytes handed to the socket for this agent so far, shared frames included. */
  readonly bytesWritten: number;
  /** Bytes written and not yet taken by the kernel (skipped by the fan-out above socketHighWaterBytes). */
  readonly bufferedBytes: number;
  /** Of those, bytes of frames built for this agent alone (bounded by maxClientBytes). */
  readonly ownBufferedBytes: number;
  readonly feeds: readonly ClientFeedInfo[];
}

export interface ClientsPage {
  /** Open connections on this server, all nodes. */
  readonly open: number;
  readonly limit: number;
  readonly clients: readonly ClientInfo[];
  /** Pass as `after` for the next page; null on the last page. */
  readonly next: number | null;
}

function intParam(params: URLSearchParams, name: string, fallback: number, min: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min)) throw new InvalidArgumentError(`/debug/clients: ${name} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`, { details: { param: name, value: raw } });
  return n;
}

/**
 * `?node=&limit=&after=` → a query. A limit above MAX_CLIENTS_LIMIT is lowered to it (the answer
 * says which limit applied).
 * @throws InvalidArgumentError when limit or after is not a non-negative integer (limit ≥ 1)
 */
export function parseClientsQuery(params: URLSearchParams): ClientsQuery {
  const node = params.get('node');
  return {
    node: node === null || node === '' ? undefined : node,
    limit: Math.min(MAX_CLIENTS_LIMIT, intParam(params, 'limit', DEFAULT_CLIENTS_LIMIT, 1)),
    after: intParam(params, 'after', 0, 0),
  };
}

/**
 * One page of `items` (in ascending id, which is the fan-out's insertion order). Stops walking
 * once the page is full and one more match shows there is a next page.
 */
export function pageOf<T extends { readonly id: number; readonly node: string }>(items: Iterable<T>, q: ClientsQuery): { items: T[]; next: number | null } {
  const page: T[] = [];
  for (const it of items) {
    if (it.id <= q.after || (q.node !== undefined && it.node !== q.node)) continue;
    if (page.length === q.limit) return { items: page, next: (page[page.length - 1] as T).id };
    page.push(it);
  }
  return { items: page, next: null };
}

function describeClient(conn: Connection, nowMonotonicMs: number): ClientInfo {
  return {
    id: conn.id,
    node: conn.state === 'handshake' ? null : conn.node,
    clientId: conn.state === 'handshake' ? null : conn.clientId,
    remoteAddress: conn.remoteAddress ?? null,
    tlsIdentity: conn.tlsIdentity ?? null,
    mode: conn.mode,
    compression: conn.compression,
    connectedSince: new Date(conn.connectedAtMs).toISOString(),
    bytesWritten: conn.bytesWritten,
    bufferedBytes: conn.writableBytes,
    ownBufferedBytes: conn.ownOutstandingBytes,
    feeds: conn.cursors.map((c) => ({
      feed: c.feed.name,
      mode: cursorMode(c),
      revisionSent: c.revision,
      revisionAcked: c.ackedRevision,
      revisionLatest: c.feed.flushedRevision,
      lagMs: Math.round(c.feed.lagMs(c.ackedRevision, nowMonotonicMs)),
    })),
  };
}

/** The page `q` asks for over the server's open connections. */
export function clientsPage(connections: ReadonlySet<Connection>, q: ClientsQuery, clock: Clock): ClientsPage {
  const { items, next } = pageOf(connections, q);
  const now = clock.monotonic();
  return { open: connections.size, limit: q.limit, clients: items.map((c) => describeClient(c, now)), next };
}
