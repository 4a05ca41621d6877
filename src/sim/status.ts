/**
 * v1 Status bodies and the error type request handlers throw to produce them. Every error the
 * simulator answers (HTTP or in-stream) is one of these, field order as Go's metav1.Status.
 */
import { goJson } from './encode.js';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message?: string; field?: string }[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: { continue?: string };
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

export function status(code: number, reason: string, message: string, details?: StatusDetails, continueToken?: string): StatusBody {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (continueToken !== undefined) body.metadata = { continue: continueToken };
  if (details !== undefined) {
    // Keep Go's field order: details comes before code.
    return { kind: 'Status', apiVersion: 'v1', metadata: body.metadata, status: 'Failure', message, reason, details, code };
  }
  return body;
}

/** Thrown inside request handling; the router turns it into an HTTP response with a Status body. */
export class StatusError extends Error {
  constructor(
    readonly body: StatusBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.message);
  }

  get code(): number {
    return this.body.code;
  }

  encode(): Buffer {
    return Buffer.from(goJson(this.body));
  }
}

export const badRequest = (msg: string): StatusError => new StatusError(status(400, 'BadRequest', msg));
export const invalid = (msg: string, field?: string): StatusError =>
  new StatusError(status(422, 'Invalid', msg, field === undefined ? undefined : { causes: [{ reason: 'FieldValueInvalid', message: msg, field }] }));

/** One entry of a field.ErrorList: its cause reason, and its message without the field (ErrorBody). */
export interface FieldError {
  reason: 'FieldValueForbidden' | 'FieldValueNotSupported';
  field: string;
  body: string;
}

/**
 * apierrors.NewInvalid(ListOptions.meta.k8s.io, "", errs): the apiserver's answer to list options
 * that fail ValidateListOptions. The name is empty (omitted from details, quoted in the message),
 * and the message aggregates every error as "field: body", bracketed when there are several.
 */
export function invalidListOptions(errs: readonly FieldError[]): StatusError {
  const all = errs.map((e) => `${e.field}: ${e.body}`);
  const aggregate = all.length === 1 ? (all[0] as string) : `[${all.join(', ')}]`;
  const causes = errs.map((e) => ({ reason: e.reason, message: e.body, field: e.field }));
  return new StatusError(status(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: ${aggregate}`, { group: 'meta.k8s.io', kind: 'ListOptions', causes }));
}

export const notFound = (kind: string, name: string, group = ''): StatusError =>
  new StatusError(status(404, 'NotFound', `${kind}${group ? `.${group}` : ''} "${name}" not found`, { name, group: group || undefined, kind }));
export const pathNotFound = (): StatusError => new StatusError(status(404, 'NotFound', 'the server could not find the requested resource', {}));
export const conflict = (kind: string, name: string, msg: string): StatusError =>
  new StatusError(status(409, 'Conflict', `Operation cannot be fulfilled on ${kind} "${name}": ${msg}`, { name, kind }));
export const alreadyExists = (kind: string, name: string): StatusError =>
  new StatusError(status(409, 'AlreadyExists', `${kind} "${name}" already exists`, { name, kind }));
export const methodNotAllowed = (): StatusError => new StatusError(status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource'));
export const expired = (msg: string, continueToken?: string): StatusError => new StatusError(status(410, 'Expired', msg, undefined, continueToken));
export const tooLargeRv = (): StatusError =>
  new StatusError(
    status(504, 'Timeout', 'Too large resource version', { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 }),
    { 'Retry-After': '1' },
  );
