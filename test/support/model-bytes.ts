/**
 * Bytes of the libcalico.v3 projection against the Kubernetes objects it comes from: for every
 * fixture object (test/fixtures/objects/{k8s,calico}), the compact-JSON bytes the API server sends
 * and the bytes of the projected entries (key UTF-8 + msgpack value). Used by
 * scripts/measure-model.ts (the table in docs/data-model.md) and test/upstream/libcalico-bytes.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RESOURCES } from '../../src/registry.js';
import { parseJson } from '../../src/server/upstream/json.js';
import { encodeValue, entryProjector } from '../../src/server/upstream/projections/index.js';
import type { KubeObject } from '../../src/server/upstream/types.js';
import { fixturesDir } from './fixtures.js';

export interface Measurement {
  file: string;
  kind: string;
  k8sBytes: number;
  keys: number;
  projectedBytes: number;
}

export function measure(): Measurement[] {
  const out: Measurement[] = [];
  for (const dir of ['k8s', 'calico']) {
    const base = join(fixturesDir(), 'objects', dir);
    for (const file of readdirSync(base).sort()) {
      const text = readFileSync(join(base, file), 'utf8');
      const obj = parseJson(text) as KubeObject;
      const def = RESOURCES.find((r) => r.kind === obj.kind && (r.group === '' ? r.version : `${r.group}/${r.version}`) === obj.apiVersion);
      if (!def) continue;
      const entries = entryProjector(def, 'libcalico').entries(obj, 'unused');
      const projectedBytes = entries.reduce((n, [k, v]) => n + Buffer.byteLength(k) + encodeValue(v).length, 0);
      out.push({ file: `${dir}/${file}`, kind: def.kind, k8sBytes: Buffer.byteLength(JSON.stringify(JSON.parse(text))), keys: entries.length, projectedBytes });
    }
  }
  return out;
}

