/**
 * Errors with stable codes.
 *
 * Every error Cattail raises on purpose is a {@link CattailError} whose `code` is one of the
 * literals in {@link ERROR_CODES}. Match on `code`, never on `message` (messages may improve;
 * codes are a compatibility promise). The `cause` of an error is always kept.
 *
 * Rejected alternative: one class per failure. Callers of a fan-out library mostly branch on
 * "what happened" (a string) and log the rest; a class per code would multiply exports without
 * helping them. Subclasses exist only where a failure carries extra typed fields
 * (e.g. `ProtocolError.closeCode`).
 *
 * A library never calls `process.exit`: only `src/cli/main.ts` turns an error into an exit code.
 */

/**
 * The one table of error codes. Each entry: the meaning in one sentence, and the exit status the
 * `cattail` command uses when such an error ends it. Adding a code means adding it here; the
 * README's table is generated from this object (`npm run docs`, checked by a test).
 */
export const ERROR_CODES = {
  CATTAIL_INVALID_ARGUMENT: { exit: 2, text: 'A function or constructor was called with an argument that fails validation; the message names it.' },
  CATTAIL_CONFIG_INVALID_VALUE: { exit: 2, text: 'An option (flag, environment variable or config file entry) has a value that fails validation, or a flag that takes a value has none (`--listen` last, or followed by another flag); the message names the option, its source and the value.' },
  CATTAIL_CONFIG_UNKNOWN_OPTION: { exit: 2, text: 'A flag or config file key names no option of this command (typos are errors, not silently ignored; a near flag is suggested), or a file-only option is given as a flag.' },
  CATTAIL_CONFIG_UNEXPECTED_ARGUMENT: { exit: 2, text: 'The command line holds an argument that is no option: commands take no positional arguments, and a boolean flag takes no value (`--no-watch-list`, not `--watch-list false`).' },
  CATTAIL_CONFIG_FILE_UNREADABLE: { exit: 2, text: 'The config file could not be read or parsed as YAML/JSON.' },
  CATTAIL_CLI_UNKNOWN_COMMAND: { exit: 2, text: 'The first argument is not a `cattail` subcommand.' },
  // --- Upstream (src/server/upstream): the Kubernetes API side of `cattail serve`. ---
  CATTAIL_UPSTREAM_CONFIG: { exit: 2, text: 'No usable kubeconfig: none given, no KUBECONFIG, not in a cluster, or the kubeconfig names no current cluster.' },
  CATTAIL_UPSTREAM_FEED_INVALID: { exit: 2, text: 'A selected feed is unknown, or a customFeeds declaration is invalid (unknown resource, bad selector or projection, duplicate name); the message names the feed.' },
  CATTAIL_UPSTREAM_REQUEST_FAILED: { exit: 1, text: 'A list or watch request to the API server failed (network, HTTP status, in-stream ERROR, silent stream); the reflector logs it and retries with backoff.' },
  CATTAIL_UPSTREAM_UNAUTHORIZED: { exit: 1, text: 'The API server refused the replica\'s credentials (401) or permissions (403); logged loudly, counted, and readiness is false until it passes.' },
  CATTAIL_UPSTREAM_LIST_TOO_LARGE: { exit: 1, text: 'A LIST response body was larger than upstreamListMaxBytes (or too large to hold as one string): the read stops at the cap and the list attempt fails, never the process; the reflector halves that resource\'s page size (down to 1 item) and lists again, and the page size returns to listPageSize once a list succeeds.' },
  CATTAIL_UPSTREAM_MALFORMED_OBJECT: { exit: 1, text: 'An object or watch line could not be parsed or projected; it is counted and skipped, never fatal.' },
  // --- Simulated API server (src/sim) ---
  CATTAIL_SIM_UNKNOWN_RESOURCE: { exit: 2, text: 'An admin call named a resource the simulator does not serve (see src/registry.ts).' },
  CATTAIL_SIM_WRITE_REJECTED: { exit: 1, text: 'An admin write was refused as the API server would refuse it (not found, already exists, conflict, invalid); details carry the HTTP code and reason.' },
  CATTAIL_SIM_LISTEN_FAILED: { exit: 1, text: 'The simulator could not bind its loopback port (in use, or not permitted).' },
  CATTAIL_SIM_KUBECONFIG_WRITE_FAILED: { exit: 1, text: 'The simulator could not write its kubeconfig file (directory missing or not writable).' },
  // --- Simulated API server: faults, HA, HTTPS (src/sim/faults, src/sim/ha, src/sim/tls) ---
  CATTAIL_SIM_FAULT_INVALID: { exit: 2, text: 'A fault rule or timeline entry given to the simulator is malformed (unknown kind, verb that does not apply, probability outside [0, 1]).' },
  CATTAIL_SIM_TLS_FAILED: { exit: 1, text: 'The simulator could not generate its CA/server certificate or write its service-account directory.' },
  // --- src/snapshot (the versioned store) ---
  CATTAIL_SNAPSHOT_INVALID_BATCH: { exit: 1, text: 'A batch given to a feed store is malformed (key not a non-empty string, value not bytes or null, unknown sync status, watermark not a decimal resourceVersion); the store rejected all of it and is unchanged.' },
  CATTAIL_INTERNAL: { exit: 1, text: 'An invariant was violated; this is a bug, and the cause is attached.' },
  // --- Node-agent client library (src/client) and `cattail agent`. Reported through the client's status
  // stream (the client reconnects by itself); only the agent command turns them into exit codes. ---
  CATTAIL_CLIENT_CONNECT_FAILED: { exit: 4, text: 'The client could not open a WebSocket to a server (network error, TLS failure, unexpected HTTP answer); it retries with backoff.' },
  CATTAIL_CLIENT_REFUSED: { exit: 4, text: 'A server refused the upgrade with 503; the client waits Retry-After before trying that server again and tries hinted endpoints first.' },
  CATTAIL_CLIENT_HANDSHAKE_FAILED: { exit: 4, text: 'The connection opened but the handshake failed: wrong subprotocol, a WELCOME that does not answer the HELLO (feeds not answered as asked), or one announcing a data model the agent said it does not apply (the models option) or a snapshot of a feed with other resources than the host said it needs (the resources option); the client closes with 4002. A WELCOME of another protocol version is CATTAIL_PROTO_UNSUPPORTED_VERSION (4001).' },
  CATTAIL_CLIENT_HANDSHAKE_TIMEOUT: { exit: 4, text: 'The connection opened but no WELCOME arrived within handshakeTimeoutMs; the client closes with 4013 and reconnects with backoff.' },
  CATTAIL_CLIENT_READ_TIMEOUT: { exit: 4, text: 'Nothing arrived from the server for the read timeout (3 × its pingIntervalMs); the connection is treated as black-holed and closed with 4013.' },
  CATTAIL_CLIENT_PROTOCOL_ERROR: { exit: 4, text: 'The server sent a malformed or unexpected frame (the cause is the codec\'s ProtocolError); the client closes with its close code and reconnects, keeping its state.' },
  CATTAIL_CLIENT_REVISION_GAP: { exit: 4, text: "A DELTA's fromRevision is not the feed's applied revision; the client closes with 4014 and resyncs." },
  CATTAIL_CLIENT_REPAIR_FAILED: { exit: 4, text: "After a range repair (PROTOCOL.md §7.2) the feed's state still does not hash to the server's digest; the client closes with 4014 and resyncs with a snapshot." },
  CATTAIL_CLIENT_DIGEST_MISMATCH: { exit: 4, text: "The feed's state after a SNAPSHOT_END or in-sync STATUS does not hash to the server's digest (or a snapshot's entry count differs); the client closes with 4014 and resyncs." },
  CATTAIL_CLIENT_REPLICA_BEHIND: { exit: 4, text: "A server's upstream watermarks are older than what the client already applied; the client keeps its state and tries another endpoint after a wait." },
  CATTAIL_CLIENT_SERVER_CLOSED: { exit: 4, text: 'The server closed the connection (the close code, reason and any GOODBYE are in the details); the client reconnects as the close code says.' },
  CATTAIL_CLIENT_REJECTED: { exit: 4, text: 'The server rejected the client for a reason a retry will not fix soon (4001 protocol, 4006 unknown feed, 4011 unauthorized, or an ERROR CATTAIL_SERVER_ENTRY_TOO_LARGE before 4003); the client retries only at its longest backoff.' },
  CATTAIL_CLIENT_CHECKPOINT_INVALID: { exit: 4, text: 'The agent\'s checkpoint in its state directory was not used: unreadable, another format version, truncated, a checksum or digest that does not match, or another node\'s; the agent starts empty and takes a snapshot (the file is replaced by the next good checkpoint).' },
  CATTAIL_CLIENT_CHECKPOINT_WRITE_FAILED: { exit: 4, text: 'The agent could not write its checkpoint (directory missing, not writable, disk full); it keeps running and tries again at the next interval, and the previous checkpoint stays as it was.' },
  CATTAIL_CLIENT_NO_DISCOVERY_CONFIG: { exit: 2, text: '`--service` discovery (`cattail agent`, `cattail converge`) found no --kubeconfig, no KUBECONFIG, no ~/.kube/config and no in-cluster service account; it never falls back to a default cluster (a kubeconfig that is found but does not load is CATTAIL_CONFIG_INVALID_VALUE). Both fail at start-up, never retried. The client library throws it from connect() when it has no static endpoint and no endpointSliceSource either; with static endpoints it reports it as the cause of CATTAIL_CLIENT_DISCOVERY_FAILED and uses them while it keeps looking. The discovery of peer replicas by `cattail serve --service` keeps looking too, and logs it at each look. `cattail serve --upstream-cattail-service` (a second tier) is the library: without static URLs it does not start.' },
  CATTAIL_CLIENT_DISCOVERY_FAILED: { exit: 1, text: 'Listing the EndpointSlices of the configured service failed; the agent keeps its previous endpoints and retries before the next reconnect.' },
  CATTAIL_CLIENT_TLS_FILES: { exit: 4, text: 'A TLS file (CA, client certificate or key) could not be read when connecting; it is re-read on every attempt.' },
  CATTAIL_CLIENT_SERVER_IDENTITY: { exit: 4, text: "The server's certificate does not carry the expected common name or URI SAN." },
  CATTAIL_CLIENT_CLOSED: { exit: 4, text: 'The client was closed (close() or destroy()); pending waits end with this error.' },
  CATTAIL_CLIENT_MOVED: { exit: 4, text: 'The host asked the client to leave its replica for another (moveOn(): a tier-2 replica whose own agents hold newer state than its tier-1 replica); it said GOODBYE (`moving`), keeps its state and connects to the next endpoint at once.' },
  CATTAIL_CLIENT_SYNC_TIMEOUT: { exit: 5, text: '`cattail agent --once` did not see every feed in sync within --timeout-ms.' },
  CATTAIL_CLIENT_DUMP_WRITE_FAILED: { exit: 4, text: '`cattail agent --dump` could not write its file (directory removed, disk full, not permitted); the temporary file is removed and a previous dump stays as it was. A path that cannot work (no such directory, not writable, a directory) is refused at start-up with CATTAIL_CONFIG_INVALID_VALUE instead.' },
  // --- Wire protocol (proto/, src/wire): each ProtocolError also carries the WebSocket close code. ---
  CATTAIL_PROTO_TRUNCATED: { exit: 1, text: 'A frame or its msgpack body ended before its declared length (close 4000).' },
  CATTAIL_PROTO_BAD_HEADER: { exit: 1, text: 'A frame header is invalid: wrong version, non-zero reserved bytes, revision above 2^53 − 1, wrong feed id for its type, or bytes after the body (close 4000).' },
  CATTAIL_PROTO_BAD_BODY: { exit: 1, text: 'A frame body is not plain msgpack of the expected shape: bad encoding, extension type, missing key or wrong field type (close 4000).' },
  CATTAIL_PROTO_UNSUPPORTED_VERSION: { exit: 1, text: 'HELLO or WELCOME names a protocol version this peer does not speak (close 4001).' },
  CATTAIL_PROTO_UNKNOWN_TYPE: { exit: 1, text: 'A frame header names an unknown message type (close 4002).' },
  CATTAIL_PROTO_BAD_FLAGS: { exit: 1, text: 'A frame has unknown flag bits, MORE where its type forbids or requires it, or COMPRESSED where no compression was negotiated (close 4002).' },
  CATTAIL_PROTO_FRAME_TOO_LARGE: { exit: 1, text: "A frame's body (or its inflated body) exceeds the receiver's limit, or an entry cannot fit in any frame (close 4003)." },
  // --- Fan-out server (src/server): startup failures, and the codes sent in ERROR before a coded close. ---
  CATTAIL_SERVE_NO_UPSTREAM_CONFIG: { exit: 2, text: '`cattail serve` found no --kubeconfig, no KUBECONFIG and no in-cluster config; it never falls back to a simulated cluster silently (use --embedded-sim).' },
  CATTAIL_SERVER_TRANSPORT_UNAVAILABLE: { exit: 2, text: 'The chosen agent transport cannot run here: `--transport uws` and no uWebSockets.js build loads on this Node and platform (the message lists each build tried and why); the server never falls back to `ws` silently.' },
  CATTAIL_SERVER_STATE_WRITE_FAILED: { exit: 4, text: 'The replica could not write its checkpoint (`--state-dir`: disk full, I/O error, directory removed or made read-only); it keeps serving, tries again at the next interval, and the previous checkpoint stays as it was. Counted in `cattail_state_checkpoint_writes_total{result="error"}`.' },
  CATTAIL_SERVER_STATE_INVALID: { exit: 4, text: 'The replica\'s checkpoint in its state directory (`--state-dir`) was not used: unreadable, another format version, truncated, a checksum that does not match, or written for another cluster, options or projection version; the replica starts cold and lists every resource.' },
  CATTAIL_SERVER_LISTEN_FAILED: { exit: 1, text: 'The server could not listen on its agent or HTTP address (in use, not permitted); the message names the address.' },
  CATTAIL_SERVER_BAD_SUBPROTOCOL: { exit: 1, text: 'An agent did not ask for the cattail.v1 WebSocket subprotocol (close 4001).' },
  CATTAIL_SERVER_BAD_HELLO: { exit: 1, text: 'An agent sent a HELLO whose content is out of bounds: a node name or client id too long, maxFrameBytes below 4096, an empty node asking for a scoped feed (close 4000). A feeds list that is empty, longer than 16 or names a feed twice is CATTAIL_PROTO_BAD_BODY (also 4000); a wrong protocol version is CATTAIL_PROTO_UNSUPPORTED_VERSION.' },
  CATTAIL_SERVER_UNEXPECTED_MESSAGE: { exit: 1, text: 'An agent sent a message out of order or in the wrong direction (e.g. no HELLO first, a second HELLO, a text message) (close 4002).' },
  CATTAIL_SERVER_REPLICA_BEHIND: { exit: 4, text: 'An agent presented watermarks newer than this replica\'s state (rebase watermarks or notBefore, PROTOCOL.md §7.1 and §8), e.g. to a replica restarted from its checkpoint or a lagging one: refused before any snapshot (close 4015); the agent keeps its state and comes back later or goes elsewhere.' },
  CATTAIL_SERVER_UNKNOWN_FEED: { exit: 1, text: 'An agent asked for a feed this server does not serve (close 4006).' },
  CATTAIL_SERVER_HANDSHAKE_TIMEOUT: { exit: 1, text: 'An agent sent no HELLO within handshakeTimeoutMs (close 4004).' },
  CATTAIL_SERVER_PONG_TIMEOUT: { exit: 1, text: 'An agent answered no PING within pongTimeoutMs (close 4005).' },
  CATTAIL_SERVER_FELL_BEHIND: { exit: 1, text: 'An agent stayed behind longer than maxFallBehindMs after its grace period, or was still reading an outdated snapshot while such snapshots passed snapshotPinnedMaxBytes (close 4007).' },
  CATTAIL_SERVER_OVER_BUDGET: { exit: 1, text: "The frames built for one agent alone exceeded maxClientBytes, or the agent's unfinished inbound message was among those begun first when all agents' unfinished frames passed maxInboundHeldBytes (close 4008)." },
  CATTAIL_SERVER_SHUTTING_DOWN: { exit: 1, text: 'The server is shutting down (GOODBYE, then close 4010).' },
  CATTAIL_SERVER_TLS_FILES: { exit: 4, text: 'A server TLS file (certificate, key or client CA) is missing, does not parse, or the key does not match the certificate; at start-up this is fatal, on a reload the previous set stays in use.' },
  CATTAIL_SERVER_TLS_UNSUPPORTED: { exit: 2, text: 'TLS options were given with `--transport uws`: uWebSockets.js neither requires a client certificate nor shows it to JavaScript, so the mTLS allow-list cannot be enforced there (docs/transport.md); use `--transport ws` for TLS.' },
  CATTAIL_SERVER_UNAUTHORIZED: { exit: 1, text: 'An agent\'s TLS client certificate was refused (no certificate, unknown CA, expired or not yet valid, or CN/URI SAN not allowed) (close 4011).' },
  CATTAIL_SERVER_NODE_MISMATCH: { exit: 1, text: 'An agent asked for a scoped feed (per-node scoping) with a HELLO node other than the node its TLS client certificate names (its CN, or the URI SAN after scopeNodeUriSanPrefix), or with a certificate that names none (close 4011).' },
  CATTAIL_SERVER_SCOPE_UNSUPPORTED: { exit: 1, text: 'An agent asked for a feed this server scopes per node (scopedFeeds) without advertising the scope.node capability, so it could not apply scoped units; upgrade the agent or unscope the feed (close 4006).' },
  CATTAIL_SERVER_ENTRY_TOO_LARGE: { exit: 1, text: "One entry of a feed does not fit in a frame body of the agent's size (the smaller of the server's maxFrameBytes and the agent's rounded down to a power of two, as WELCOME announces it), so the agent cannot be given a correct state; it is closed with 4003 and retries only at its longest backoff. Raise the agent's (or the server's) maxFrameBytes; the details name the key and the bytes it needs." },
  CATTAIL_SERVER_SHED: { exit: 1, text: 'The server holds more agents than its target share and moved this one to another replica (GOODBYE with endpoints, then close 4009).' },
  // --- Convergence barrier: GET /v1/convergence on the HTTP port, and `cattail converge`. ---
  CATTAIL_CONVERGENCE_BAD_REQUEST: { exit: 2, text: 'A convergence request has a bad parameter: a resource this replica does not serve (or an ambiguous plural), a missing or non-decimal resourceVersion, a timeoutMs outside 0 to 300000, or a bad node list (HTTP 400).' },
  CATTAIL_CONVERGENCE_TOO_MANY_WAITERS: { exit: 1, text: 'The replica already holds its maximum of waiting convergence requests (1,000), or their agents together would pass 500,000, also when a waiting request grows past it as agents connect (name nodes to narrow a request); retry after the Retry-After delay (HTTP 503).' },
  CATTAIL_CONVERGENCE_NOT_CONVERGED: { exit: 6, text: '`cattail converge`: some agent (or named node) had not applied the resourceVersion when the timeout ran out; the laggards are printed.' },
  CATTAIL_CONVERGENCE_REPLICA_FAILED: { exit: 7, text: '`cattail converge`: a replica could not be asked (network error, or an answer that is not a convergence report); its agents are unknown, so convergence is not proven.' },
} as const satisfies Record<string, { exit: number; text: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

const kCattailError = Symbol.for('cattail.error');

export interface CattailErrorOptions extends ErrorOptions {
  /** Structured context for logs (option name, feed, revision...). Never secrets. */
  details?: Record<string, unknown>;
}

/** Base class of every error Cattail raises on purpose. */
export class CattailError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options?: CattailErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
    this.name = new.target.name;
  }

  /**
   * Brand check that also works across two bundled copies of Cattail (where `instanceof`
   * fails because there are two classes). Prefer matching on `code` after this.
   */
  static is(value: unknown): value is CattailError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kCattailError] === true;
  }

  get [kCattailError](): true {
    return true;
  }

  /** The exit status the CLI uses for this error. */
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

/** Thrown at construction for bad options passed to a library function. */
export class InvalidArgumentError extends CattailError {
  constructor(message: string, options?: CattailErrorOptions) {
    super('CATTAIL_INVALID_ARGUMENT', message, options);
  }
}

/** Configuration errors name the option, where its value came from, and the value. */
export class ConfigError extends CattailError {
  constructor(
    code: Extract<ErrorCode, `CATTAIL_CONFIG_${string}`>,
    message: string,
    options?: CattailErrorOptions,
  ) {
    super(code, message, options);
  }
}

/** Wraps anything thrown into a CattailError, keeping it as the cause. */
export function toCattailError(err: unknown, code: ErrorCode = 'CATTAIL_INTERNAL'): CattailError {
  if (CattailError.is(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CattailError(code, message, { cause: err });
}
