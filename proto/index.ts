/** Public surface of the wire codec; see proto/PROTOCOL.md. Pure: no I/O, timers or clock. */
export * from './types.js';
export { ProtocolError, isProtocolError, type ProtocolErrorCode } from './errors.js';
export {
  CLOSE_CODES,
  CLOSE_OF_ERROR,
  closeCodeOf,
  isClosingErrorCode,
  reactionTo,
  reactionToClose,
  type CloseCode,
  type CloseCodeName,
  type CloseReaction,
  type ClosingErrorCode,
} from './closes.js';
export { readHeader, writeHeader, buildFrame, type HeaderFields } from './header.js';
export { encodeFrame, encodeBody, headerFieldsOf, splitFrame, decodeBody, decodeFrame, type SplitFrame } from './codec.js';
export {
  encodeDeltaFrames,
  encodeDeltaFrame,
  encodeSnapshotChunkFrames,
  encodeSnapshotChunkFrame,
  entryBytes,
  rawBytesOf,
  type FrameAllocator,
} from './entries.js';
export { bodyOf } from './body.js';
export { computeDigest, entryHash, DIGEST_BYTES, DIGEST_BUCKETS, DIGEST_VERSION } from './digest.js';
export { behindResources, compareResourceVersions, isResourceVersion, mergeWatermarks, type BehindResource } from './resource-version.js';
export { compareKeys } from './key-order.js';
export { addBucket, bucketCount, bucketOfHashHi, emptyBucketSet, hasBucket, mismatchedBuckets } from './bucket-set.js';
