// Writes test/proto/golden/<name>.json from test/proto/messages.ts: run ONCE when a message type
// is added (`npx vite-node scripts/gen-proto-golden.ts`). It refuses to overwrite an existing
// fixture: golden bytes pin the wire format, and changing one is a protocol change.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeFrame } from '../proto/codec.js';
import { messageToJson, type GoldenFixture } from '../test/proto/golden-json.js';
import { SAMPLE_MESSAGES } from '../test/proto/messages.js';

const dir = join(import.meta.dirname, '..', 'test', 'proto', 'golden');
mkdirSync(dir, { recursive: true });
for (const [name, message] of Object.entries(SAMPLE_MESSAGES)) {
  const path = join(dir, `${name}.json`);
  if (existsSync(path)) {
    process.stdout.write(`kept ${name}.json\n`);
    continue;
  }
  const fixture: GoldenFixture = {
    description: `cattail.v1 ${message.type} frame`,
    message: messageToJson(message),
    hex: encodeFrame(message).toString('hex'),
  };
  writeFileSync(path, `${JSON.stringify(fixture, null, 2)}\n`);
  process.stdout.write(`wrote ${name}.json\n`);
}
