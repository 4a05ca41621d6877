/**
 * Inflating a COMPRESSED body (PROTOCOL.md §5), bounded: a body that inflates beyond the limit is
 * refused without materialising it (decompression-bomb guard, close 4003).
 */
import { brotliDecompressSync, inflateRawSync } from 'node:zlib';
import { ProtocolError } from '../../proto/index.js';

export function inflateBody(alg: 'deflate' | 'brotli', body: Uint8Array, maxBytes: number): Buffer {
  try {
    // maxOutputLength makes zlib stop (and throw RangeError) at the limit instead of allocating it all.
    return alg === 'brotli' ? brotliDecompressSync(body, { maxOutputLength: maxBytes }) : inflateRawSync(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ProtocolError('CATTAIL_PROTO_FRAME_TOO_LARGE', `${alg} body inflates beyond ${maxBytes} bytes`, { cause: err });
    }
    throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${alg} body does not inflate: ${(err as Error).message}`, { cause: err });
  }
}
