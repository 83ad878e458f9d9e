/**
 * Upload tickets: short-lived, signed permissions to upload, minted by the embedding app's backend
 * for one user (the analogue of an S3 presigned URL). A browser gets a ticket instead of the server
 * token, so what it can leak is one user's right to upload within limits, for minutes.
 *
 * Format: `bt1.<claims>.<signature>`, both base64url; claims is JSON, signature is HMAC-SHA256 with
 * the shared `ticketSecret` over `bt1.<claims>`. Stateless: the server checks signature and expiry
 * on the upgrade, and the claims at OPEN.
 */
import { createHmac } from 'node:crypto';
import { sameBytes } from './constant-time.js';

/** What a ticket allows. Every field but `exp` is optional. */
export interface UploadTicketClaims {
  /** Expiry, seconds since the epoch. The upgrade is refused after it; a connection made before continues. */
  readonly exp: number;
  /** Whose quota the uploads count against (a user or tenant id). */
  readonly sub?: string;
  /** Largest file the ticket allows (bytes). */
  readonly maxSize?: number;
  /** The only file name the ticket allows (as the client sends it in OPEN). */
  readonly name?: string;
  /** The only content type the ticket allows. */
  readonly type?: string;
}

const PREFIX = 'bt1.';

function sign(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

/**
 * Mint a ticket for `claims`, valid for `ttlSeconds` (default 10 minutes) unless `claims.exp` is
 * given. Run this in your backend, after your own authentication; never in the browser.
 */
export function mintUploadTicket(
  secret: string,
  claims: Omit<UploadTicketClaims, 'exp'> & { exp?: number },
  ttlSeconds = 600,
): string {
  if (typeof secret !== 'string' || secret.length < 32)
    throw new TypeError('ticket secret must be a string of at least 32 characters');
  const full: UploadTicketClaims = {
    ...claims,
    exp: claims.exp ?? Math.floor(Date.now() / 1000) + ttlSeconds,
  };
  const body = `${PREFIX}${Buffer.from(JSON.stringify(full)).toString('base64url')}`;
  return `${body}.${sign(secret, body).toString('base64url')}`;
}

function validClaims(value: unknown): value is UploadTicketClaims {
  const c = value as Partial<Record<keyof UploadTicketClaims, unknown>> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    !Array.isArray(c) &&
    typeof c.exp === 'number' &&
    Number.isFinite(c.exp) &&
    (c.sub === undefined ||
      (typeof c.sub === 'string' && c.sub.length > 0 && c.sub.length <= 256)) &&
    (c.maxSize === undefined ||
      (typeof c.maxSize === 'number' && Number.isSafeInteger(c.maxSize) && c.maxSize >= 0)) &&
    (c.name === undefined || typeof c.name === 'string') &&
    (c.type === undefined || typeof c.type === 'string')
  );
}

/** The claims of a ticket signed with one of `secrets` and not expired at `now` (ms), else undefined. */
export function verifyUploadTicket(
  ticket: string,
  secrets: readonly string[],
  now = Date.now(),
): UploadTicketClaims | undefined {
  if (!ticket.startsWith(PREFIX) || ticket.length > 4096) return undefined;
  const dot = ticket.lastIndexOf('.');
  if (dot <= PREFIX.length) return undefined;
  const body = ticket.slice(0, dot);
  const given = Buffer.from(ticket.slice(dot + 1), 'base64url');
  let signed = false;
  for (const secret of secrets) {
    const expected = sign(secret, body);
    signed = sameBytes(given, expected) || signed;
  }
  if (!signed) return undefined;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(body.slice(PREFIX.length), 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (!validClaims(claims) || claims.exp * 1000 <= now) return undefined;
  return claims;
}
