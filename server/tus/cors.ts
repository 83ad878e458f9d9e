/**
 * CORS for the tus endpoint: a page served elsewhere (an origin listed in `origins`) must be able to
 * send tus headers and read tus answers. Same-origin pages need none of it; other origins get no
 * CORS headers, so the browser keeps their requests and answers apart (and access.ts refuses them).
 */
import type { FastifyRequest } from 'fastify';

const ALLOW_HEADERS = [
  'Authorization',
  'Content-Type',
  'Tus-Resumable',
  'Upload-Length',
  'Upload-Metadata',
  'Upload-Offset',
  'Upload-Defer-Length',
  'Upload-Checksum',
  'X-HTTP-Method-Override',
  'X-Requested-With',
].join(', ');

const EXPOSE_HEADERS = [
  'Location',
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Tus-Checksum-Algorithm',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Defer-Length',
  'Upload-Metadata',
  'Upload-Expires',
  'Bigup-Upload-Id',
  'Bigup-Secret',
].join(', ');

/** Headers to add to an answer for `request` (none unless its Origin is listed). */
export function corsHeaders(
  request: FastifyRequest,
  origins: readonly string[],
): Record<string, string> {
  const origin = request.headers.origin;
  if (origin === undefined || !origins.includes(origin)) return {};
  const headers: Record<string, string> = {
    'Access-Control-Allow-Origin': origin,
    'Access-Control-Expose-Headers': EXPOSE_HEADERS,
    Vary: 'Origin',
  };
  if (
    request.method === 'OPTIONS' &&
    request.headers['access-control-request-method'] !== undefined
  ) {
    headers['Access-Control-Allow-Methods'] = 'POST, HEAD, PATCH, DELETE, OPTIONS';
    headers['Access-Control-Allow-Headers'] = ALLOW_HEADERS;
    headers['Access-Control-Max-Age'] = '86400';
  }
  return headers;
}
