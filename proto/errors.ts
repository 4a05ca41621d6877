import { CattailError, type CattailErrorOptions, type ErrorCode } from '../src/errors.js';
import { CLOSE_CODES, type CloseCode } from './types.js';

export type ProtocolErrorCode = Extract<ErrorCode, `CATTAIL_PROTO_${string}`>;

/** The close code each protocol error ends the connection with (PROTOCOL.md §1.3). */
export const CLOSE_CODE_OF = {
  CATTAIL_PROTO_TRUNCATED: CLOSE_CODES.MALFORMED_FRAME.code,
  CATTAIL_PROTO_BAD_HEADER: CLOSE_CODES.MALFORMED_FRAME.code,
  CATTAIL_PROTO_BAD_BODY: CLOSE_CODES.MALFORMED_FRAME.code,
  CATTAIL_PROTO_UNSUPPORTED_VERSION: CLOSE_CODES.UNSUPPORTED_VERSION.code,
  CATTAIL_PROTO_UNKNOWN_TYPE: CLOSE_CODES.UNEXPECTED_MESSAGE.code,
  CATTAIL_PROTO_BAD_FLAGS: CLOSE_CODES.UNEXPECTED_MESSAGE.code,
  CATTAIL_PROTO_FRAME_TOO_LARGE: CLOSE_CODES.FRAME_TOO_LARGE.code,
} as const satisfies Record<ProtocolErrorCode, CloseCode>;

/**
 * A peer broke the wire protocol (or a local caller asked the codec for something the protocol
 * cannot carry). `closeCode` is the WebSocket close code to end the connection with; the code's
 * name goes into the ERROR message and the close reason.
 */
export class ProtocolError extends CattailError {
  declare readonly code: ProtocolErrorCode;
  readonly closeCode: CloseCode;

  constructor(code: ProtocolErrorCode, message: string, options?: CattailErrorOptions) {
    super(code, message, options);
    this.closeCode = CLOSE_CODE_OF[code];
  }
}

/** Brand-safe check (works across two bundled copies, unlike `instanceof`). */
export function isProtocolError(value: unknown): value is ProtocolError {
  return CattailError.is(value) && value.code.startsWith('CATTAIL_PROTO_') && typeof (value as { closeCode?: unknown }).closeCode === 'number';
}
