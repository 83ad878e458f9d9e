/**
 * The tus 1.0.0 request headers, parsed strictly (https://tus.io/protocols/resumable-upload):
 * every function takes the raw header value and returns the parsed value, or `undefined` when the
 * header is absent, or a `HeaderError` when it is present but wrong. Nothing here does I/O.
 */
import { createHash, getHashes } from 'node:crypto';
import { Limits } from '../../protocol/index.js';

export const TUS_VERSION = '1.0.0';

/** The extensions this server implements, as OPTIONS lists them. */
export const TUS_EXTENSIONS = [
  'creation',
  'creation-with-upload',
  'creation-defer-length',
  'expiration',
  'checksum',
  'termination',
] as const;

/** Content type of a PATCH body (and of a creation-with-upload body). */
export const OFFSET_OCTET_STREAM = 'application/offset+octet-stream';

/** A present but unusable header: the endpoint answers TUS_BAD_HEADER naming it. */
export class HeaderError extends Error {
  override readonly name = 'HeaderError';
}

type Header = string | string[] | undefined;

/** One header value: a repeated header is refused rather than guessed at. */
function single(name: string, value: Header): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new HeaderError(`${name} is repeated`);
  return value.trim();
}

/** Upload-Offset, Upload-Length, Content-Length: decimal digits only, at most 2^53-1. */
export function parseSize(name: string, value: Header): number | undefined {
  const text = single(name, value);
  if (text === undefined) return undefined;
  if (!/^\d{1,16}$/.test(text))
    throw new HeaderError(`${name} must be a non-negative decimal integer`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new HeaderError(`${name} is above 2^53-1`);
  return n;
}

/** Upload-Defer-Length: only `1` is defined. */
export function parseDeferLength(value: Header): boolean {
  const text = single('Upload-Defer-Length', value);
  if (text === undefined) return false;
  if (text !== '1') throw new HeaderError('Upload-Defer-Length must be 1');
  return true;
}

const METADATA_KEY = /^[\x21-\x2b\x2d-\x7e]+$/; // printable ASCII without space and comma
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Upload-Metadata: `key base64value,key2,...`. Values must be UTF-8 (the store keeps strings), and
 * the bigup.1 limits on metadata apply (entries, key and value bytes, total bytes), so a tus upload
 * holds no more metadata than a WebSocket one. Returns a null-prototype record.
 */
export function parseMetadata(value: Header): Record<string, string> {
  const metadata = Object.create(null) as Record<string, string>;
  const text = single('Upload-Metadata', value);
  if (text === undefined || text === '') return metadata;
  if (text.length > 4 * Limits.MAX_METADATA_TOTAL_BYTES)
    throw new HeaderError('Upload-Metadata is too long');
  const pairs = text.split(',');
  if (pairs.length > Limits.MAX_METADATA_ENTRIES)
    throw new HeaderError(`Upload-Metadata has more than ${Limits.MAX_METADATA_ENTRIES} entries`);
  let total = 0;
  for (const pair of pairs) {
    const parts = pair.trim().split(' ');
    const key = parts[0] ?? '';
    if (parts.length > 2 || !METADATA_KEY.test(key) || key.length > Limits.MAX_METADATA_KEY_BYTES) {
      throw new HeaderError(
        'Upload-Metadata: each entry is a key (printable ASCII, no space or comma) and an optional base64 value',
      );
    }
    if (Object.prototype.hasOwnProperty.call(metadata, key))
      throw new HeaderError('Upload-Metadata: duplicate key');
    const encoded = parts[1] ?? '';
    if (!BASE64.test(encoded)) throw new HeaderError('Upload-Metadata: a value is not base64');
    let decoded: string;
    try {
      decoded = utf8.decode(Buffer.from(encoded, 'base64'));
    } catch {
      throw new HeaderError('Upload-Metadata: a value is not UTF-8');
    }
    const bytes = Buffer.byteLength(decoded);
    if (bytes > Limits.MAX_METADATA_VALUE_BYTES)
      throw new HeaderError(
        `Upload-Metadata: a value exceeds ${Limits.MAX_METADATA_VALUE_BYTES} bytes`,
      );
    total += key.length + bytes;
    if (total > Limits.MAX_METADATA_TOTAL_BYTES)
      throw new HeaderError(`Upload-Metadata exceeds ${Limits.MAX_METADATA_TOTAL_BYTES} bytes`);
    metadata[key] = decoded;
  }
  return metadata;
}

/** The Upload-Metadata header for stored metadata (HEAD answers it). */
export function formatMetadata(metadata: Readonly<Record<string, string>>): string {
  return Object.entries(metadata)
    .map(([key, value]) =>
      value === '' ? key : `${key} ${Buffer.from(value, 'utf8').toString('base64')}`,
    )
    .join(',');
}

/** Checksum algorithms of the checksum extension, by tus name (Node's names are the same). */
export const CHECKSUM_ALGORITHMS: readonly string[] = ['sha1', 'sha256', 'sha512', 'md5'].filter(
  (name) => getHashes().includes(name),
);

export interface ChecksumHeader {
  readonly algorithm: string;
  readonly digest: Buffer;
}

/** Upload-Checksum: `<algorithm> <base64 digest>`; an unknown algorithm is `'unsupported'`. */
export function parseChecksum(value: Header): ChecksumHeader | 'unsupported' | undefined {
  const text = single('Upload-Checksum', value);
  if (text === undefined) return undefined;
  const match = /^([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})$/.exec(text);
  if (!match || !BASE64.test(match[2]))
    throw new HeaderError('Upload-Checksum must be "<algorithm> <base64 digest>"');
  const algorithm = match[1];
  if (!CHECKSUM_ALGORITHMS.includes(algorithm)) return 'unsupported';
  const digest = Buffer.from(match[2], 'base64');
  if (digest.byteLength !== createHash(algorithm).digest().byteLength)
    throw new HeaderError(`Upload-Checksum: not a ${algorithm} digest`);
  return { algorithm, digest };
}

/** Tus-Resumable must be present and 1.0.0 on every request but OPTIONS. */
export function speaksTus(value: Header): boolean {
  return typeof value === 'string' && value.trim() === TUS_VERSION;
}

/**
 * Uppy sends every meta field of a file as `String(value)`, so a file that was not picked from a
 * folder arrives with `relativePath` "null" (or "undefined"). The store places a completed file at
 * its relative path (store/names.ts), which would name that file "null": such a value, like an
 * empty one, means "no relative path" and is dropped. A real relative path names a folder too.
 */
export function withoutEmptyRelativePath(metadata: Record<string, string>): Record<string, string> {
  const path = metadata.relativePath;
  if (path === undefined || (path !== '' && path !== 'null' && path !== 'undefined'))
    return metadata;
  const kept = Object.create(null) as Record<string, string>;
  for (const [key, value] of Object.entries(metadata))
    if (key !== 'relativePath') kept[key] = value;
  return kept;
}

/** The name and type a tus client gives in its metadata (tus-js-client and Uppy use these keys). */
export function nameAndType(metadata: Readonly<Record<string, string>>): {
  name: string;
  contentType: string;
} {
  return {
    name: metadata.filename ?? metadata.name ?? '',
    contentType: metadata.filetype ?? metadata.type ?? 'application/octet-stream',
  };
}
