import type { Message } from '../../proto/types.js';

/**
 * JSON form of messages in golden fixtures: byte strings become `{"$bin": "<hex>"}` so a fixture
 * is readable and diffable, and any language can load it.
 */
export function messageToJson(m: Message): unknown {
  return JSON.parse(JSON.stringify(m, (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return { $bin: Buffer.from((v as { data: number[] }).data).toString('hex') };
    }
    return v;
  }));
}

export function messageFromJson(json: unknown): Message {
  return JSON.parse(JSON.stringify(json), (_key, v: unknown) => {
    if (v !== null && typeof v === 'object' && typeof (v as { $bin?: unknown }).$bin === 'string') {
      return Buffer.from((v as { $bin: string }).$bin, 'hex');
    }
    return v;
  }) as Message;
}

export interface GoldenFixture {
  /** What the fixture pins, in one line. */
  description: string;
  message: unknown;
  /** The complete frame (header and body) as lowercase hex. */
  hex: string;
}
