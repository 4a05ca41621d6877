// Prints the table of docs/data-model.md "Measured sizes": the libcalico.v3 projection of every
// fixture object against the object's own bytes (`npx vite-node scripts/measure-model.ts`).
import { measure } from '../test/support/model-bytes.js';

process.stdout.write('| fixture | kind | Kubernetes JSON bytes | libcalico keys | projected bytes (keys + values) | ratio |\n|---|---|---:|---:|---:|---:|\n');
for (const m of measure()) {
  const ratio = m.projectedBytes === 0 ? '—' : `${(m.k8sBytes / m.projectedBytes).toFixed(1)}×`;
  process.stdout.write(`| \`${m.file}\` | ${m.kind} | ${m.k8sBytes} | ${m.keys} | ${m.projectedBytes} | ${ratio} |\n`);
}
