/**
 * Per-frame body compression (PROTOCOL.md §5), outside `proto/` because zlib is I/O-class code
 * there. Each body is compressed on its own, once, and the same bytes go to every client that
 * negotiated the algorithm; so compression CPU is paid once per frame, while the ratio is paid by
 * every socket. Synchronous on purpose: bodies are ≤ maxFrameBytes (1 MiB by default), a few ms
 * of work, and the async zlib API would add a threadpool hop and a copy per frame.
 *
 * Levels, measured on 1 MiB SNAPSHOT_CHUNK bodies of ~576 B workload-endpoint values
 * (bench/results/codec.md): raw deflate level 1 compresses 7.7× at ~200 MB per CPU-second;
 * levels 2–3 gain 6–7 % ratio, level 6 (9.4×) is about 2× slower. Brotli quality 3 gives 8.7×,
 * the best ratio before the quality-4 slowdown, 12 % smaller than quality 1 (7.7×) for roughly
 * half its speed. A frame is compressed once and sent to every client, so the ratio is paid N
 * times and the CPU once: brotli leans to ratio, deflate is the fast choice.
 */
import { brotliCompressSync, brotliDecompressSync, constants, deflateRawSync, inflateRawSync } from 'node:zlib';
import { decodeBody, splitFrame } from '../proto/codec.js';
import { ProtocolError } from '../proto/errors.js';
import { buildFrame, readHeader } from '../proto/header.js';
import { Flags, HEADER_BYTES, type Compression, type DecodeLimits, type Message } from '../proto/types.js';

export type CompressionAlgorithm = 'deflate' | 'brotli';

/** zlib level of raw DEFLATE bodies (RFC 1951, no wrapper). */
const DEFLATE_LEVEL = 1;
/** Brotli quality of brotli bodies (RFC 7932). */
const BROTLI_QUALITY = 3;

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

/** Bodies below this many bytes are sent uncompressed (PROTOCOL.md §5: "by default 1 KiB"). */
const DEFAULT_COMPRESS_MIN_BODY_BYTES = 1024;

/**
 * The `COMPRESSED` twin of an uncompressed frame (same header, compressed body), or the frame
 * itself when its body is below `minBodyBytes` or compression does not make it smaller. Call once
 * per frame and algorithm; send the result to every client that negotiated `alg`.
 */
export function compressFrame(alg: CompressionAlgorithm, frame: Buffer, minBodyBytes = DEFAULT_COMPRESS_MIN_BODY_BYTES): Buffer {
  const header = readHeader(frame);
  const body = frame.subarray(HEADER_BYTES, HEADER_BYTES + header.bodyLength);
  if ((header.flags & Flags.COMPRESSED) !== 0 || body.length < minBodyBytes) return frame;
  const packed = compressBody(alg, body);
  if (packed.length >= body.length) return frame;
  return buildFrame({ ...header, flags: header.flags | Flags.COMPRESSED }, packed);
}

/**
 * Client-side receive path: header checks, bounded inflate of a `COMPRESSED` body (by
 * `limits.maxBodyBytes`, the negotiated maxFrameBytes), body decode.
 * @throws ProtocolError; BAD_FLAGS (4002) for a COMPRESSED frame when `compression` is `none`
 */
export function decodeWireFrame(frame: Uint8Array, compression: Compression, limits: DecodeLimits): Message {
  const { header, body } = splitFrame(frame, limits);
  if ((header.flags & Flags.COMPRESSED) === 0) return decodeBody(header, body);
  if (compression === 'none') {
    throw new ProtocolError('CATTAIL_PROTO_BAD_FLAGS', 'COMPRESSED frame on a connection without compression', { details: { type: header.type } });
  }
  return decodeBody(header, inflateBody(compression, body, limits.maxBodyBytes));
}
