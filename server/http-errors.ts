/**
 * Every HTTP error the plugin answers, declared once: a stable `code` for programs, the status,
 * and a message for people. Bodies are `{ "code": "...", "error": "..." }` and never carry an
 * errno, a path or a stack (SPEC.md section 3 for the handshake answers, section 12 for the rest).
 */
import type { FastifyReply } from 'fastify';

export interface HttpErrorDefinition {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

function def(code: string, status: number, message: string): HttpErrorDefinition {
  return Object.freeze({ code, status, message });
}

export const HttpErrors = Object.freeze({
  /** The Host header names no host this server answers for (DNS rebinding defence). */
  HOST_NOT_ALLOWED: def('HOST_NOT_ALLOWED', 403, 'this server does not answer for that Host'),
  ORIGIN_NOT_ALLOWED: def('ORIGIN_NOT_ALLOWED', 403, 'origin not allowed'),
  TOKEN_REQUIRED: def('TOKEN_REQUIRED', 401, 'token required'),
  TOKEN_REFUSED: def('TOKEN_REFUSED', 403, 'token refused'),
  UPGRADE_REQUIRED: def('UPGRADE_REQUIRED', 426, 'this endpoint speaks a WebSocket subprotocol'),
  TOO_MANY_CONNECTIONS: def('TOO_MANY_CONNECTIONS', 503, 'too many connections'),
  SHUTTING_DOWN: def('SHUTTING_DOWN', 503, 'shutting down'),
  /** Unknown id, malformed id, wrong secret: one answer, so it reveals nothing. */
  NOT_FOUND: def('NOT_FOUND', 404, 'not found'),
  INTERNAL_ERROR: def('INTERNAL_ERROR', 500, 'internal error'),
  // The tus 1.0.0 endpoint (server/tus/); statuses are the ones the tus protocol and tusd use.
  /** Tus-Resumable missing or not 1.0.0. */
  TUS_VERSION_UNSUPPORTED: def(
    'TUS_VERSION_UNSUPPORTED',
    412,
    'this server speaks tus 1.0.0 (send Tus-Resumable: 1.0.0)',
  ),
  /** A tus header is missing, malformed, or contradicts another. */
  TUS_BAD_HEADER: def('TUS_BAD_HEADER', 400, 'a tus header is missing or malformed'),
  TUS_CONTENT_TYPE: def(
    'TUS_CONTENT_TYPE',
    415,
    'a PATCH body must be Content-Type application/offset+octet-stream',
  ),
  /** Upload-Offset is not where the upload stands (HEAD tells where it does). */
  TUS_OFFSET_MISMATCH: def(
    'TUS_OFFSET_MISMATCH',
    409,
    "Upload-Offset does not match the upload's offset",
  ),
  /** Another request (a PATCH, or a WebSocket connection) is writing this upload. */
  TUS_LOCKED: def('TUS_LOCKED', 423, 'another request is writing this upload; retry shortly'),
  TUS_CHECKSUM_MISMATCH: def(
    'TUS_CHECKSUM_MISMATCH',
    460,
    'Upload-Checksum does not match the body; nothing of it was stored',
  ),
  TUS_CHECKSUM_UNSUPPORTED: def(
    'TUS_CHECKSUM_UNSUPPORTED',
    400,
    'unsupported checksum algorithm (see Tus-Checksum-Algorithm)',
  ),
  /** The body goes past Upload-Length, or Upload-Length past `maxUploadSize` or a ticket's size. */
  TUS_TOO_LARGE: def(
    'TUS_TOO_LARGE',
    413,
    'the upload is larger than allowed or than its Upload-Length',
  ),
  /** The bytes differ from a chunk the server already stored for this upload. */
  TUS_CONFLICT: def(
    'TUS_CONFLICT',
    409,
    'the bytes differ from what the server already stored there',
  ),
  /** authorizeUpload refused, or the ticket is for another file. */
  TUS_FORBIDDEN: def('TUS_FORBIDDEN', 403, 'upload not authorized'),
  /** tusPartialWritesPerChunk: too many PATCHes ended inside one chunk on the object store. */
  TUS_PATCH_TOO_SMALL: def(
    'TUS_PATCH_TOO_SMALL',
    400,
    'too many PATCHes ended inside one chunk of this upload; send larger PATCHes',
  ),
  /** A per-client or server quota of unfinished uploads or reserved bytes. */
  TUS_QUOTA_EXCEEDED: def(
    'TUS_QUOTA_EXCEEDED',
    429,
    'quota of unfinished uploads or reserved bytes exceeded; finish or terminate some',
  ),
  TUS_INSUFFICIENT_STORAGE: def(
    'TUS_INSUFFICIENT_STORAGE',
    507,
    'not enough free space for this upload',
  ),
  /** Every upload slot (`maxUploads`) is writing: retry after a pause. */
  TUS_BUSY: def('TUS_BUSY', 503, 'too many uploads in progress; retry shortly'),
  /** A storage write or flush failed: what HEAD reports is intact, retry after a pause. */
  TUS_STORAGE_ERROR: def(
    'TUS_STORAGE_ERROR',
    503,
    'a write or flush failed on the server; retry shortly',
  ),
  /** The server found its record of the upload damaged (SPEC.md 7.2): start a new upload. */
  TUS_UPLOAD_DAMAGED: def(
    'TUS_UPLOAD_DAMAGED',
    410,
    'the server found its record of this upload damaged; start a new upload',
  ),
});

export type HttpErrorName = keyof typeof HttpErrors;

/** The JSON body of an HTTP error. */
export function httpErrorBody(
  error: HttpErrorDefinition,
  message = error.message,
): { code: string; error: string } {
  return { code: error.code, error: message };
}

/** Answer `error` (its status and body); headers are set by the caller before. */
export function sendHttpError(
  reply: FastifyReply,
  error: HttpErrorDefinition,
  message?: string,
): FastifyReply {
  return reply.code(error.status).send(httpErrorBody(error, message));
}
