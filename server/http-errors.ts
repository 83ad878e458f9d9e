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
