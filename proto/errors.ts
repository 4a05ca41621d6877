import { CattailError, type CattailErrorOptions, type ErrorCode } from '../src/errors.js';
import { type CloseCode, closeCodeOf } from './closes.js';

export type ProtocolErrorCode = Extract<ErrorCode, `CATTAIL_PROTO_${string}`>;

/**
 * A peer broke the wire protocol (or a local caller asked the codec for something the protocol
 * cannot carry). `closeCode` is the WebSocket close code to end the connection with (from the one
 * table in closes.ts); the code's name goes into the ERROR message and the close reason.
 */
export class ProtocolError extends CattailError {
  declare readonly code: ProtocolErrorCode;
  readonly closeCode: CloseCode;

  constructor(code: ProtocolErrorCode, message: string, options?: CattailErrorOptions) {
    super(code, message, options);
    this.closeCode = closeCodeOf(code);
  }
}

/** Brand-safe check (works across two bundled copies, unlike `instanceof`). */
export function isProtocolError(value: unknown): value is ProtocolError {
  return CattailError.is(value) && value.code.startsWith('CATTAIL_PROTO_') && typeof (value as { closeCode?: unknown }).closeCode === 'number';
}
