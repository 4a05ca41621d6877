/**
 * The cluster's name for agents (WELCOME `cluster`, PROTOCOL.md §8 "Another cluster"): the UID of
 * the `kube-system` namespace, read once with a GET of that one object (the ClusterRole grants get
 * on it by name; a GET, not a LIST: a warm restart lists no objects).
 *
 * Why that UID: it is made with the cluster and lives as long as it (kube-system cannot be
 * deleted), so a cluster built again on the same hosts has another one, and every replica of one
 * cluster reads the same, whatever address or CA it reaches the API server by. Rejected: a hash
 * of the cluster CA (what the replica checkpoint's identity uses): a CA rotation, one replica
 * restarted after another, gave one cluster two names for a while, and agents moving between
 * them were taken for another cluster's, with no floor, each time; a hash of the API server URL
 * (every kubeadm cluster is https://10.96.0.1:443 in-cluster, and a replica outside reaches it
 * by another URL).
 *
 * Read when the first agent asks (upstream.ts cluster()), or at start with a state directory
 * (the replica checkpoint is compared with it: warm-state.ts). Until it is read (the API server
 * unreachable, RBAC without get on kube-system) the name is
 * unknown: agents are told none and their watermarks are compared as before. A failed read is
 * tried again every CLUSTER_NAME_RETRY_MS; a read that worked is final for the process.
 */
import type { Clock, Timer } from '../../clock.js';
import type { Logger } from '../../log.js';
import { guardedGet, readJson, type RequestContext } from './request.js';
import { isClusterName } from '../../../proto/types.js';

/** Between two reads of the kube-system namespace that failed (ms). */
export const CLUSTER_NAME_RETRY_MS = 30_000;
/** One namespace is small; anything larger is not what was asked for. */
const MAX_BYTES = 64 * 1024;
const PATH = '/api/v1/namespaces/kube-system';

/**
 * The name of a cluster whose kube-system namespace has `uid`, in the operator's `epoch` when one
 * is set (clusterEpoch: a cluster whose state went back in time is another cluster to agents).
 */
export function clusterNameOfUid(uid: string, epoch?: string): string {
  return epoch === undefined ? `kube-system/${uid}` : `kube-system/${uid}@${epoch}`;
}

/** The UID in the kube-system namespace object `body`, or undefined when it is not that (or too long to name the cluster with `epoch`). */
export function kubeSystemUidOf(body: unknown, epoch?: string): string | undefined {
  const meta = (body as { metadata?: { name?: unknown; uid?: unknown } } | null)?.metadata;
  // Bounded in bytes (WELCOME `cluster` is at most MAX_CLUSTER_BYTES; above it every client's
  // codec would refuse every WELCOME): a Kubernetes UID is a 36-character UUID.
  if (meta?.name === 'kube-system' && typeof meta.uid === 'string' && meta.uid !== '' && isClusterName(clusterNameOfUid(meta.uid, epoch))) return meta.uid;
  return undefined;
}

export class ClusterName {
  private uid: string | undefined;
  private timer: Timer | undefined;
  private stopped = false;
  private started = false;
  private readonly stop$ = new AbortController();
  private attempted!: () => void;
  /** Settles when the first read ended, named or not (or at stop). */
  readonly firstAttempt = new Promise<void>((resolve) => (this.attempted = resolve));

  constructor(
    private readonly ctx: Omit<RequestContext, 'stopSignal' | 'id'>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** The operator's clusterEpoch, appended to the name. */
    readonly epoch?: string,
  ) {}

  /** The cluster's name, once read. */
  get name(): string | undefined {
    return this.uid === undefined ? undefined : clusterNameOfUid(this.uid, this.epoch);
  }

  /** Starts reading it (once; later calls do nothing). */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.read();
  }

  stop(): void {
    this.stopped = true;
    this.attempted();
    this.timer?.cancel();
    this.stop$.abort();
  }

  private async read(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    try {
      const page = await guardedGet({ ...this.ctx, id: 'namespaces', stopSignal: this.stop$.signal }, 'cluster-name', PATH);
      const uid = kubeSystemUidOf(await readJson(page, MAX_BYTES, 'kube-system namespace'), this.epoch);
      if (uid === undefined) throw new Error('the answer is not the kube-system namespace with a UID');
      this.uid = uid;
      this.logger.info({ cluster: this.name }, 'cluster named by its kube-system namespace (agents from another cluster get a snapshot)');
    } catch (err) {
      if (this.stopped) return;
      this.logger.warn({ err: (err as Error).message, retryMs: CLUSTER_NAME_RETRY_MS }, 'cannot read the kube-system namespace: agents are told no cluster name until it is read');
      this.timer = this.clock.setTimeout(() => void this.read(), CLUSTER_NAME_RETRY_MS);
    } finally {
      this.attempted();
    }
  }
}
