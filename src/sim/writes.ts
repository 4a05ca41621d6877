/**
 * Writes with apiserver semantics, shared by the HTTP verbs, the admin API and the churn driver:
 * create (409 AlreadyExists), update with optimistic concurrency (409 Conflict on a stale
 * resourceVersion), merge patch, delete, and the `status` subresource (a status write keeps the
 * spec; a main-resource write keeps the status, for kinds that have the subresource).
 */
import type { ResourceDef } from '../registry.js';
import type { Clock } from '../clock.js';
import { apiVersionOf, type JsonObject } from './encode.js';
import type { Rng } from './rng.js';
import { alreadyExists, badRequest, conflict, notFound, invalid } from './status.js';
import type { Store, StoredObject } from './store.js';

/** Built-in kinds served with a status subresource (Calico's v1 CRDs have none: fixtures fact 8). */
const HAS_STATUS = new Set(['pods', 'nodes', 'namespaces', 'services']);

export function hasStatusSubresource(def: ResourceDef): boolean {
  return HAS_STATUS.has(def.id);
}

export function parseStored(o: StoredObject): JsonObject {
  return JSON.parse(o.bytes.toString('utf8')) as JsonObject;
}

function meta(obj: JsonObject): JsonObject {
  const m = obj['metadata'];
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw badRequest('object has no metadata');
  return m as JsonObject;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: JsonObject = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as JsonObject) } : {};
  for (const [k, v] of Object.entries(patch as JsonObject)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export class Writer {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly rng: Rng,
  ) {}

  private ts(): string {
    return new Date(this.clock.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  private checkShape(def: ResourceDef, obj: unknown, namespace: string | undefined): JsonObject {
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest('the body must be a JSON object');
    const o = obj as JsonObject;
    const m = meta(o);
    if (o['kind'] !== undefined && o['kind'] !== def.kind) throw badRequest(`kind ${String(o['kind'])} does not match ${def.kind}`);
    o['kind'] = def.kind;
    o['apiVersion'] = apiVersionOf(def);
    if (def.namespaced) {
      const ns = m['namespace'] ?? namespace;
      if (typeof ns !== 'string' || ns === '') throw badRequest('the namespace of the object is required');
      if (namespace !== undefined && ns !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m['namespace'] = ns;
    } else delete m['namespace'];
    return o;
  }

  create(def: ResourceDef, body: unknown, namespace?: string): StoredObject {
    const o = this.checkShape(def, body, namespace);
    const m = meta(o);
    if ((m['name'] === undefined || m['name'] === '') && typeof m['generateName'] === 'string') m['name'] = `${m['generateName']}${this.rng.suffix(5)}`;
    const name = m['name'];
    if (typeof name !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw invalid(`metadata.name: Invalid value: ${JSON.stringify(name)}`, 'metadata.name');
    if (this.store.get(def, String(m['namespace'] ?? ''), name)) throw alreadyExists(def.plural, name);
    m['uid'] = m['uid'] ?? this.rng.uuid();
    m['creationTimestamp'] = m['creationTimestamp'] ?? this.ts();
    if (def.encoding === 'unstructured' || def.id === 'networkpolicies.networking.k8s.io') m['generation'] = 1;
    delete m['resourceVersion'];
    return this.store.put(def, o);
  }

  /** PUT: full replacement (or status-only with `statusOnly`). */
  update(def: ResourceDef, body: unknown, namespace?: string, statusOnly = false): StoredObject {
    const o = this.checkShape(def, body, namespace);
    const m = meta(o);
    const name = String(m['name'] ?? '');
    const cur = this.store.get(def, String(m['namespace'] ?? ''), name);
    if (!cur) throw notFound(def.plural, name, def.group);
    const rv = m['resourceVersion'];
    if (rv !== undefined && rv !== '' && rv !== String(cur.rv)) throw conflict(def.plural, name, 'the object has been modified; please apply your changes to the latest version and try again');
    return this.replace(def, cur, o, statusOnly);
  }

  private replace(def: ResourceDef, cur: StoredObject, next: JsonObject, statusOnly: boolean): StoredObject {
    const old = parseStored(cur);
    const om = meta(old);
    let out: JsonObject;
    if (statusOnly) {
      out = { ...old, status: next['status'] };
    } else {
      out = { ...next };
      if (hasStatusSubresource(def)) {
        if (old['status'] === undefined) delete out['status'];
        else out['status'] = old['status'];
      }
    }
    const nm = meta(out);
    // Identity fields are the server's, whatever the client sent.
    nm['uid'] = om['uid'];
    nm['creationTimestamp'] = om['creationTimestamp'];
    if (om['generation'] !== undefined) {
      const specChanged = JSON.stringify(out['spec']) !== JSON.stringify(old['spec']) || (!hasStatusSubresource(def) && JSON.stringify(out['status']) !== JSON.stringify(old['status']));
      nm['generation'] = Number(om['generation']) + (specChanged ? 1 : 0);
    }
    return this.store.put(def, out);
  }

  patch(def: ResourceDef, namespace: string, name: string, patch: unknown, statusOnly = false): StoredObject {
    const cur = this.store.get(def, def.namespaced ? namespace : '', name);
    if (!cur) throw notFound(def.plural, name, def.group);
    if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) throw badRequest('a merge patch must be a JSON object');
    const merged = mergePatch(parseStored(cur), patch) as JsonObject;
    const pm = (patch as JsonObject)['metadata'] as JsonObject | undefined;
    const prv = pm?.['resourceVersion'];
    if (typeof prv === 'string' && prv !== String(cur.rv)) throw conflict(def.plural, name, 'the object has been modified; please apply your changes to the latest version and try again');
    return this.replace(def, cur, merged, statusOnly);
  }

  delete(def: ResourceDef, namespace: string, name: string): StoredObject {
    const gone = this.store.delete(def, def.namespaced ? namespace : '', name);
    if (!gone) throw notFound(def.plural, name, def.group);
    return gone;
  }
}
