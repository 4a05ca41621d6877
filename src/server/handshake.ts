/**
 * HELLO validation (PROTOCOL.md §4.1) and the choice of compression (§5). Pure: it turns an
 * untrusted msgpack map into a typed hello or an InboundError carrying the close code.
 */
import { type Compression, CloseCode, InboundError, MAX_HELLO_FEEDS, PROTOCOL_VERSION } from './wire.js';

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

function bad(message: string, closeCode: number = CloseCode.UNEXPECTED_MESSAGE): InboundError {
  return new InboundError(closeCode, closeCode === CloseCode.MALFORMED_FRAME ? 'CATTAIL_PROTO_BAD_BODY' : 'CATTAIL_SERVER_BAD_HELLO', message);
}

export function parseHello(body: Record<string, unknown>): Hello {
  const { protocol, node, clientId, feeds, caps, maxFrameBytes } = body;
  if (protocol !== PROTOCOL_VERSION) throw new InboundError(CloseCode.UNSUPPORTED_VERSION, 'CATTAIL_SERVER_BAD_HELLO', `protocol ${JSON.stringify(protocol)} is not supported; this server speaks ${PROTOCOL_VERSION}`);
  if (typeof node !== 'string' || node.length > MAX_NAME_CHARS) throw bad('HELLO node must be a string of at most 253 characters', CloseCode.MALFORMED_FRAME);
  if (typeof clientId !== 'string' || clientId.length > MAX_NAME_CHARS) throw bad('HELLO clientId must be a string of at most 253 characters', CloseCode.MALFORMED_FRAME);
  if (!Array.isArray(feeds)) throw bad('HELLO feeds must be an array', CloseCode.MALFORMED_FRAME);
  if (feeds.length === 0 || feeds.length > MAX_HELLO_FEEDS) throw bad(`HELLO must ask for 1 to ${MAX_HELLO_FEEDS} feeds, got ${feeds.length}`);
  const seen = new Set<string>();
  const parsedFeeds = feeds.map((f: unknown) => {
    if (typeof f !== 'object' || f === null || Array.isArray(f)) throw bad('each HELLO feed must be a map', CloseCode.MALFORMED_FRAME);
    const { name, token } = f as Record<string, unknown>;
    if (typeof name !== 'string') throw bad('a HELLO feed name must be a string', CloseCode.MALFORMED_FRAME);
    if (seen.has(name)) throw bad(`feed ${JSON.stringify(name)} is asked for twice`);
    seen.add(name);
    // A token of the wrong type is a bad token (snapshot), never a protocol error (§7).
    return { name, token: Buffer.isBuffer(token) ? token : undefined };
  });
  const capList = Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : [];
  if (caps !== undefined && !Array.isArray(caps)) throw bad('HELLO caps must be an array of strings', CloseCode.MALFORMED_FRAME);
  if (maxFrameBytes !== undefined && (typeof maxFrameBytes !== 'number' || !Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < MIN_CLIENT_FRAME_BYTES)) {
    throw bad(`HELLO maxFrameBytes must be an integer of at least ${MIN_CLIENT_FRAME_BYTES}`, CloseCode.MALFORMED_FRAME);
  }
  return { node, clientId, feeds: parsedFeeds, caps: capList, maxFrameBytes: maxFrameBytes as number | undefined };
}

/** Brotli when the agent can inflate it (smaller, and compressed once anyway), then deflate. */
export function chooseCompression(caps: readonly string[], allowed: readonly Compression[]): Compression {
  if (caps.includes('compress.brotli') && allowed.includes('brotli')) return 'brotli';
  if (caps.includes('compress.deflate') && allowed.includes('deflate')) return 'deflate';
  return 'none';
}
