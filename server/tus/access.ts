/**
 * Who may use the tus endpoint: the same rules as the WebSocket endpoint (handshake.ts, session.ts).
 *
 * - Origin: same origin, or one of `origins` (a page elsewhere cannot drive uploads).
 * - Every request but OPTIONS carries the server token or an upload ticket when the server has
 *   either (`Authorization: Bearer ...`; never in the query string, which reaches logs). A tus
 *   request is short, so an expired ticket stops the next PATCH: the app hands the client a fresh
 *   one (tus-js-client `onBeforeRequest`, Uppy `headers`).
 * - Creation is held to the ticket's claims (size, name, type) and asks `authorizeUpload`
 *   (kind 'open'); requests on an upload ask it with kind 'resume'. The hook's `token` is empty
 *   (tus has no such field): it reads what it needs from `request`.
 * - A ticket with a subject reaches only uploads of that subject; anything else is "not found".
 */
import type { FastifyRequest } from 'fastify';
import { Errors, ProtocolError } from '../../protocol/index.js';
import { originAllowed, requestToken, tokenMatches } from '../handshake.js';
import { HttpErrors, type HttpErrorDefinition } from '../http-errors.js';
import type { ResolvedOptions } from '../options.js';
import { verifyUploadTicket, type UploadTicketClaims } from '../tickets.js';
import { clientAddress } from '../client-address.js';

export interface TusAccess {
  /** The ticket the request came with; undefined for the server token or an open server. */
  readonly ticket: UploadTicketClaims | undefined;
}

/** Origin and credentials; an HTTP error to answer, or what the request may do. */
export function checkAccess(
  request: FastifyRequest,
  options: ResolvedOptions,
): TusAccess | HttpErrorDefinition {
  if (!originAllowed(request, options.origins)) return HttpErrors.ORIGIN_NOT_ALLOWED;
  if (options.tokens.length === 0 && options.ticketSecrets.length === 0)
    return { ticket: undefined };
  const token = requestToken(request, false);
  if (token === undefined || token === '') return HttpErrors.TOKEN_REQUIRED;
  if (tokenMatches(token, options.tokens)) return { ticket: undefined };
  const ticket =
    options.ticketSecrets.length > 0 ? verifyUploadTicket(token, options.ticketSecrets) : undefined;
  return ticket ? { ticket } : HttpErrors.TOKEN_REFUSED;
}

export function isHttpError(value: TusAccess | HttpErrorDefinition): value is HttpErrorDefinition {
  return 'status' in value;
}

/** What a creation asks for, as the hook and the ticket see it. */
export interface CreationRequest {
  readonly fileSize: number | undefined;
  readonly name: string;
  readonly contentType: string;
}

/**
 * Creation: the ticket's claims, then `authorizeUpload`; returns the client the upload counts
 * against (a subject, else the address), as Session.admit does for OPEN. Throws ProtocolError.
 */
export async function admitCreation(
  request: FastifyRequest,
  access: TusAccess,
  options: ResolvedOptions,
  wanted: CreationRequest,
): Promise<string> {
  const ticket = access.ticket;
  if (ticket) {
    if (ticket.maxSize !== undefined && (wanted.fileSize ?? 0) > ticket.maxSize) {
      throw new ProtocolError(
        Errors.FILE_TOO_LARGE,
        `the upload ticket allows files up to ${ticket.maxSize} bytes`,
      );
    }
    if (ticket.name !== undefined && wanted.name !== ticket.name)
      throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload ticket is for another file name');
    if (ticket.type !== undefined && wanted.contentType !== ticket.type)
      throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload ticket is for another content type');
  }
  const address =
    ticket?.sub !== undefined ? `subject:${ticket.sub}` : `address:${clientAddress(request.ip)}`;
  const hook = options.authorizeUpload;
  if (!hook) return address;
  const verdict = await hook({
    kind: 'open',
    token: '',
    ...(wanted.fileSize !== undefined ? { fileSize: wanted.fileSize } : {}),
    name: wanted.name,
    contentType: wanted.contentType,
    request,
  });
  if (!verdict) throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload was refused');
  return typeof verdict === 'object' &&
    typeof verdict.subject === 'string' &&
    verdict.subject !== ''
    ? `subject:${verdict.subject}`
    : address;
}

/**
 * A request on an existing upload: a ticket's subject must own it (else NOT_FOUND, no existence
 * oracle), then `authorizeUpload` with kind 'resume'. Throws ProtocolError.
 */
export async function admitUploadRequest(
  request: FastifyRequest,
  access: TusAccess,
  options: ResolvedOptions,
  uploadId: string,
  client: string | undefined,
): Promise<void> {
  const sub = access.ticket?.sub;
  if (sub !== undefined && client !== `subject:${sub}`)
    throw new ProtocolError(Errors.NOT_FOUND, 'no such upload');
  const hook = options.authorizeUpload;
  if (!hook) return;
  const verdict = await hook({ kind: 'resume', token: '', uploadId, request });
  if (!verdict) throw new ProtocolError(Errors.UNAUTHORIZED, 'the upload was refused');
}
