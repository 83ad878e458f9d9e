/**
 * Errors as values for the client. Server refusals keep their registry code and name
 * (protocol/errors.ts); faults the server never sees (network drop, refused handshake, unreadable
 * file) get client-local codes in 0xF0xx, a range the wire registry does not use, so one
 * `code` field covers both. These codes never go on the wire.
 */
import { errorByCode } from '../../protocol/index.js';
import type { UploadErrorInfo } from './types.js';

export interface ClientErrorDefinition {
  readonly code: number;
  readonly name: string;
  readonly retryable: boolean;
  readonly meaning: string;
  readonly clientAction: string;
}

function def(
  code: number,
  name: string,
  retryable: boolean,
  meaning: string,
  clientAction: string,
): ClientErrorDefinition {
  return Object.freeze({ code, name, retryable, meaning, clientAction });
}

export const ClientErrors = {
  /** The connection dropped or could not be established (no server, reset, proxy cut). */
  NETWORK: def(
    0xf001,
    'NETWORK',
    true,
    'The connection could not be established or was lost.',
    'Retrying with backoff; check the URL and that the server is running.',
  ),
  /** HTTP 401/403 on the upgrade: the server token is missing, wrong or expired. */
  HANDSHAKE_UNAUTHORIZED: def(
    0xf002,
    'HANDSHAKE_UNAUTHORIZED',
    false,
    'The server refused the connection: the token is missing, wrong or expired (HTTP 401/403), or the origin is not allowed.',
    'Pass a valid --token.',
  ),
  /** HTTP 426 or no common subprotocol. */
  UNSUPPORTED_VERSION: def(
    0xf003,
    'UNSUPPORTED_VERSION',
    false,
    'The server does not speak bigup.1.',
    'Upgrade the client or the server.',
  ),
  /** The upgrade was refused with another HTTP status (404: wrong path...). */
  HANDSHAKE_REFUSED: def(
    0xf004,
    'HANDSHAKE_REFUSED',
    false,
    'The server refused the WebSocket upgrade.',
    'Check the URL (path /upload) and the server.',
  ),
  /** Reading the file failed or the file changed size. */
  SOURCE_ERROR: def(
    0xf005,
    'SOURCE_ERROR',
    false,
    'The file could not be read, or it changed while uploading.',
    'Check the file and start again.',
  ),
  /** The server sent something the codec refused, or broke the protocol's rules. */
  PROTOCOL_VIOLATION: def(
    0xf006,
    'PROTOCOL_VIOLATION',
    true,
    'The server sent an invalid or unexpected message.',
    'Retrying; report to the operator if it persists.',
  ),
  /** The server's RESULT does not match what we uploaded (size or our digest). */
  RESULT_MISMATCH: def(
    0xf007,
    'RESULT_MISMATCH',
    false,
    'The server reported a size or digest that differs from the file sent.',
    'Do not trust the stored file; upload again.',
  ),
  /** The ACCEPT of a RESUME describes a different file than ours. */
  RESUME_MISMATCH: def(
    0xf008,
    'RESUME_MISMATCH',
    false,
    'The upload on the server has a different size than this file.',
    'The resume record is stale; it was removed. Start again.',
  ),
  /** The endpoint is not a ws:// or wss:// URL the platform can open. */
  BAD_ENDPOINT: def(
    0xf009,
    'BAD_ENDPOINT',
    false,
    'The upload endpoint is not a valid WebSocket URL.',
    'Fix the endpoint (ws:// or wss://, path /upload).',
  ),
  /** The upload worker died (crash, out of memory); the upload can resume in the page. */
  WORKER_LOST: def(
    0xf00a,
    'WORKER_LOST',
    true,
    'The background upload worker stopped.',
    'Retry: the upload resumes from what the server holds.',
  ),
} as const satisfies Record<string, ClientErrorDefinition>;

export type ClientErrorName = keyof typeof ClientErrors;

/** Build the plain error value for a client-local fault. */
export function clientError(
  definition: ClientErrorDefinition,
  message: string = definition.meaning,
  fatal = !definition.retryable,
): UploadErrorInfo {
  return {
    code: definition.code,
    name: definition.name,
    message,
    retryable: definition.retryable,
    fatal,
  };
}

/** Build the plain error value for an ERROR message from the server (unknown codes go by their flags). */
export function serverError(
  code: number,
  retryable: boolean,
  message: string,
  fatal: boolean,
): UploadErrorInfo {
  const known = errorByCode(code);
  return {
    code,
    name: known?.name ?? `ERROR_0x${code.toString(16).padStart(4, '0')}`,
    message: message || known?.meaning || 'server error',
    retryable,
    fatal,
  };
}

/** What the user should do about an error code, for one-line CLI messages. */
export function errorAdvice(code: number): string | undefined {
  const local = Object.values(ClientErrors).find((e) => e.code === code);
  return local?.clientAction ?? errorByCode(code)?.clientAction;
}
