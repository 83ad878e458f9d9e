/**
 * Plugin options: every limit is a named option with a safe default, validated when the plugin is
 * registered so a bad value fails at start, not at the first upload.
 */
import { inspect } from 'node:util';
import type { FastifyRequest } from 'fastify';
import { Limits, LimitsV2 } from '../protocol/index.js';
import type { UploadStore } from './store/types.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** What an application hook sees about an upload that just completed. */
export interface CompletedUpload {
  /** 32 lowercase hex digits. */
  readonly id: string;
  /** Sanitized client file name. */
  readonly name: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fileSize: number;
  /** Whole-file digest (xxHash64 over chunk hashes), 16 hex digits. */
  readonly digest: string;
  /** Where the file is (absolute path for the disk store). */
  readonly location: string;
}

/**
 * What the authorization hook answers: refuse (false), accept (true), or accept on behalf of a
 * subject (a user or tenant id), whose quota then counts this upload instead of the address's.
 */
export type AuthorizeUploadResult = boolean | { readonly subject: string };

/** Input of the per-upload authorization hook (the OPEN/RESUME `token` field). */
export interface AuthorizeUploadContext {
  readonly kind: 'open' | 'resume';
  /** The OPEN/RESUME token field; empty when the client sent none. */
  readonly token: string;
  /** Upload id for RESUME. */
  readonly uploadId?: string;
  /** For OPEN: what the client asked for. */
  readonly fileSize?: number;
  readonly name?: string;
  readonly contentType?: string;
  readonly request: FastifyRequest;
}

export interface BigUploaderOptions {
  /** Data directory for the embedded disk store. Default `./data`. Ignored when `store` is given. */
  dir?: string;
  /** A custom store (object store, fault injection in tests). Default: DiskStore at `dir`. */
  store?: UploadStore;
  /** WebSocket endpoint path. Default `/upload`. */
  path?: string;
  /**
   * Path of the tus 1.0.0 endpoint (creation at this path, uploads at `<tusPath><id>`), or false
   * for none. It writes into the same store, under the same token or tickets, quotas, hooks,
   * metrics and TTL as the WebSocket endpoint; its limits are the ones above and below (a PATCH body
   * is bounded by the upload's length, `idleTimeout` and `minThroughput`; uploads by
   * `maxUploadSize`; PATCHes at once by `maxUploads`). Default `/files/`.
   */
  tusPath?: string | false;
  /**
   * How many tus PATCHes may end inside one chunk. The next PATCH that stores something of that
   * chunk reads its bytes so far back to hash the whole chunk (and on a store that keeps a partial
   * chunk apart, the object store, rewrites them whole), so tiny PATCHes would multiply the
   * server's reads and the store's traffic; this bounds them to about this many times each chunk.
   * One more such PATCH gets 400 TUS_PATCH_TOO_SMALL and keeps nothing of its partial chunk (a
   * PATCH to the chunk's end still goes). Default 64 (PATCHes of 256 KiB fill a 16 MiB chunk).
   */
  tusPartialWritesPerChunk?: number;
  /** Largest file accepted (bytes). Default 100 GiB. */
  maxUploadSize?: number;
  /** Chunk size when the client proposes 0 (bytes). Default 4 MiB (the bench's sweep, client/README.md). */
  defaultChunkSize?: number;
  /** Largest chunk size agreed; also sets ws maxPayload (this + 18). Default 16 MiB. */
  maxChunkSize?: number;
  /** Flow-control window advertised in ACCEPT (bytes). Default 32 MiB (the bench's sweep). */
  window?: number;
  /** Concurrent WebSocket connections; more are refused with HTTP 503 before the upgrade. Default 256. */
  maxConnections?: number;
  /**
   * Concurrent uploads with a live connection, counted from the moment an OPEN or RESUME is read
   * (so racing OPENs cannot overshoot); more get TOO_MANY_UPLOADS. Default 64.
   */
  maxUploads?: number;
  /**
   * Of those, how many one client address (an IPv6 address by its /64) may hold at once (OPENs
   * and RESUMEs being answered included); more get TOO_MANY_UPLOADS (tus: 503). Without it one address trickling a chunk a
   * minute into every slot kept everyone else out. Default 32: two folder uploads of 16 files in
   * flight from behind one NAT.
   */
  maxUploadsPerAddress?: number;
  /**
   * Bytes all unfinished uploads may reserve together (each OPEN reserves its whole file size);
   * past it OPEN gets INSUFFICIENT_STORAGE. Default: no number, the store's free space bounds it.
   */
  maxCommittedBytes?: number;
  /**
   * Bytes one client's unfinished uploads may reserve; a client is the subject `authorizeUpload`
   * returns, else its address. Default: `maxUploadSize` (one largest upload's worth).
   */
  maxCommittedBytesPerClient?: number;
  /** Unfinished uploads kept on the server in all (connected or not); more get TOO_MANY_UPLOADS. Default 10,000. */
  maxUnfinishedUploads?: number;
  /** Unfinished uploads one client may keep; more get TOO_MANY_UPLOADS. Default 100. */
  maxUnfinishedUploadsPerClient?: number;
  /**
   * OPENs and RESUMEs per second one client address may sustain (token bucket; a RESUME loads the
   * upload, reading its journal); more get TOO_MANY_UPLOADS. 0 = no limit. Default 100.
   */
  opensPerSecond?: number;
  /** OPENs and RESUMEs one client address may make in a burst before `opensPerSecond` applies. Default 1,000. */
  openBurst?: number;
  /**
   * Unfinished uploads that never stored a chunk are removed after this idle time instead of
   * `ttl`, so OPENs that send nothing cannot hold their reservations for a day (ms). Default 10 min.
   */
  emptyUploadTtl?: number;
  /**
   * Bytes the server may have queued to send on one connection. A client that stops reading its
   * socket while provoking answers is cut (close 1008) past this, instead of growing our memory.
   * Default 1 MiB (thousands of ACKs or ERRORs; a reading client never gets near it).
   */
  maxQueuedBytes?: number;
  /**
   * OPENs per second one client address may sustain on bigup.2 connections granted several
   * streams (token bucket, bursts of the same number); more get TOO_MANY_UPLOADS. Such a client
   * pipelines a folder and completes what it opens, at the disk's pace: `opensPerSecond` (sized
   * against floods of OPENs over many connections) would hold it to 100 files/s. This bound is
   * sized near a disk's one-sync file rate instead, so a flood still cannot outrun the disk.
   * 0 = no limit. Default 2,000.
   */
  multiplexedOpensPerSecond?: number;
  /**
   * bigup.2 (SPEC.md 16): uploads one connection may have open at once (the MULTIPLEX value the
   * server grants at most). Each open stream holds an upload slot (`maxUploads`) and its OPEN is
   * answered concurrently with the others, so this bounds the OPENs pending per connection too.
   * A stream past it is LIMIT_EXCEEDED (the client was told the number). Default 16: enough to keep
   * a disk's sync pipeline full with small files, small next to `maxUploads`.
   */
  maxStreamsPerConnection?: number;
  /**
   * bigup.2 OPEN_WITH_DATA (SPEC.md 16.11): the largest file a client may send whole in its OPEN,
   * answered by RESULT alone (no ACCEPT, DATA, ACK or journal file: one round trip per small
   * file). Such OPENs are not windowed; a connection holds at most `maxStreamsPerConnection` of
   * them, each at most 64 KiB of metadata plus this. An OPEN carrying more is LIMIT_EXCEEDED.
   * 0 grants nothing. Default and largest: 65,536 (`LimitsV2.MAX_INLINE_FILE_SIZE`).
   */
  maxInlineFileSize?: number;
  /**
   * Instant upload (SPEC.md 16.10): an OPEN with a digest completes at once from content this
   * server already holds, after the client proved it has the bytes. The scope of the lookup:
   * `'subject'` (default) finds content completed by the same authorization subject (an upload
   * ticket's `sub`, or the subject `authorizeUpload` returns); a client without one gets no
   * instant upload. `'address'` also lets clients
   * without a subject find content completed from the same address. `'global'` finds anyone's.
   * Content is named by its xxHash64 digest, which a client can forge collisions of, and the proof
   * samples ranges: a client in the same scope can plant a file (another file's digest, a few
   * bytes changed) that a later instant upload is linked to. So a scope must hold only clients
   * that trust each other: a subject is one user; an address is everyone behind one NAT or proxy
   * (an attack helper's victim got the attacker's bytes); `'global'` is for single-tenant servers.
   * `false` turns it off (PROOF_OF_POSSESSION not granted).
   */
  instantUpload?: 'subject' | 'address' | 'global' | false;
  /**
   * Byte ranges one proof of possession asks for (1..16; 64 KiB each at most). A client holding a
   * fraction p of the file passes with probability about p^ranges. Default 8.
   */
  instantUploadRanges?: number;
  /**
   * Smallest file (bytes) remembered for instant upload and ever challenged (SPEC.md 16.10).
   * Below it a proof's round trip and the client's read of the whole file cost about what sending
   * the file does, while remembering each delivered file costs the store two index entries: about
   * a sixth of the server's CPU per file in a folder of 16 KiB files (issue 16). Default 65,536
   * (`LimitsV2.MAX_INLINE_FILE_SIZE`: files that go whole in one message); 1 = every non-empty
   * file.
   */
  instantUploadMinSize?: number;
  /**
   * Non-fatal refusals (OUT_OF_RANGE, HASH_MISMATCH, CONFLICT...) one connection may collect; the
   * next one closes it with LIMIT_EXCEEDED. A working client gets a few at most. Default 64.
   */
  maxRefusedMessages?: number;
  /**
   * Close a connection with IDLE_TIMEOUT after this long without progress (ms): an OPEN, RESUME,
   * COMPLETE or TERMINATE answered, or a chunk newly stored. Messages that the server refuses, or
   * chunks it already had, do not count, so a client cannot hold a slot with junk. Default 60 s.
   */
  idleTimeout?: number;
  /**
   * Serve the HTTP binding (SPEC.md 3.6: POST/PUT/DELETE under `path`) next to the WebSocket
   * endpoint. Default true.
   */
  httpBinding?: boolean;
  /**
   * HTTP binding: a request body (a chunk, or an OPEN/RESUME/COMPLETE) must arrive whole within
   * this long (ms), or the request is refused with TOO_SLOW and its connection closed; nothing of
   * it is stored. Bounds how long a slow body holds a buffer of up to one chunk. Default 120 s
   * (a 16 MiB chunk at 1.1 Mbit/s).
   */
  httpBodyTimeout?: number;
  /**
   * HTTP binding: chunk requests one lease may have pending (being received, written or waiting
   * for their ACK); one more ends the lease with WINDOW_EXCEEDED. With the window it bounds the
   * memory one upload can hold in bodies. Default 8.
   */
  httpRequestsPerUpload?: number;
  /** WebSocket ping interval (ms); a connection that missed a pong by the next ping is dropped. Default 30 s. */
  heartbeatInterval?: number;
  /**
   * Least sustained rate of an active upload (bytes/s) in newly stored chunks (verified and
   * written, not merely received), measured per `throughputWindow`; 0 disables. Default 1 KiB/s.
   * Judged per connection, in each period that began and ended with an upload held (by upload
   * id, whatever streams it moved between); a bigup.2 connection's uploads share it (a client may
   * feed them oldest first).
   */
  minThroughput?: number;
  /** Measuring period for `minThroughput` (ms). Default 60 s. */
  throughputWindow?: number;
  /** Incomplete uploads idle this long are removed; completion records are kept this long (ms). Default 24 h. */
  ttl?: number;
  /** How often the sweeper looks for expired uploads (ms). Default min(ttl / 4, 10 min). */
  sweepInterval?: number;
  /**
   * Uploads the sweeper examines per pass (it walks the store in slices, so a pass costs at most
   * this many record reads however many uploads there are, plus a names-only listing of the
   * uploads directory on the disk store: ~0.1 s for 100k completion records). Default 1,000.
   */
  sweepBatch?: number;
  /** Background data + journal flush interval in default mode (ms). Default 5 s. */
  syncInterval?: number;
  /**
   * Default mode: also start a background flush after this many bytes were recorded, so writeback
   * overlaps the upload and completion has little left to flush. 0 = by time only. Default 8 MiB.
   */
  syncBytes?: number;
  /** fdatasync data and journal before every ACK (group commit). Default false. */
  durable?: boolean;
  /**
   * Server token(s): a holder may upload anything (the WebSocket upgrade, as Bearer or `?token=`).
   * For browsers prefer upload tickets (`ticketSecret`); for management, `adminToken`. Default none.
   */
  token?: string | readonly string[];
  /**
   * Secret(s), at least 32 characters each, that upload tickets are signed with (`mintUploadTicket`).
   * When set, the upgrade accepts a valid, unexpired ticket in place of the server token, and OPEN
   * is held to the ticket's claims (size, name, type; its subject's quota). Several secrets allow
   * rotation. Default none.
   */
  ticketSecret?: string | readonly string[];
  /**
   * Admin token(s) for the management endpoints: GET/DELETE of any `/uploads/:id` (Bearer), and
   * `/metrics` and `/healthz`. The server token does not grant these. Without an admin token, an
   * upload is managed only with its own resume secret, and `/metrics` and `/healthz` take the
   * server token. Default none.
   */
  adminToken?: string | readonly string[];
  /**
   * Allowed `Origin` values for browser connections, e.g. `https://app.example.com`. Default:
   * same origin as the Host header only. Requests without Origin (non-browser clients) pass.
   */
  origins?: readonly string[];
  /**
   * Host names (no port) this server answers for, checked against the Host header of every request
   * (the DNS-rebinding defence); `'*'` answers any. Loopback names (localhost, 127.0.0.1, ::1,
   * *.localhost) are always answered. Default: any Host when a token is set (a rebound page cannot
   * know it), loopback names only when none is. A server reached by name or LAN address without a
   * token must list those names. Wrong Host: HTTP 403 HOST_NOT_ALLOWED.
   */
  allowedHosts?: readonly string[];
  /**
   * Answer `/healthz` without the server token (for load balancers). Default false: with a token
   * set, `/healthz` needs it like every other route.
   */
  publicHealth?: boolean;
  /**
   * Count every unfinished upload's full size against the free space, so OPEN refuses what the
   * disk cannot hold even though the data file is sparse (no process is spawned; see DiskStore's
   * `preallocate`). Default true. The free space is measured at most once a second and OPENs in
   * between are counted against that figure, so other writers to the disk are seen up to a second
   * late.
   */
  preallocate?: boolean;
  /**
   * Free inodes (files and folders the filesystem can still make) below which a new upload is
   * refused with INSUFFICIENT_STORAGE, as when bytes run out: every stored file is an inode, and a
   * folder of empty files fills a disk's inodes long before its bytes. Default 10,000; 0: not
   * looked at. Filesystems that report no inode count are not looked at either.
   */
  minFreeInodes?: number;
  /** Completed files and the data directory readable by the group (0640/0750 instead of 0600/0700). Default false. */
  groupReadable?: boolean;
  /** Longest graceful shutdown before remaining connections are cut (ms). Default 5 s. */
  shutdownTimeout?: number;
  /**
   * Serve Prometheus metrics at `/metrics`. Off by default: counters describe other users' uploads.
   * It requires the admin token when one is set, else the server token when one is set (Bearer). Default false.
   */
  metrics?: boolean;
  /** Per-upload authorization of the OPEN/RESUME token field. Default: none (field ignored). */
  authorizeUpload?: (
    context: AuthorizeUploadContext,
  ) => AuthorizeUploadResult | Promise<AuthorizeUploadResult>;
  /** Called after RESULT was sent for a newly completed upload. Errors are logged, not sent. */
  onUploadComplete?: (upload: CompletedUpload) => void | Promise<void>;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly dir: string;
  readonly store: UploadStore | undefined;
  readonly path: string;
  /** Ends with '/'; false when the tus endpoint is off. */
  readonly tusPath: string | false;
  readonly tusPartialWritesPerChunk: number;
  readonly maxUploadSize: number;
  readonly defaultChunkSize: number;
  readonly maxChunkSize: number;
  readonly window: number;
  readonly maxConnections: number;
  readonly maxUploads: number;
  readonly maxUploadsPerAddress: number;
  readonly maxQueuedBytes: number;
  readonly maxCommittedBytes: number;
  readonly maxCommittedBytesPerClient: number;
  readonly maxUnfinishedUploads: number;
  readonly maxUnfinishedUploadsPerClient: number;
  readonly opensPerSecond: number;
  readonly openBurst: number;
  readonly emptyUploadTtl: number;
  readonly maxRefusedMessages: number;
  readonly maxStreamsPerConnection: number;
  readonly maxInlineFileSize: number;
  readonly multiplexedOpensPerSecond: number;
  readonly instantUpload: 'subject' | 'address' | 'global' | false;
  readonly instantUploadRanges: number;
  readonly instantUploadMinSize: number;
  readonly idleTimeout: number;
  readonly heartbeatInterval: number;
  readonly httpBinding: boolean;
  readonly httpBodyTimeout: number;
  readonly httpRequestsPerUpload: number;
  readonly minThroughput: number;
  readonly throughputWindow: number;
  readonly ttl: number;
  readonly sweepInterval: number;
  readonly sweepBatch: number;
  readonly syncInterval: number;
  readonly syncBytes: number;
  readonly durable: boolean;
  readonly tokens: readonly string[];
  readonly ticketSecrets: readonly string[];
  readonly adminTokens: readonly string[];
  readonly origins: readonly string[];
  readonly allowedHosts: readonly string[] | undefined;
  readonly publicHealth: boolean;
  readonly preallocate: boolean;
  readonly minFreeInodes: number;
  readonly groupReadable: boolean;
  readonly shutdownTimeout: number;
  readonly metrics: boolean;
  readonly authorizeUpload: BigUploaderOptions['authorizeUpload'];
  readonly onUploadComplete: BigUploaderOptions['onUploadComplete'];
}

export const DEFAULTS = {
  dir: './data',
  path: '/upload',
  tusPath: '/files/',
  tusPartialWritesPerChunk: 64,
  maxUploadSize: 100 * GiB,
  defaultChunkSize: 4 * MiB,
  maxChunkSize: 16 * MiB,
  window: 32 * MiB,
  maxConnections: 256,
  maxUploads: 64,
  maxUploadsPerAddress: 32,
  maxQueuedBytes: 1 * MiB,
  maxUnfinishedUploads: 10_000,
  maxUnfinishedUploadsPerClient: 100,
  opensPerSecond: 100,
  openBurst: 1000,
  emptyUploadTtl: 10 * 60_000,
  maxRefusedMessages: 64,
  maxStreamsPerConnection: 16,
  maxInlineFileSize: LimitsV2.MAX_INLINE_FILE_SIZE,
  multiplexedOpensPerSecond: 2000,
  instantUpload: 'subject' as 'subject' | 'address' | 'global' | false,
  instantUploadRanges: 8,
  instantUploadMinSize: LimitsV2.MAX_INLINE_FILE_SIZE,
  idleTimeout: 60_000,
  heartbeatInterval: 30_000,
  httpBinding: true,
  httpBodyTimeout: 120_000,
  httpRequestsPerUpload: 8,
  minThroughput: 1 * KiB,
  throughputWindow: 60_000,
  ttl: 24 * 3_600_000,
  syncInterval: 5_000,
  syncBytes: 8 * MiB,
  durable: false,
  preallocate: true,
  minFreeInodes: 10_000,
  shutdownTimeout: 5_000,
  metrics: false,
} as const;

export class OptionsError extends Error {
  override readonly name = 'OptionsError';
}

function integer(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new OptionsError(
      `big-uploader option ${name} must be an integer in ${min}..${max}, got ${inspect(value)}`,
    );
  }
  return value;
}

function instantScope(value: unknown): 'subject' | 'address' | 'global' | false {
  if (value === undefined) return DEFAULTS.instantUpload;
  if (value === 'subject' || value === 'address' || value === 'global' || value === false)
    return value;
  throw new OptionsError(
    `big-uploader option instantUpload must be 'subject', 'address', 'global' or false, got ${inspect(value)}`,
  );
}

function bool(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new OptionsError(`big-uploader option ${name} must be a boolean`);
  return value;
}

function strings(name: string, value: unknown): string[] {
  if (value === undefined) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw new OptionsError(
      `big-uploader option ${name} must be a non-empty string or a list of them`,
    );
  }
  return [...(list as string[])];
}

function secrets(name: string, value: unknown): string[] {
  const list = strings(name, value);
  if (list.some((s) => s.length < 32))
    throw new OptionsError(
      `big-uploader option ${name} must be at least 32 characters (use 32 random bytes, hex or base64)`,
    );
  return list;
}

function hostList(value: unknown): string[] {
  const list = strings('allowedHosts', value);
  for (const host of list) {
    if (host !== '*' && !/^[a-z0-9._:-]+$/i.test(host)) {
      throw new OptionsError(
        `big-uploader option allowedHosts: "${host}" is not a host name (no scheme, port or brackets)`,
      );
    }
  }
  return list.map((h) => h.toLowerCase());
}

function fn<T>(name: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw new OptionsError(`big-uploader option ${name} must be a function`);
  return value;
}

/** Every key of BigUploaderOptions: a misspelt option fails at registration, not silently. */
const OPTION_NAMES: ReadonlySet<string> = new Set([
  'dir',
  'store',
  'path',
  'tusPath',
  'tusPartialWritesPerChunk',
  'maxUploadSize',
  'defaultChunkSize',
  'maxChunkSize',
  'window',
  'maxConnections',
  'maxUploads',
  'maxUploadsPerAddress',
  'maxQueuedBytes',
  'maxCommittedBytes',
  'maxCommittedBytesPerClient',
  'maxUnfinishedUploads',
  'maxUnfinishedUploadsPerClient',
  'opensPerSecond',
  'openBurst',
  'emptyUploadTtl',
  'maxRefusedMessages',
  'maxStreamsPerConnection',
  'maxInlineFileSize',
  'multiplexedOpensPerSecond',
  'instantUpload',
  'instantUploadRanges',
  'instantUploadMinSize',
  'idleTimeout',
  'heartbeatInterval',
  'httpBinding',
  'httpBodyTimeout',
  'httpRequestsPerUpload',
  'minThroughput',
  'throughputWindow',
  'ttl',
  'sweepInterval',
  'sweepBatch',
  'syncInterval',
  'syncBytes',
  'durable',
  'token',
  'ticketSecret',
  'adminToken',
  'origins',
  'allowedHosts',
  'publicHealth',
  'preallocate',
  'minFreeInodes',
  'groupReadable',
  'shutdownTimeout',
  'metrics',
  'authorizeUpload',
  'onUploadComplete',
] satisfies ReadonlyArray<keyof BigUploaderOptions>);

/** `tusPath`: false, or a plain path that ends with '/' and is neither `/` nor the WebSocket path. */
function tusPathOption(value: unknown, path: string): string | false {
  const tusPath = value ?? DEFAULTS.tusPath;
  if (tusPath === false) return false;
  if (
    typeof tusPath !== 'string' ||
    !/^\/[A-Za-z0-9._~/-]*$/.test(tusPath) ||
    tusPath.includes('//')
  ) {
    throw new OptionsError(
      'big-uploader option tusPath must be false or a path starting with "/" (letters, digits, "._~-/")',
    );
  }
  const base = tusPath.endsWith('/') ? tusPath : `${tusPath}/`;
  if (base === '/' || base === `${path}/`) {
    throw new OptionsError('big-uploader option tusPath must differ from path and from "/"');
  }
  return base;
}

/** Apply defaults and check every option; throws OptionsError naming the first bad one. */
export function resolveOptions(input: BigUploaderOptions = {}): ResolvedOptions {
  if (typeof input !== 'object' || input === null)
    throw new OptionsError('big-uploader options must be an object');
  for (const key of Object.keys(input)) {
    if (!OPTION_NAMES.has(key))
      throw new OptionsError(`big-uploader: unknown option "${key}" (see BigUploaderOptions)`);
  }
  const maxChunkSize = integer(
    'maxChunkSize',
    input.maxChunkSize,
    DEFAULTS.maxChunkSize,
    Limits.MIN_CHUNK_SIZE,
    Limits.MAX_CHUNK_SIZE,
  );
  const defaultChunkSize = integer(
    'defaultChunkSize',
    input.defaultChunkSize,
    Math.min(DEFAULTS.defaultChunkSize, maxChunkSize),
    Limits.MIN_CHUNK_SIZE,
    maxChunkSize,
  );
  const ttl = integer('ttl', input.ttl, DEFAULTS.ttl, 1);
  const path = input.path ?? DEFAULTS.path;
  if (typeof path !== 'string' || !path.startsWith('/'))
    throw new OptionsError('big-uploader option path must start with "/"');
  const tusBase = tusPathOption(input.tusPath, path);
  const dir = input.dir ?? DEFAULTS.dir;
  if (typeof dir !== 'string' || dir.length === 0)
    throw new OptionsError('big-uploader option dir must be a non-empty string');
  const origins = strings('origins', input.origins);
  for (const origin of origins) {
    if (!/^https?:\/\/[^/]+$/.test(origin))
      throw new OptionsError(
        `big-uploader option origins: "${origin}" is not an origin like https://host:port`,
      );
  }
  const maxUploadSize = integer('maxUploadSize', input.maxUploadSize, DEFAULTS.maxUploadSize, 0);
  return {
    dir,
    store: input.store,
    path,
    tusPath: tusBase,
    tusPartialWritesPerChunk: integer(
      'tusPartialWritesPerChunk',
      input.tusPartialWritesPerChunk,
      DEFAULTS.tusPartialWritesPerChunk,
      1,
    ),
    maxUploadSize,
    maxCommittedBytes: integer(
      'maxCommittedBytes',
      input.maxCommittedBytes,
      Number.MAX_SAFE_INTEGER,
      0,
    ),
    maxCommittedBytesPerClient: integer(
      'maxCommittedBytesPerClient',
      input.maxCommittedBytesPerClient,
      maxUploadSize,
      0,
    ),
    maxUnfinishedUploads: integer(
      'maxUnfinishedUploads',
      input.maxUnfinishedUploads,
      DEFAULTS.maxUnfinishedUploads,
      1,
    ),
    maxUnfinishedUploadsPerClient: integer(
      'maxUnfinishedUploadsPerClient',
      input.maxUnfinishedUploadsPerClient,
      DEFAULTS.maxUnfinishedUploadsPerClient,
      1,
    ),
    opensPerSecond: integer('opensPerSecond', input.opensPerSecond, DEFAULTS.opensPerSecond, 0),
    openBurst: integer('openBurst', input.openBurst, DEFAULTS.openBurst, 1),
    emptyUploadTtl: integer(
      'emptyUploadTtl',
      input.emptyUploadTtl,
      Math.min(DEFAULTS.emptyUploadTtl, ttl),
      1,
    ),
    defaultChunkSize,
    maxChunkSize,
    window: integer('window', input.window, DEFAULTS.window, 1, 0xffff_ffff),
    maxConnections: integer('maxConnections', input.maxConnections, DEFAULTS.maxConnections, 1),
    maxUploads: integer('maxUploads', input.maxUploads, DEFAULTS.maxUploads, 1),
    maxUploadsPerAddress: integer(
      'maxUploadsPerAddress',
      input.maxUploadsPerAddress,
      DEFAULTS.maxUploadsPerAddress,
      1,
    ),
    maxQueuedBytes: integer(
      'maxQueuedBytes',
      input.maxQueuedBytes,
      DEFAULTS.maxQueuedBytes,
      64 * KiB,
    ),
    maxRefusedMessages: integer(
      'maxRefusedMessages',
      input.maxRefusedMessages,
      DEFAULTS.maxRefusedMessages,
      1,
    ),
    instantUpload: instantScope(input.instantUpload),
    instantUploadRanges: integer(
      'instantUploadRanges',
      input.instantUploadRanges,
      DEFAULTS.instantUploadRanges,
      1,
      16,
    ),
    instantUploadMinSize: integer(
      'instantUploadMinSize',
      input.instantUploadMinSize,
      DEFAULTS.instantUploadMinSize,
      1,
    ),
    maxStreamsPerConnection: integer(
      'maxStreamsPerConnection',
      input.maxStreamsPerConnection,
      DEFAULTS.maxStreamsPerConnection,
      1,
      1024,
    ),
    maxInlineFileSize: integer(
      'maxInlineFileSize',
      input.maxInlineFileSize,
      DEFAULTS.maxInlineFileSize,
      0,
      LimitsV2.MAX_INLINE_FILE_SIZE,
    ),
    multiplexedOpensPerSecond: integer(
      'multiplexedOpensPerSecond',
      input.multiplexedOpensPerSecond,
      DEFAULTS.multiplexedOpensPerSecond,
      0,
    ),
    idleTimeout: integer('idleTimeout', input.idleTimeout, DEFAULTS.idleTimeout, 10),
    heartbeatInterval: integer(
      'heartbeatInterval',
      input.heartbeatInterval,
      DEFAULTS.heartbeatInterval,
      10,
    ),
    httpBinding: bool('httpBinding', input.httpBinding, DEFAULTS.httpBinding),
    httpBodyTimeout: integer(
      'httpBodyTimeout',
      input.httpBodyTimeout,
      DEFAULTS.httpBodyTimeout,
      10,
    ),
    httpRequestsPerUpload: integer(
      'httpRequestsPerUpload',
      input.httpRequestsPerUpload,
      DEFAULTS.httpRequestsPerUpload,
      1,
      1024,
    ),
    minThroughput: integer('minThroughput', input.minThroughput, DEFAULTS.minThroughput, 0),
    throughputWindow: integer(
      'throughputWindow',
      input.throughputWindow,
      DEFAULTS.throughputWindow,
      10,
    ),
    ttl,
    sweepBatch: integer('sweepBatch', input.sweepBatch, 1000, 1),
    sweepInterval: integer(
      'sweepInterval',
      input.sweepInterval,
      Math.max(10, Math.min(Math.floor(ttl / 4), 600_000)),
      10,
    ),
    syncInterval: integer('syncInterval', input.syncInterval, DEFAULTS.syncInterval, 10),
    syncBytes: integer('syncBytes', input.syncBytes, DEFAULTS.syncBytes, 0),
    durable: bool('durable', input.durable, DEFAULTS.durable),
    tokens: strings('token', input.token),
    ticketSecrets: secrets('ticketSecret', input.ticketSecret),
    adminTokens: strings('adminToken', input.adminToken),
    origins,
    allowedHosts: input.allowedHosts === undefined ? undefined : hostList(input.allowedHosts),
    publicHealth: bool('publicHealth', input.publicHealth, false),
    preallocate: bool('preallocate', input.preallocate, DEFAULTS.preallocate),
    minFreeInodes: integer('minFreeInodes', input.minFreeInodes, DEFAULTS.minFreeInodes, 0),
    groupReadable: bool('groupReadable', input.groupReadable, false),
    shutdownTimeout: integer('shutdownTimeout', input.shutdownTimeout, DEFAULTS.shutdownTimeout, 0),
    metrics: bool('metrics', input.metrics, DEFAULTS.metrics),
    authorizeUpload: fn('authorizeUpload', input.authorizeUpload),
    onUploadComplete: fn('onUploadComplete', input.onUploadComplete),
  };
}
