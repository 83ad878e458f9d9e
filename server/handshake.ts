/**
 * Checks on the HTTP upgrade request, run in an `onRequest` hook so a refusal is a plain HTTP
 * answer before any 101 (protocol/SPEC.md section 3, "Handshake"): Origin allow-list (403), server
 * token (401 missing / 403 wrong), subprotocol (426 + Bigup-Versions), capacity (503).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SUBPROTOCOL_V1, SUPPORTED_SUBPROTOCOLS } from '../protocol/index.js';
import type { ResolvedOptions } from './options.js';

/** Compare secrets in constant time (hashing first makes the lengths equal). */
export function tokenMatches(given: string, tokens: readonly string[]): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  const g = digest(given);
  let match = false;
  for (const token of tokens) match = timingSafeEqual(g, digest(token)) || match;
  return match;
}

/** The server token a request carries: `Authorization: Bearer <t>` or, for browsers, `?token=<t>`. */
export function requestToken(request: FastifyRequest, allowQuery: boolean): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+/i.test(header)) return header.replace(/^Bearer\s+/i, '').trim();
  if (!allowQuery) return undefined;
  const query = request.query as Record<string, unknown> | undefined;
  const token = query?.token;
  return typeof token === 'string' ? token : undefined;
}

/** Same-origin or listed: the defense against cross-site WebSocket hijacking. */
export function originAllowed(request: FastifyRequest, origins: readonly string[]): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true; // not a browser; the token (if any) protects the endpoint
  if (origins.length > 0) return origins.includes(origin);
  try {
    return new URL(origin).host === request.headers.host;
  } catch {
    return false;
  }
}

function offeredSubprotocols(request: FastifyRequest): string[] {
  const header = request.headers['sec-websocket-protocol'];
  const text = Array.isArray(header) ? header.join(',') : header ?? '';
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

export interface HandshakeState {
  /** Connections open or being upgraded. */
  connections: () => number;
  shuttingDown: () => boolean;
  /** The request passed every check: count it as a connection from now on (before the 101). */
  admitted: (request: FastifyRequest) => void;
}

/** Build the onRequest hook of the WebSocket route. */
export function handshakeGuard(options: ResolvedOptions, state: HandshakeState) {
  return async function guard(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (state.shuttingDown()) {
      await reply.code(503).header('Retry-After', '5').send({ error: 'shutting down' });
      return;
    }
    if (!originAllowed(request, options.origins)) {
      await reply.code(403).send({ error: 'origin not allowed' });
      return;
    }
    if (options.tokens.length > 0) {
      const token = requestToken(request, true);
      if (token === undefined || token === '') {
        await reply.code(401).header('WWW-Authenticate', 'Bearer').send({ error: 'token required' });
        return;
      }
      if (!tokenMatches(token, options.tokens)) {
        await reply.code(403).send({ error: 'token refused' });
        return;
      }
    }
    if (!request.ws || !offeredSubprotocols(request).includes(SUBPROTOCOL_V1)) {
      await reply
        .code(426)
        .header('Bigup-Versions', SUPPORTED_SUBPROTOCOLS.join(', '))
        .header('Upgrade', 'websocket')
        .send({ error: `this endpoint speaks WebSocket subprotocol ${SUPPORTED_SUBPROTOCOLS.join(', ')}` });
      return;
    }
    if (state.connections() >= options.maxConnections) {
      await reply.code(503).header('Retry-After', '5').send({ error: 'too many connections' });
      return;
    }
    state.admitted(request);
  };
}
