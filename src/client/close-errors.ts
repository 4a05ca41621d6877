/**
 * The errors with which the client ends a connection itself. The close code is never chosen here:
 * it comes from the error code through proto's one table (CLOSE_OF_ERROR), the same table the
 * server's close paths use.
 */
import { type CloseCode, type ClosingErrorCode, closeCodeOf } from '../../proto/index.js';
import { CattailError } from '../errors.js';

/** An error that closes the connection with the close code its `code` maps to (4002, 4013, 4014, 1000). */
export class LocalCloseError extends CattailError {
  declare readonly code: ClosingErrorCode;
  readonly closeCode: CloseCode;

  constructor(code: ClosingErrorCode, message: string, options?: ConstructorParameters<typeof CattailError>[2]) {
    super(code, message, options);
    this.closeCode = closeCodeOf(code);
  }
}

/** A frame that is well-formed but not allowed here (close 4002, CATTAIL_CLIENT_PROTOCOL_ERROR). */
export function unexpected(message: string, details?: Record<string, unknown>): LocalCloseError {
  return new LocalCloseError('CATTAIL_CLIENT_PROTOCOL_ERROR', message, details === undefined ? undefined : { details });
}
