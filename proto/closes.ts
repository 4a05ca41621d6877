/**
 * How a connection ends: the one table of close codes (PROTOCOL.md §1.3) and of the ERROR codes
 * that precede them (§4.12). The server's close paths and the client's both derive the close code
 * from the error code through this table, so a code cannot end a connection with one close code
 * on one side and another close code on the other.
 *
 * Rejected alternative: each side keeping its own numbers (the server had a `CloseCode` object
 * and the client bare 4001/4002/4013…): they drifted apart silently, and PROTOCOL.md could only be
 * checked against one of them.
 */
import type { ErrorCode } from '../src/errors.js';

/**
 * What a client does after a close with a code:
 * - `reconnect`: reconnect with backoff and resume (a blip, a protocol slip, a timeout);
 * - `resync`: reconnect without trusting its resume token (its state no longer proves a revision);
 * - `move`: reconnect elsewhere after the GOODBYE's `reconnectDelayMs`, trying its `endpoints` first;
 * - `reject`: a retry will not fix it soon (configuration, version, identity): retry only at the
 *   longest backoff, never in a loop;
 * - `behind`: the replica's state is older than the client's: keep the state and the token, try
 *   another endpoint or this one again after a delay (the replica catches up);
 * - `none`: a normal end; reconnect only if it still wants data.
 */
export type CloseReaction = 'none' | 'reconnect' | 'resync' | 'move' | 'reject' | 'behind';

/** Close codes (§1.3): the numeric code, who sends it, what it means, and the client's reaction. */
export const CLOSE_CODES = {
  NORMAL: { code: 1000, sentBy: 'either', reaction: 'none', meaning: 'normal close' },
  // Not sent by Cattail (it says GOODBYE and closes 4010); a proxy in between may.
  GOING_AWAY: { code: 1001, sentBy: '—', reaction: 'reconnect', meaning: 'going away' },
  // Never on the wire: what a WebSocket library reports for a connection that dropped.
  NO_CLOSE_FRAME: { code: 1006, sentBy: '—', reaction: 'reconnect', meaning: 'no close frame: the connection dropped' },
  // The WebSocket layer's own refusals, before the protocol sees the message (no ERROR).
  WEBSOCKET_PROTOCOL_ERROR: { code: 1002, sentBy: 'either', reaction: 'reconnect', meaning: 'a WebSocket framing violation (unmasked client frame, reserved bits or opcodes, invalid close code)' },
  INVALID_TEXT: { code: 1007, sentBy: 'either', reaction: 'reconnect', meaning: 'a text message that is not valid UTF-8 (uWebSockets.js and the Cattail client check it themselves)' },
  POLICY_VIOLATION: { code: 1008, sentBy: 'server', reaction: 'reconnect', meaning: 'a message in too many pieces: more than 64 fragments, or a frame not whole after 1,024 reads (more above 64 KiB maxInboundBytes)' },
  MESSAGE_TOO_BIG: { code: 1009, sentBy: 'either', reaction: 'reconnect', meaning: "message far above the receiver's limit, refused before buffering" },
  MALFORMED_FRAME: { code: 4000, sentBy: 'either', reaction: 'reconnect', meaning: 'malformed frame: bad header, truncated, body not valid msgpack, wrong field types' },
  UNSUPPORTED_VERSION: { code: 4001, sentBy: 'either', reaction: 'reject', meaning: 'unsupported protocol version or subprotocol' },
  UNEXPECTED_MESSAGE: { code: 4002, sentBy: 'either', reaction: 'reconnect', meaning: 'unexpected message: unknown type, wrong direction, wrong order, unknown flag bits' },
  FRAME_TOO_LARGE: { code: 4003, sentBy: 'either', reaction: 'reconnect', meaning: "frame too large (above the receiver's limit)" },
  HANDSHAKE_TIMEOUT: { code: 4004, sentBy: 'server', reaction: 'reconnect', meaning: 'handshake timeout: no HELLO within handshakeTimeoutMs' },
  PONG_TIMEOUT: { code: 4005, sentBy: 'server', reaction: 'reconnect', meaning: 'pong timeout: no PONG within pongTimeoutMs' },
  UNKNOWN_FEED: { code: 4006, sentBy: 'server', reaction: 'reject', meaning: 'unknown feed requested' },
  FELL_BEHIND: { code: 4007, sentBy: 'server', reaction: 'reconnect', meaning: 'fell behind: applied state older than maxFallBehindMs after the grace period' },
  OVER_BUDGET: { code: 4008, sentBy: 'server', reaction: 'reconnect', meaning: "over a byte budget: the client's own (maxClientBytes), or the server's for unfinished inbound frames" },
  SHED: { code: 4009, sentBy: 'server', reaction: 'move', meaning: 'shed: the server rebalances load; try another endpoint' },
  SHUTTING_DOWN: { code: 4010, sentBy: 'server', reaction: 'move', meaning: 'server shutting down (after GOODBYE)' },
  UNAUTHORIZED: { code: 4011, sentBy: 'server', reaction: 'reject', meaning: 'unauthorized (TLS client identity rejected)' },
  INTERNAL_ERROR: { code: 4012, sentBy: 'either', reaction: 'reconnect', meaning: 'internal error (a bug in the peer that closes)' },
  READ_TIMEOUT: { code: 4013, sentBy: 'client', reaction: 'reconnect', meaning: 'client-side read timeout (no frame within its read timeout)' },
  STATE_CHECK_FAILED: { code: 4014, sentBy: 'client', reaction: 'resync', meaning: 'client-side state check failed (digest mismatch, revision gap)' },
  REPLICA_BEHIND: { code: 4015, sentBy: 'server', reaction: 'behind', meaning: "replica behind the client: its state is older than the watermarks the client presented (rebase reason behind)" },
} as const satisfies Record<string, { code: number; sentBy: 'either' | 'server' | 'client' | '—'; reaction: CloseReaction; meaning: string }>;
export type CloseCodeName = keyof typeof CLOSE_CODES;
export type CloseCode = (typeof CLOSE_CODES)[CloseCodeName]['code'];

/**
 * Every ERROR code that ends a connection, with the close that follows it (§4.12). `sentBy` says
 * which side sends it on the wire; a code of the other side never appears in its ERRORs. A
 * `reaction` here overrides the close code's for a client that knows this ERROR code.
 */
export const CLOSE_OF_ERROR = {
  // Decode errors (proto/codec): either side.
  CATTAIL_PROTO_TRUNCATED: { close: 'MALFORMED_FRAME', sentBy: 'either' },
  CATTAIL_PROTO_BAD_HEADER: { close: 'MALFORMED_FRAME', sentBy: 'either' },
  CATTAIL_PROTO_BAD_BODY: { close: 'MALFORMED_FRAME', sentBy: 'either' },
  CATTAIL_PROTO_UNSUPPORTED_VERSION: { close: 'UNSUPPORTED_VERSION', sentBy: 'either' },
  CATTAIL_PROTO_UNKNOWN_TYPE: { close: 'UNEXPECTED_MESSAGE', sentBy: 'either' },
  CATTAIL_PROTO_BAD_FLAGS: { close: 'UNEXPECTED_MESSAGE', sentBy: 'either' },
  CATTAIL_PROTO_FRAME_TOO_LARGE: { close: 'FRAME_TOO_LARGE', sentBy: 'either' },
  // The server's session.
  CATTAIL_SERVER_BAD_SUBPROTOCOL: { close: 'UNSUPPORTED_VERSION', sentBy: 'server' },
  CATTAIL_SERVER_BAD_HELLO: { close: 'MALFORMED_FRAME', sentBy: 'server' },
  CATTAIL_SERVER_UNEXPECTED_MESSAGE: { close: 'UNEXPECTED_MESSAGE', sentBy: 'server' },
  CATTAIL_SERVER_UNKNOWN_FEED: { close: 'UNKNOWN_FEED', sentBy: 'server' },
  CATTAIL_SERVER_HANDSHAKE_TIMEOUT: { close: 'HANDSHAKE_TIMEOUT', sentBy: 'server' },
  CATTAIL_SERVER_PONG_TIMEOUT: { close: 'PONG_TIMEOUT', sentBy: 'server' },
  CATTAIL_SERVER_FELL_BEHIND: { close: 'FELL_BEHIND', sentBy: 'server' },
  CATTAIL_SERVER_OVER_BUDGET: { close: 'OVER_BUDGET', sentBy: 'server' },
  // Reconnecting would meet the same entry: a configuration problem, not a blip.
  CATTAIL_SERVER_ENTRY_TOO_LARGE: { close: 'FRAME_TOO_LARGE', sentBy: 'server', reaction: 'reject' },
  CATTAIL_SERVER_SHED: { close: 'SHED', sentBy: 'server' },
  CATTAIL_SERVER_SHUTTING_DOWN: { close: 'SHUTTING_DOWN', sentBy: 'server' },
  CATTAIL_SERVER_UNAUTHORIZED: { close: 'UNAUTHORIZED', sentBy: 'server' },
  CATTAIL_SERVER_REPLICA_BEHIND: { close: 'REPLICA_BEHIND', sentBy: 'server' },
  // Per-node scoping (§7.3): another node than the certificate's, or no scope.node capability.
  CATTAIL_SERVER_NODE_MISMATCH: { close: 'UNAUTHORIZED', sentBy: 'server' },
  CATTAIL_SERVER_SCOPE_UNSUPPORTED: { close: 'UNKNOWN_FEED', sentBy: 'server' },
  CATTAIL_INTERNAL: { close: 'INTERNAL_ERROR', sentBy: 'either' },
  // The client's checks.
  CATTAIL_CLIENT_PROTOCOL_ERROR: { close: 'UNEXPECTED_MESSAGE', sentBy: 'client' },
  CATTAIL_CLIENT_HANDSHAKE_FAILED: { close: 'UNEXPECTED_MESSAGE', sentBy: 'client' },
  CATTAIL_CLIENT_HANDSHAKE_TIMEOUT: { close: 'READ_TIMEOUT', sentBy: 'client' },
  CATTAIL_CLIENT_READ_TIMEOUT: { close: 'READ_TIMEOUT', sentBy: 'client' },
  CATTAIL_CLIENT_REVISION_GAP: { close: 'STATE_CHECK_FAILED', sentBy: 'client' },
  CATTAIL_CLIENT_DIGEST_MISMATCH: { close: 'STATE_CHECK_FAILED', sentBy: 'client' },
  CATTAIL_CLIENT_REPAIR_FAILED: { close: 'STATE_CHECK_FAILED', sentBy: 'client' },
  // Not an ERROR: the client says GOODBYE (`replica-behind`) and closes normally.
  CATTAIL_CLIENT_REPLICA_BEHIND: { close: 'NORMAL', sentBy: 'client' },
} as const satisfies Partial<Record<ErrorCode, { close: CloseCodeName; sentBy: 'either' | 'server' | 'client'; reaction?: CloseReaction }>>;

/** An error code that ends a connection (a key of {@link CLOSE_OF_ERROR}). */
export type ClosingErrorCode = keyof typeof CLOSE_OF_ERROR;

export function isClosingErrorCode(code: string): code is ClosingErrorCode {
  return Object.hasOwn(CLOSE_OF_ERROR, code);
}

/** The close code that follows an ERROR with `code`. */
export function closeCodeOf(code: ClosingErrorCode): CloseCode {
  return CLOSE_CODES[CLOSE_OF_ERROR[code].close].code;
}

const REACTION_OF_CODE = new Map<number, CloseReaction>(Object.values(CLOSE_CODES).map((c) => [c.code, c.reaction]));

/**
 * What a client does after an ERROR with `errorCode` (when one came) and a close with `closeCode`:
 * the ERROR code's own reaction where the table gives one, else that of the close code the ERROR
 * names. The ERROR decides even when the close that follows is another (a connection that
 * dropped after it, 1006): a replica that said REPLICA_BEHIND or UNAUTHORIZED before the
 * socket broke is behind, or refusing, all the same, and retrying it at once as after a blip
 * undid the reaction. An unknown ERROR code leaves it to the close code.
 */
export function reactionToClose(errorCode: string | undefined, closeCode: number): CloseReaction {
  if (errorCode !== undefined && isClosingErrorCode(errorCode)) {
    const entry = CLOSE_OF_ERROR[errorCode];
    if ('reaction' in entry) return entry.reaction;
    return reactionTo(closeCodeOf(errorCode));
  }
  return reactionTo(closeCode);
}

/**
 * What a client does after the peer closed with `code`. An unknown 4xxx code is treated like
 * 4012 (reconnect with backoff), as §4.12 asks for unknown ERROR codes.
 */
export function reactionTo(code: number): CloseReaction {
  return REACTION_OF_CODE.get(code) ?? 'reconnect';
}
