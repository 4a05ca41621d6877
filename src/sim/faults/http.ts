/**
 * `admin.faults` over HTTP, under /_sim/faults (JSON bodies):
 *
 *   GET    /_sim/faults                 {rules, log, kinds}
 *   POST   /_sim/faults                 add a rule {kind, resource?, clientId?, verb?, probability?, times?, afterEvents?} → {id}
 *   DELETE /_sim/faults                 remove every rule        DELETE /_sim/faults/{id}  remove one
 *   POST   /_sim/faults/terminate       {resource, retryAfterMs?} → {closed}
 *   POST   /_sim/faults/compact         {rv?} → {compactedRv}
 *   POST   /_sim/faults/restart         {refuseMs?}
 *   POST   /_sim/faults/backup          → {id, resourceVersion} (the last MAX_BACKUPS are kept)
 *   POST   /_sim/faults/restore         {id, refuseMs?}: etcd restored from that backup without a revision bump → {resourceVersion} (done right after the answer)
 *   POST   /_sim/faults/large-object    {resource?, namespace?, name?, bytes?} → the object's metadata
 *   POST   /_sim/faults/timeline        {entries} or {seed, durationMs?, count?, resources?} → {entries}
 *   DELETE /_sim/faults/timeline        stop the running timeline
 *   POST   /_sim/faults/rotate-token    {token?, graceMs?} → {token}
 *   POST   /_sim/faults/lag             {lagRvs} (HA follower) → {lagRvs}
 */
import { CattailError } from '../../errors.js';
import type { StoreBackup } from '../store.js';
import type { SimFaults } from './controller.js';
import { FAULT_KINDS, type FaultRule } from './rules.js';
import { randomTimeline, type TimelineEntry } from './timeline.js';

export type Body = () => Promise<Record<string, unknown>>;

/** Backups kept for POST /restore, oldest dropped first (each holds references to a whole state). */
export const MAX_BACKUPS = 8;

const num = (v: unknown, name: string): number | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `${name} must be an integer`);
  return v;
};

export class FaultsHttp {
  private readonly backups = new Map<string, StoreBackup>();
  private backupSeq = 0;

  constructor(
    private readonly faults: SimFaults,
    private readonly setLag: ((lagRvs: number) => void) | undefined,
  ) {}

  /** Undefined when the path is not under /_sim/faults. */
  route(method: string, path: string, body: Body): Promise<unknown> | undefined {
    if (path !== '/_sim/faults' && !path.startsWith('/_sim/faults/')) return undefined;
    return this.serve(method, path.slice('/_sim/faults'.length), body);
  }

  private async serve(method: string, sub: string, body: Body): Promise<unknown> {
    const f = this.faults;
    switch (`${method} ${sub}`) {
      case 'GET ':
        return { rules: f.rules(), log: f.log(), kinds: FAULT_KINDS };
      case 'POST ':
        return { id: f.add((await body()) as unknown as FaultRule) };
      case 'DELETE ':
        f.clear();
        return { ok: true };
      case 'POST /terminate': {
        const b = await body();
        return { closed: f.terminateWatches(String(b['resource']), num(b['retryAfterMs'], 'retryAfterMs')) };
      }
      case 'POST /compact':
        return { compactedRv: String(f.compact(num((await body())['rv'], 'rv'))) };
      case 'POST /restart':
        await f.restart({ refuseMs: num((await body())['refuseMs'], 'refuseMs') });
        return { ok: true };
      case 'POST /backup': {
        const b = f.backup();
        const id = `b${++this.backupSeq}`;
        this.backups.set(id, b);
        for (const old of this.backups.keys()) {
          if (this.backups.size <= MAX_BACKUPS) break;
          this.backups.delete(old);
        }
        return { id, resourceVersion: String(b.rv) };
      }
      case 'POST /restore': {
        const b = await body();
        const backup = this.backups.get(String(b['id']));
        if (backup === undefined) throw new CattailError('CATTAIL_INVALID_ARGUMENT', `restore: no backup ${JSON.stringify(b['id'])} (POST /_sim/faults/backup makes one; the last ${MAX_BACKUPS} are kept)`);
        const refuseMs = num(b['refuseMs'], 'refuseMs');
        if (refuseMs !== undefined && refuseMs < 0) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'refuseMs must be an integer >= 0');
        if (this.setLag !== undefined) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'restore: not modelled with an HA follower');
        // After this answer is out: the restart drops every connection, this one included.
        setImmediate(() => void f.restore(backup, { refuseMs }).catch((err: unknown) => process.emitWarning(`simulator restore failed: ${(err as Error)?.message ?? String(err)}`, { code: 'CATTAIL_SIM_RESTORE_FAILED' })));
        return { resourceVersion: String(backup.rv) };
      }
      case 'POST /large-object': {
        const b = await body();
        const o = f.largeObject({
          resource: b['resource'] as string | undefined,
          namespace: b['namespace'] as string | undefined,
          name: b['name'] as string | undefined,
          bytes: num(b['bytes'], 'bytes'),
        });
        return { metadata: { name: (o['metadata'] as Record<string, unknown>)['name'], namespace: (o['metadata'] as Record<string, unknown>)['namespace'], resourceVersion: (o['metadata'] as Record<string, unknown>)['resourceVersion'] } };
      }
      case 'POST /timeline': {
        const b = await body();
        const entries =
          b['entries'] !== undefined
            ? (b['entries'] as TimelineEntry[])
            : randomTimeline(num(b['seed'], 'seed') ?? 1, { durationMs: num(b['durationMs'], 'durationMs'), count: num(b['count'], 'count'), resources: b['resources'] as string[] | undefined });
        f.runTimeline(entries);
        return { entries };
      }
      case 'DELETE /timeline':
        f.stopTimeline();
        return { ok: true };
      case 'POST /rotate-token': {
        const b = await body();
        return { token: await f.rotateToken(b['token'] as string | undefined, num(b['graceMs'], 'graceMs')) };
      }
      case 'POST /lag': {
        const lag = num((await body())['lagRvs'], 'lagRvs');
        if (!this.setLag) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'the simulator runs without an HA follower (startSim({ ha: { lagRvs } }))');
        if (lag === undefined || lag < 0) throw new CattailError('CATTAIL_INVALID_ARGUMENT', 'lagRvs must be an integer >= 0');
        this.setLag(lag);
        return { lagRvs: lag };
      }
    }
    const m = /^\/(f[0-9]+)$/.exec(sub);
    if (method === 'DELETE' && m) return { removed: f.remove(m[1] as string) };
    throw new CattailError('CATTAIL_INVALID_ARGUMENT', `no admin endpoint ${method} /_sim/faults${sub}`);
  }
}
