import { commonOptions } from '../config/common.js';
import { opt, withDefault } from '../config/options.js';
import { BUILTIN_FEED_NAMES, SCOPABLE_FEED_NAMES } from '../registry.js';
// proto/types.js, not proto/index.js: the codec would load msgpackr for `cattail --help`. The same
// goes for the feed names: straight from the registry, not through the upstream's projections.
import { DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_INBOUND_BYTES, MIN_CLIENT_MAX_FRAME_BYTES } from '../../proto/types.js';
import { tlsServerOptions } from './transport/tls/options.js';
import { ANY_HOST } from './transport/seam.js';
import { DEFAULT_SNAPSHOT_CHUNK_BYTES } from './fanout/snapshot-cache.js';
import { checkServiceRef } from '../client/discovery.js';

/**
 * The server's own options: listeners, identity and limits. `startServer` takes exactly these
 * (see {@link startServerOptions}), and `cattail serve` adds the upstream's.
 * Defaults follow Typha's where Typha has one.
 */
export const serverOptions = {
  listen: opt.string({
    default: '127.0.0.1:5473',
    help: 'HOST:PORT for agent WebSocket connections (5473 is Typha\'s port). An empty HOST (:5473) listens on every address, IPv6 and IPv4 (dual-stack; IPv4 alone on a node without IPv6).',
    check: (v) => (parseHostPort(v) === undefined ? 'expected HOST:PORT with a port from 0 to 65535' : undefined),
  }),
  httpListen: opt.string({
    default: '127.0.0.1:9093',
    help: 'HOST:PORT for /metrics, /livez and /readyz (also /liveness and /readiness, /v1/convergence, and /debug/clients with debugEndpoints). An empty HOST (:9093) listens on every address, as for listen. At most 1,024 connections: probe healthListen instead, which sockets filling this port cannot reach.',
    check: (v) => (parseHostPort(v) === undefined ? 'expected HOST:PORT with a port from 0 to 65535' : undefined),
  }),
  // Loopback: Typha's health port (9098 on localhost), which the Calico operator probes with host
  // localhost; that reaches it because the pod is on the host network.
  healthListen: opt.string({
    default: '127.0.0.1:9098',
    help: 'HOST:PORT for the probes alone: /livez and /readyz (also /liveness and /readiness), the same answers as on httpListen, always plaintext (httpTls does not apply). Its own bound of 16 connections, so that sockets filling httpListen\'s 1,024 (anyone reaching a node\'s address, or /v1/convergence waiters) cannot fail the probes and get the replica restarted. Loopback by default (9098 is Typha\'s health port): in a host-network pod the kubelet probes it at host 127.0.0.1. An empty HOST listens on every address, as for listen.',
    check: (v) => (parseHostPort(v) === undefined ? 'expected HOST:PORT with a port from 0 to 65535' : undefined),
  }),
  debugEndpoints: opt.boolean({
    default: false,
    help: 'Serve /debug/clients on the HTTP port: per-connection node, address, feeds, lag and buffers as paged JSON. Off by default because it names every node and address.',
  }),
  ...tlsServerOptions,
  serverId: opt.string({
    default: undefined,
    help: 'This replica\'s identity in WELCOME and resume tokens (at most 64 characters). Unset: POD_NAME, then the host name.',
    check: (v) => (v.length === 0 || v.length > 64 ? 'expected 1 to 64 characters' : undefined),
  }),
  maxConnections: opt.int({
    default: 10_000,
    unit: 'count',
    min: 1,
    help: 'Upgrades beyond this many open connections are refused with 503 and Retry-After (admission control, not random drops).',
  }),
  targetConnections: opt.int({
    default: undefined,
    unit: 'count',
    min: 1,
    help: 'This replica\'s target share of agent connections. Unset: no target (only maxConnections). At the target new agents are refused with 503 and a redirect to peerEndpoints; above it (the target was lowered) one agent is shed per shedIntervalMs.',
  }),
  shedIntervalMs: opt.int({
    default: 1_000,
    unit: 'ms',
    min: 10,
    help: 'While above targetConnections, one agent is shed (GOODBYE + close 4009) per interval (±10 % jitter); Typha drops one connection per second too. The shed agent is asked to wait under a second before reconnecting, whatever the interval.',
  }),
  peerEndpoints: opt.list({
    default: [],
    help: 'ws:// or wss:// URLs of the other replicas (repeat the flag or separate with commas), sent to refused, shed and drained agents as where to go instead (X-Cattail-Endpoints, GOODBYE endpoints).',
    check: (v) => {
      const bad = splitEndpoints(v).find((u) => !isWsUrl(u));
      return bad === undefined ? undefined : `expected ws:// or wss:// URLs, got ${JSON.stringify(bad)}`;
    },
  }),
  shutdownTimeoutMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 0,
    help: 'On SIGTERM, agents are closed one at a time over this long (GOODBYE + close 4010, no more than 1 s apart) and the process exits when the last is gone or this time is up; keep the pod\'s terminationGracePeriodSeconds about 30 s longer (the final checkpoint is written before the drain; Typha: 300 s). A second signal closes the rest at once.',
  }),
  transport: opt.enum({
    values: ['ws', 'uws'] as const,
    default: 'ws',
    help: 'Agent socket implementation: ws (Node http + ws; TLS and mutual TLS) or uws (uWebSockets.js, plaintext only, lower CPU per write; with serverCertFile it fails with CATTAIL_SERVER_TLS_UNSUPPORTED). uws fails with CATTAIL_SERVER_TRANSPORT_UNAVAILABLE when no uWebSockets.js build loads here; it never falls back to ws. See docs/transport.md.',
  }),
  listenBacklog: opt.int({
    default: 4_096,
    unit: 'count',
    min: 1,
    max: 65_535,
    help: 'Queue of connections the kernel completes before the server accepts them (listen(2) backlog), sized for reconnect storms: Node\'s default of 511 overflowed when 1,000 agents connected at once. The kernel caps it at net.core.somaxconn (4096 by default since Linux 5.4, 128 before): raise that sysctl too. The uws transport ignores it (uSockets uses a fixed backlog).',
  }),
  refuseRetryAfterMs: opt.int({
    default: 5_000,
    unit: 'ms',
    min: 1_000,
    help: 'Retry-After sent with a refused upgrade (rounded up to whole seconds).',
  }),
  handshakeTimeoutMs: opt.int({
    default: 10_000,
    unit: 'ms',
    min: 10,
    help: 'A connection that has not sent HELLO within this time is closed with 4004.',
  }),
  pingIntervalMs: opt.int({
    default: 10_000,
    unit: 'ms',
    min: 10,
    help: 'Interval between protocol pings to each agent (±10 % jitter).',
  }),
  pongTimeoutMs: opt.int({
    default: 60_000,
    unit: 'ms',
    min: 10,
    help: 'A connection that has not answered a PING within this time is closed with 4005; while a snapshot streams to it and keeps moving, the time runs from the stream\'s last progress (its PINGs wait behind the snapshot).',
  }),
  flushWindowMs: opt.int({
    default: 5,
    unit: 'ms',
    min: 0,
    max: 1_000,
    help: 'Changes arriving within this window become one DELTA frame per feed (0: flush on the next event-loop turn).',
  }),
  snapshotReuseWindowMs: opt.int({
    default: 1_000,
    unit: 'ms',
    min: 0,
    help: 'A built snapshot is reused by agents arriving this long after it finished (they then get the deltas since); Typha uses 1 s.',
  }),
  snapshotBuildSliceEntries: opt.int({
    default: 2_000,
    unit: 'count',
    min: 1,
    help: 'Entries encoded per event-loop turn while building a snapshot, so a big build never blocks the loop for long.',
  }),
  snapshotChunkBytes: opt.int({
    default: DEFAULT_SNAPSHOT_CHUNK_BYTES,
    unit: 'bytes',
    min: 1_024,
    help: 'Target body size of a snapshot chunk (at most the agent\'s frame size; an entry larger than this gets a chunk of its own). Smaller chunks keep each build step short; deflate loses little below 1 MiB.',
  }),
  snapshotBuildSliceMs: opt.int({
    default: 5,
    unit: 'ms',
    min: 1,
    help: 'A snapshot build also yields the event loop after this long per turn (checked after each chunk, so one chunk\'s encoding is the least a turn does).',
  }),
  maxFallBehindMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 10,
    help: 'An agent whose applied state is older than this (after its post-snapshot grace period) is closed with 4007; while its snapshot streams, only when the stream has taken no frame for this long (a cold-start storm makes every snapshot slow; that alone is no reason to start one over).',
  }),
  newClientGracePeriodMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 0,
    help: 'Extra time after a snapshot before the fall-behind rule applies (Typha: 300 s).',
  }),
  socketHighWaterBytes: opt.int({
    default: 1_048_576,
    unit: 'bytes',
    min: 1_024,
    help: 'An agent whose socket holds more unsent bytes than this is skipped by the fan-out and caught up with one compacted DELTA when it drains.',
  }),
  snapshotPinnedMaxBytes: opt.int({
    default: 268_435_456,
    unit: 'bytes',
    min: 0,
    help: 'Wire bytes of outdated snapshot builds that only slow readers keep alive (cattail_snapshot_pinned_bytes). Above it, readers of the oldest such builds that took no frame for a minute are closed with 4007 until the rest fit (a reader that takes a frame now and then is never closed by maxFallBehindMs); readers still moving are spared, so a reconnect storm\'s builds can pass it. 256 MiB: about 16 snapshots of a 5,000-node felix feed, well inside the 2 GiB the deployment gives a replica.',
  }),
  snapshotHeldMaxBytes: opt.int({
    default: 268_435_456,
    unit: 'bytes',
    min: 0,
    help: 'Wire bytes of the snapshot builds held for reuse, all feeds (cattail_snapshot_cache_bytes). A build of the current revision is held while the feed does not change, one per feed, compression and frame size an agent asked for; above this, finished builds no agent is streaming are dropped, least recently used first (cattail_snapshot_cache_evicted_total), and the next agent of their kind gets a new build. Builds being streamed are never dropped. 256 MiB: about 16 compressed snapshots of a 5,000-node felix feed.',
  }),
  maxClientBytes: opt.int({
    default: 16_777_216,
    unit: 'bytes',
    min: 1_024,
    help: 'Byte budget of the frames built for one agent alone (catch-ups, pings; shared snapshot and delta buffers are not counted); above it the agent is closed with 4008.',
  }),
  maxOwnHeldBytes: opt.int({
    default: 268_435_456,
    unit: 'bytes',
    min: 1_048_576,
    help: 'Bytes that frames built for one agent alone (resume and rebase deltas, catch-ups, range repairs) may hold together, all agents, until their sockets have sent them; each frame counted once however many agents it goes to. A catch-up, resume or repair that does not fit is answered with the shared snapshot instead (a resume: WELCOME reason too-large; a catch-up or repair: an in-band snapshot), and a GOODBYE\'s catch-up is left out; no agent is closed for it (cattail_own_frames_held_bytes, cattail_own_frames_refused_total). maxClientBytes bounds one agent; this bounds them all (agents that ask for old revisions and do not read).',
  }),
  maxRepairBytes: opt.int({
    default: 4_194_304,
    unit: 'bytes',
    min: 0,
    help: "Largest range repair (PROTOCOL.md §7.2: the key and value bytes of the mismatching buckets plus the changes the agent has not seen) sent to an agent whose digest did not match; a larger one (or one above half of maxClientBytes, the agent's own budget), or one holding more than half of the state's entries, is an in-band snapshot instead. 0 answers every repair with a snapshot.",
  }),
  maxInboundBytes: opt.int({
    default: DEFAULT_MAX_INBOUND_BYTES,
    unit: 'bytes',
    min: 1_024,
    max: 1_048_576,
    help: 'Largest frame accepted from an agent; a larger one is closed with 4003.',
  }),
  maxInboundHeldBytes: opt.int({
    default: 67_108_864,
    unit: 'bytes',
    min: 1_048_576,
    help: "Bytes all agents' sockets may hold together of inbound frames not yet complete (each socket up to 4 × maxInboundBytes); above it the agents whose unfinished message began first are closed with 4008 until the rest hold at most 90 % of it (each piece a message is kept in counts 256 bytes more). At least 4 × maxInboundBytes. Enforced with --transport ws (uWS does not show what it holds; over uWS the server warns at start when maxConnections × 4 × maxInboundBytes is above it).",
  }),
  maxFrameBytes: opt.int({
    default: DEFAULT_MAX_FRAME_BYTES,
    unit: 'bytes',
    min: MIN_CLIENT_MAX_FRAME_BYTES,
    max: 67_108_864,
    help: 'Largest uncompressed frame body sent; bigger deltas and snapshots span several frames (MORE).',
  }),
  compressMinBytes: opt.int({
    default: 1_024,
    unit: 'bytes',
    min: 0,
    help: 'Frame bodies at least this big are compressed (once per algorithm) for agents that negotiated compression.',
  }),
  scopedFeeds: opt.list({
    default: [],
    values: SCOPABLE_FEED_NAMES,
    help: 'Feeds sent per node instead of cluster-wide (per-node scoping, PROTOCOL.md §7.3; repeat the flag or separate with commas): each agent gets its own node\'s objects in full and other nodes\' in the slim form (felix: remote workload and host endpoints as labels, profile ids, addresses and named ports) or not at all (tunnel-ip-allocation, node-status). The node is the agent\'s client certificate\'s (CN, or see scopeNodeUriSanPrefix) with mutual TLS, else its HELLO\'s; with clientCn alone (one CN for every agent) and no scopeNodeUriSanPrefix or clientUriSan the server refuses to start. Agents must advertise scope.node. Unset: every feed is cluster-wide.',
  }),
  scopeNodeUriSanPrefix: opt.string({
    default: undefined,
    help: 'With scopedFeeds and mutual TLS: an agent\'s node is the rest of the first URI SAN of its certificate that starts with this prefix (e.g. spiffe://cluster.local/node/). Unset: the certificate\'s CN. A certificate without one, or a HELLO naming another node, is refused (CATTAIL_SERVER_NODE_MISMATCH, close 4011). Needs clientCaFile: without client certificates no node is proven, so the server refuses to start.',
    check: (v) => (v === '' ? 'expected a non-empty prefix' : undefined),
  }),
  deltaLogMaxAgeMs: opt.int({
    default: 600_000,
    unit: 'ms',
    min: 1_000,
    help: 'How long each feed keeps its delta log for resume and catch-up (at least maxFallBehindMs is sensible).',
  }),
  deltaLogMaxBytes: opt.int({
    default: 268_435_456,
    unit: 'bytes',
    min: 65_536,
    help: 'Byte cap of each feed\'s delta log: each retained deletion counts its key\'s bytes plus 200, the heap it holds besides (measured); older revisions leave it and their agents get a snapshot. The latest revision\'s deletions are always kept, so one batch may pass it.',
  }),
} as const;

/**
 * `startServer`'s table: {@link serverOptions} listening on free loopback ports by default, because
 * a library caller (a test, a benchmark, an embedding) runs many servers side by side and reads
 * the bound addresses from the handle, where the command binds the well-known ports.
 */
export const startServerOptions = {
  ...serverOptions,
  listen: withDefault(serverOptions.listen, '127.0.0.1:0'),
  httpListen: withDefault(serverOptions.httpListen, '127.0.0.1:0'),
  healthListen: withDefault(serverOptions.healthListen, '127.0.0.1:0'),
} as const;

/**
 * The upstream's options (src/server/upstream): feeds and the reflectors' limits. `createUpstream`
 * takes exactly these, with `cattail serve`'s defaults.
 */
export const upstreamOptions = {
  feeds: opt.list({
    default: [...BUILTIN_FEED_NAMES],
    values: BUILTIN_FEED_NAMES,
    help: 'Built-in feeds to serve (Typha\'s syncer types); repeat the flag for several. Custom feeds come from customFeeds.',
  }),
  customFeeds: opt.object<unknown[]>({
    default: [],
    help: 'Custom feeds (config file only): a list of {name, resources: [{resource, labelSelector?, fieldSelector?, projection: calico|strip|raw|libcalico}]}; see the README.',
    check: (v) => (Array.isArray(v) ? undefined : 'expected a list of feed declarations'),
  }),
  upstreamStaleAfterMs: opt.int({
    default: 120_000,
    unit: 'ms',
    min: 1_000,
    help: 'A resource without a confirmed-healthy watch (event, bookmark or a watch opened with 200) for this long is stale: its feeds say so to agents and readiness goes false.',
  }),
  listPageSize: opt.int({
    default: 500,
    unit: 'count',
    min: 1,
    max: 100_000,
    help: 'Items per page of an upstream LIST (limit/continue); bounds the items of each response body, upstreamListMaxBytes its bytes.',
  }),
  // Bytes, not items: listPageSize bounds the items of a page, and a page of 500 objects near
  // etcd's 1.5 MiB object limit is ~750 MB of JSON (2-3 times that while the chunks, the joined
  // buffer, the text and the parsed objects coexist); an API server that ignores `limit` sends
  // everything. 256 MiB: a body this size decodes to at most 256 Mi characters, half of V8's
  // largest string (2^29 - 24 characters), so the text can always be built; it holds several full
  // pages of typical objects (500 pods are ~5-10 MB). The max keeps every body within that string
  // limit; the min keeps one object at etcd's default limit listable.
  upstreamListMaxBytes: opt.int({
    default: 268_435_456,
    unit: 'bytes',
    min: 2_097_152,
    max: 536_870_888,
    help: 'Largest upstream LIST response body read (listPageSize bounds items, not bytes). A larger one ends that request with CATTAIL_UPSTREAM_LIST_TOO_LARGE, never the process; the resource\'s page size is halved (down to 1 item) for the next list and restored by a list that succeeds an hour after the last too-large body (cattail_upstream_list_too_large_total). 256 MiB: under half of V8\'s largest string (~512 Mi characters) and many full pages of typical objects; a page of large objects (near etcd\'s 1.5 MiB limit) is listed in smaller pages instead. A list page can cost 2-3 times this in memory. At most 536870888; keep it above the largest object.',
  }),
  watchList: opt.boolean({
    default: true,
    help: 'Stream initial lists with WatchList (sendInitialEvents) where the API server supports it; falls back to paged LIST when refused.',
  }),
  watchInactivityTimeoutMs: opt.int({
    default: 90_000,
    unit: 'ms',
    min: 1_000,
    help: 'Abort an upstream list or watch after this long without a byte (silent streams, black holes); capped at 3/4 of upstreamStaleAfterMs so idle resources re-confirm before going stale.',
  }),
  stateDir: opt.string({
    default: undefined,
    help: 'Directory for this replica\'s checkpoint (warm restarts): every stateCheckpointIntervalMs and when draining starts, each resource\'s projected state and resourceVersion are written there (atomically, checksummed); on start they are restored and the watches resume from the saved resourceVersions instead of listing (a 410 relists that resource). A corrupt, foreign or old-format checkpoint is reported (CATTAIL_SERVER_STATE_INVALID) and ignored. A directory that cannot hold it (read-only, not permitted, not a directory) is refused at start (CATTAIL_CONFIG_INVALID_VALUE); a missing one is created. Unset: no checkpoints, every start lists. In Kubernetes an emptyDir survives container restarts, not pod replacement.',
    check: (v) => (v === '' ? 'expected a directory path' : undefined),
  }),
  clusterEpoch: opt.string({
    default: undefined,
    help: 'Declares a new era of the same cluster to agents: the cluster\'s name (WELCOME `cluster`, the kube-system namespace\'s UID) gets `@<epoch>` appended, so agents holding a state from before take a snapshot instead of comparing resourceVersions, and a replica checkpoint from before is not used. Set it (1-63 of A-Z a-z 0-9 . _ -) after restoring etcd from a backup without a revision bump, when the cluster\'s revision is far behind what agents applied (docs/deploy.md "Restoring etcd from a backup"); every replica must have the same. Unset: the UID alone.',
    check: (v) => (/^[A-Za-z0-9._-]{1,63}$/.test(v) ? undefined : 'expected 1-63 characters of A-Z a-z 0-9 . _ -'),
  }),
  stateCheckpointIntervalMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 1_000,
    help: 'With stateDir: time between two checkpoints (one is written only when a resourceVersion moved). Each costs one encode of the projected state (~100 MB at 150,000 pods), so minutes, not seconds; a restart replays at most this much history from the API server\'s watch cache.',
  }),
  stateMaxBytes: opt.int({
    default: 2_147_483_647,
    unit: 'bytes',
    min: 1_024,
    help: 'With stateDir: largest checkpoint written or read; a larger state is not checkpointed (logged, counted) and a larger file is ignored.',
  }),
  missingResourceRetryMs: opt.int({
    default: 300_000,
    unit: 'ms',
    min: 1_000,
    help: 'How often to look again for a CRD that is not installed (404); meanwhile it counts as empty and in sync (a resource listed before whose CRD still exists keeps its state and backs off instead, for up to upstreamStaleAfterMs). Each look also lists the CRD to refresh the resourceVersion reported as its watermark (PROTOCOL.md §8); an agent refused as behind on such a resource makes the replica look at once.',
  }),
} as const;

/**
 * `cattail serve`: the fan-out server (a Deployment replica in calico-system).
 */
const nonEmpty = (v: string): string | undefined => (v === '' ? 'expected a non-empty string' : undefined);

/** The serve options that carry the client library's TLS settings to tier 1 (`--upstream-cattail wss://`), by setting. */
export const UPSTREAM_CATTAIL_TLS = {
  caFile: 'upstreamCattailCaFile', certFile: 'upstreamCattailCertFile', keyFile: 'upstreamCattailKeyFile',
  serverName: 'upstreamCattailServerName', serverCn: 'upstreamCattailServerCn', serverUriSan: 'upstreamCattailServerUriSan',
} as const;

export const serveOptions = {
  ...commonOptions,
  kubeconfig: opt.string({
    default: undefined,
    help: 'Kubeconfig file for the upstream API server. Unset: KUBECONFIG, then in-cluster config; with neither, serve exits with a coded error (it never simulates silently).',
  }),
  ...upstreamOptions,
  embeddedSim: opt.boolean({
    default: false,
    help: 'Run against an in-process simulated API server with a small generated cluster (what `npm start` does); says so on stdout, in a warn log line and in /livez and /readyz. KUBECONFIG and ~/.kube/config are ignored; an explicit kubeconfig (flag, variable or file key) or upstreamCattail is refused. Never use in production.',
  }),
  upstreamCattail: opt.list({
    default: [],
    check: (v) => {
      const urls = splitEndpoints(v);
      // Given but empty (`--upstream-cattail ""`, a template variable left unset): not "unset".
      if (v.length > 0 && urls.length === 0) return 'expected ws:// or wss:// URLs of tier-1 replicas, and the value names none';
      const bad = urls.find((u) => !isWsUrl(u));
      return bad === undefined ? undefined : `expected ws:// or wss:// URLs of tier-1 replicas, and ${JSON.stringify(bad)} is not one`;
    },
    help: 'Follow another Cattail (tier 1) at these agent URLs instead of the API server: a second tier, so the API server sees one set of watches however many replicas there are. Entries, watermarks, sync status and staleness pass through unchanged; built-in feeds only. For wss:// see the upstreamCattail* TLS options (unset: the system CAs, no client certificate).',
  }),
  upstreamCattailService: opt.string({
    default: undefined,
    check: checkServiceRef,
    help: 'Follow tier 1 through its Service (NAMESPACE/NAME) instead of static URLs: its EndpointSlices are read before every connection attempt (ready replicas first, the others only when none is), with the kubeconfig option, KUBECONFIG, ~/.kube/config or the in-cluster service account. URLs of upstreamCattail, if given too, are used until discovery first finds replicas. The scheme is wss:// when any upstreamCattail* TLS option is set, ws:// otherwise (so wss:// URLs without one are refused), and the replicas are addressed by pod IP (set upstreamCattailServerName, -Cn or -UriSan unless tier 1\'s certificate names them). A kubeconfig that does not load, none at all, or this replica\'s own Service is refused at start-up.',
  }),
  upstreamCattailServicePortName: opt.string({ default: 'agents', check: nonEmpty, help: 'With upstreamCattailService: the EndpointSlice port of tier 1\'s agent port, by name (the Service owns the number).' }),
  // The client library's TLS options, for this replica as an agent of tier 1.
  upstreamCattailCaFile: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: PEM CA of tier 1\'s server certificate; re-read on every connection attempt. Unset: the system CAs.' }),
  upstreamCattailCertFile: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: PEM client certificate this replica presents to a tier 1 with mutual TLS (with the key file); re-read on every connection attempt.' }),
  upstreamCattailKeyFile: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: PEM private key of that client certificate.' }),
  upstreamCattailServerName: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: TLS server name (SNI and host name check). Unset: the host of each URL.' }),
  upstreamCattailServerCn: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: expected common name of tier 1\'s certificate; replaces the host name check (Typha\'s TyphaCN).' }),
  upstreamCattailServerUriSan: opt.string({ default: undefined, check: nonEmpty, help: 'With --upstream-cattail wss://: expected URI SAN of tier 1\'s certificate; replaces the host name check (Typha\'s TyphaURISAN).' }),
  service: opt.string({
    default: undefined,
    check: checkServiceRef,
    help: 'This replica\'s own Service (NAMESPACE/NAME). Every balanceIntervalMs it reads the Service\'s EndpointSlices and its ready peers\' loads (GET /v1/load on their metrics port) and sets its target share and redirect hints from them, replacing --target-connections and --peer-endpoints. The replica finds itself by pod name (serverId) or POD_IP.',
  }),
  balanceIntervalMs: opt.int({ default: 10_000, unit: 'ms', min: 100, help: 'With --service: how often the replica looks at its peers and recomputes its share.' }),
  ...serverOptions,
} as const;


/**
 * `"127.0.0.1:5473"` / `"[::1]:0"` / `":5473"` → host and port; undefined when malformed. An
 * empty host is ANY_HOST: every address, IPv6 and IPv4 where the node has both (a dual-stack
 * socket), IPv4 alone where it has no IPv6. It used to mean `0.0.0.0`, which left IPv6-only
 * clusters unserved; `0.0.0.0` and `[::]` still mean what they say.
 */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  return { host: m[1] ?? m[2] ?? ANY_HOST, port };
}


/** A peerEndpoints value as URLs: entries may themselves be comma-separated (`--peer-endpoints a,b`). */
export function splitEndpoints(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

/** A ws:// or wss:// URL (no commas or whitespace: it travels in a comma-separated header). */
export function isWsUrl(value: string): boolean {
  return !/[\s,]/.test(value) && URL.canParse(value) && /^wss?:$/.test(new URL(value).protocol);
}
