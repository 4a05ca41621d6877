/**
 * Per-frame body compression (PROTOCOL.md §5), outside `proto/` because zlib is I/O-class code
 * there. Each body is compressed on its own, once, and the same bytes go to every client that
 * negotiated the algorithm; so compression CPU is paid once per frame, while the ratio is paid by
 * every socket. Synchronous on purpose: bodies are ≤ maxFrameBytes (1 MiB by default), a few ms
 * of work, and the async zlib API would add a threadpool hop and a copy per frame.
 *
 * Levels, measured on 1 MiB SNAPSHOT_CHUNK bodies of ~575 B workload-endpoint values
 * (bench/results/codec.md): raw deflate level 1 does ~215 MB/s at 7.3× — levels 2–3 gain 6–9 %
 * ratio for 25–30 % less speed, level 6 is 3.5× slower. Brotli quality 3 gives the best ratio
 * below the quality-4 cliff (8.2× at ~100 MB/s; quality 1: 7.2× at ~140 MB/s; quality 4: 8.4× at
 * ~25 MB/s). A client only asks for brotli if it wants the smaller bytes, so brotli leans to ratio
 * and deflate to speed.
 */
import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { ProtocolError } from '../../proto/errors.js';

export type CompressionAlgorithm = 'deflate' | 'brotli';

/** zlib level of raw DEFLATE bodies (RFC 1951, no wrapper). */
export const DEFLATE_LEVEL = 1;
/** Brotli quality of brotli bodies (RFC 7932). */
export const BROTLI_QUALITY = 3;

/** Compresses one frame body on its own (no shared window), ready for a `COMPRESSED` frame. */
export function compressBody(alg: CompressionAlgorithm, body: Uint8Array): Buffer {
  if (alg === 'deflate') return deflateRawSync(body, { level: DEFLATE_LEVEL });
  return brotliCompressSync(body, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
}

/**
 * Inflates a `COMPRESSED` body, refusing to produce more than `maxBytes` (the negotiated
 * maxFrameBytes). zlib stops at `maxOutputLength`, so a decompression bomb costs at most
 * `maxBytes` of memory before it is refused.
 * @throws ProtocolError FRAME_TOO_LARGE (4003) above `maxBytes`; BAD_BODY (4000) for a corrupt or truncated stream
 */
export function inflateBody(alg: CompressionAlgorithm, body: Uint8Array, maxBytes: number): Buffer {
  try {
    return alg === 'deflate'
      ? inflateRawSync(body, { maxOutputLength: maxBytes })
      : brotliDecompressSync(body, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ProtocolError('CATTAIL_PROTO_FRAME_TOO_LARGE', `${alg} body inflates beyond ${maxBytes} bytes`, { cause: err, details: { alg, maxBytes } });
    }
    throw new ProtocolError('CATTAIL_PROTO_BAD_BODY', `${alg} body does not inflate: ${err instanceof Error ? err.message : String(err)}`, { cause: err, details: { alg } });
  }
}
