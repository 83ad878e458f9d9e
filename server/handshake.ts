/**
 * Checks on the HTTP upgrade request, run in an `onRequest` hook so a refusal is a plain HTTP
 * answer before any 101 (protocol/SPEC.md section 3, "Handshake"): Origin allow-list (403), server
 * token (401 missing / 403 wrong), subprotocol (426 + Bigup-Versions), capacity (503).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SUPPORTED_SUBPROTOCOLS } from '../protocol/index.js';
import { tokenMatches } from './constant-time.js';
import { HttpErrors, sendHttpError } from './http-errors.js';
import { verifyUploadTicket, type UploadTicketClaims } from './tickets.js';

/** The ticket an upgrade was admitted with (none for the server token), for its session's OPENs. */
export const ticketOf = new WeakMap<object, UploadTicketClaims>();
import type { ResolvedOptions } from './options.js';

// Also offered here, where the other upgrade checks are (server/tus/access.ts imports it so).
export { tokenMatches };

/** The server token a request carries: `Authorization: Bearer <t>` or, for browsers, `?token=<t>`. */
export function requestToken(request: FastifyRequest, allowQuery: boolean): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string' && /^Bearer\s+/i.test(header))
    return header.replace(/^Bearer\s+/i, '').trim();
  if (!allowQuery) return undefined;
  const query = request.query as Record<string, unknown> | undefined;
  const token = query?.token;
  return typeof token === 'string' ? token : undefined;
}

/**
 * Same-origin or listed: the defense against cross-site WebSocket hijacking. Same origin means
 * the Origin's host and port equal the Host header, and its scheme is http or https; when the
 * server knows it is reached over TLS (its own TLS, or `trustProxy` with X-Forwarded-Proto) the
 * scheme must be https. A TLS-terminating proxy that Fastify does not trust shows up as http, so
 * http there cannot demand an http Origin.
 */
export function originAllowed(request: FastifyRequest, origins: readonly string[]): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return true; // not a browser; the token (if any) protects the endpoint
  if (origins.length > 0) return origins.includes(origin);
  try {
    const url = new URL(origin);
    const scheme = request.protocol === 'https' ? ['https:'] : ['http:', 'https:'];
    return scheme.includes(url.protocol) && url.host === request.headers.host;
  } catch {
    return false;
  }
}

/** Host names of the loopback interface: the only ones answered by default without a token. */
const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '::1'];

/** The host name of a Host header, lower-case, without port or IPv6 brackets. */
export function hostName(header: string | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  let url: URL;
  try {
    url = new URL(`http://${header}`);
  } catch {
    return undefined;
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '')
    return undefined;
  return url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
}

/**
 * The DNS-rebinding defence: a page on attacker.example that rebinds its name to 127.0.0.1 reaches
 * us with `Host: attacker.example`, and same-origin checks pass. With `allowedHosts` set, the Host
 * must be one of them ('*' allows any). Without it, a server that has a token answers any Host
 * (a rebound page cannot know the token); one without a token answers loopback names only.
 */
export function hostAllowed(
  request: FastifyRequest,
  options: Pick<ResolvedOptions, 'allowedHosts' | 'tokens' | 'ticketSecrets'>,
): boolean {
  const allowed = options.allowedHosts;
  if (allowed?.includes('*')) return true;
  if (allowed === undefined && (options.tokens.length > 0 || options.ticketSecrets.length > 0))
    return true;
  const name = hostName(request.headers.host);
  if (name === undefined) return false;
  // Loopback names never resolve to someone else's page: always answered.
  if (LOOPBACK_HOSTS.includes(name) || name.endsWith('.localhost')) return true;
  return allowed?.includes(name) ?? false;
}

function offeredSubprotocols(request: FastifyRequest): string[] {
  const header = request.headers['sec-websocket-protocol'];
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
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
      await sendHttpError(reply.header('Retry-After', '5'), HttpErrors.SHUTTING_DOWN);
      return;
    }
    if (!originAllowed(request, options.origins)) {
      await sendHttpError(reply, HttpErrors.ORIGIN_NOT_ALLOWED);
      return;
    }
    if (options.tokens.length > 0 || options.ticketSecrets.length > 0) {
      const token = requestToken(request, true);
      if (token === undefined || token === '') {
        await sendHttpError(reply.header('WWW-Authenticate', 'Bearer'), HttpErrors.TOKEN_REQUIRED);
        return;
      }
      if (!tokenMatches(token, options.tokens)) {
        const claims =
          options.ticketSecrets.length > 0
            ? verifyUploadTicket(token, options.ticketSecrets)
            : undefined;
        if (!claims) {
          await sendHttpError(reply, HttpErrors.TOKEN_REFUSED);
          return;
        }
        ticketOf.set(request.raw, claims);
      }
    }
    if (
      !request.ws ||
      !offeredSubprotocols(request).some((p) => SUPPORTED_SUBPROTOCOLS.includes(p))
    ) {
      await sendHttpError(
        reply
          .header('Bigup-Versions', SUPPORTED_SUBPROTOCOLS.join(', '))
          .header('Upgrade', 'websocket'),
        HttpErrors.UPGRADE_REQUIRED,
        `this endpoint speaks WebSocket subprotocol ${SUPPORTED_SUBPROTOCOLS.join(', ')}`,
      );
      return;
    }
    if (state.connections() >= options.maxConnections) {
      await sendHttpError(reply.header('Retry-After', '5'), HttpErrors.TOO_MANY_CONNECTIONS);
      return;
    }
    state.admitted(request);
  };
}
