/**
 * Bulk load of a generated cluster into a {@link Store}: the path `startSim` takes before it
 * serves anything (and the one the byte-identity test pins).
 */
import { resource } from '../registry.js';
import { encodeText } from './encode.js';
import { generateCluster, type ClusterModel, type GeneratorOptions } from './generator.js';
import type { Store } from './store.js';

export function loadCluster(store: Store, o: GeneratorOptions): ClusterModel {
  const podDef = resource('pods');
  const gen = generateCluster(o, (x) => encodeText(podDef, x));
  for (const g of gen.objects) {
    if (!store.resource(g.resource)) continue;
    const d = resource(g.resource);
    if (g.rendered) store.putRendered(d, g.rendered);
    else if (g.object) store.put(d, g.object, true);
  }
  // The watch cache starts here: history begins empty at the loaded RV for every resource.
  store.endBulk();
  return gen.model;
}
