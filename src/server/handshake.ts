/**
 * HELLO checks beyond the codec's shape validation (PROTOCOL.md §4.1), and the choice of
 * compression (§5). Pure.
 */
import type { HelloMessage } from '../../proto/index.js';
import { type Compression, CloseCode, InboundError, PROTOCOL_VERSION } from './wire.js';

export interface Hello {
  readonly node: string;
  readonly clientId: string;
  readonly feeds: readonly { readonly name: string; readonly token: Buffer | undefined }[];
  readonly caps: readonly string[];
  readonly maxFrameBytes: number | undefined;
}

/** Smallest client maxFrameBytes honoured: below it no realistic entry fits. */
export const MIN_CLIENT_FRAME_BYTES = 4_096;
const MAX_NAME_CHARS = 253;

export function checkHello(m: HelloMessage): Hello {
  if (m.protocol !== PROTOCOL_VERSION) throw new InboundError(CloseCode.UNSUPPORTED_VERSION, 'CATTAIL_SERVER_BAD_HELLO', `protocol ${m.protocol} is not supported; this server speaks ${PROTOCOL_VERSION}`);
  if (m.node.length > MAX_NAME_CHARS || m.clientId.length > MAX_NAME_CHARS) {
    throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_SERVER_BAD_HELLO', `HELLO node and clientId must have at most ${MAX_NAME_CHARS} characters`);
  }
  if (m.maxFrameBytes !== undefined && m.maxFrameBytes < MIN_CLIENT_FRAME_BYTES) {
    throw new InboundError(CloseCode.MALFORMED_FRAME, 'CATTAIL_SERVER_BAD_HELLO', `HELLO maxFrameBytes must be at least ${MIN_CLIENT_FRAME_BYTES}`);
  }
  return {
    node: m.node,
    clientId: m.clientId,
    // Tokens are views into the frame; copy so a cursor never pins the inbound buffer.
    feeds: m.feeds.map((f) => ({ name: f.name, token: f.token === undefined ? undefined : Buffer.from(f.token) })),
    caps: m.caps,
    maxFrameBytes: m.maxFrameBytes,
  };
}

/** Brotli when the agent can inflate it (smaller, and compressed once anyway), then deflate. */
export function chooseCompression(caps: readonly string[], allowed: readonly Compression[]): Compression {
  if (caps.includes('compress.brotli') && allowed.includes('brotli')) return 'brotli';
  if (caps.includes('compress.deflate') && allowed.includes('deflate')) return 'deflate';
  return 'none';
}
