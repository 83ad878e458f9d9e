/**
 * The shared registry in Redis (ioredis), so that every node sees every upload. Keys, with
 * `keyPrefix` (default "bigup:") in front and the upload id in braces so that one upload's keys
 * share a Redis Cluster slot:
 *
 *   {<id>}:meta    hash: info (UploadInfo JSON: sha256 of the secret, never the secret),
 *                  location (object key + multipart id JSON), completion (JSON, once completed),
 *                  updatedAt (epoch ms)
 *   {<id>}:parts   hash: chunk index -> "<xxHash64 hex> <ETag>"; dropped at completion
 *   {<id>}:fence   the fencing counter: INCR at every acquire, never reused while the upload exists
 *   {<id>}:lease   "<token>:<holder>", expiring after `leaseTtl` unless renewed
 *   ids            sorted set of every upload id (score 0: ordered by id, for paged listing)
 *   content:<size>:<chunk>           set of the digests of content delivered at that size and chunk
 *                                    size (instant upload hints, SPEC.md 16.10)
 *   content:<size>:<chunk>@<client>  the same, of content that client delivered
 *   content:<size>:<chunk>:<digest>  hash: client -> {"id","location"} JSON of its latest delivery
 *
 * Every fenced write is one Lua script that checks, in Redis, that the fence still equals the
 * caller's token and the lease is still the caller's before it writes: there is no window between
 * check and write for another node to take over in. A fence that moved on means another node took
 * the upload (TAKEN_OVER, fatal for that connection); a lease that ran out with the fence unchanged
 * means this node was cut off or paused (STORAGE_ERROR, retryable: the client resumes).
 *
 * Losing Redis: commands are not queued while disconnected (`enableOfflineQueue: false`) and time
 * out after `commandTimeout`, so a record write fails at once and the chunk is not acked; the node
 * logs it and the client gets STORAGE_ERROR and resumes (on this node once Redis is back, or on
 * another). Acked means recorded in Redis: run Redis with `appendonly yes` and `appendfsync always`
 * (or replicas and failover, docs/scaling.md) for acks to survive a Redis crash.
 */
import { Redis } from 'ioredis';
import { Errors, ProtocolError } from '../../protocol/index.js';
import type { QuotaLimits } from '../quota.js';
import {
  CONTENT_LOOKUP_LIMIT,
  type CompletionInfo,
  type ContentKey,
  type ContentRef,
  type ListPage,
  type UploadInfo,
  type UploadSummary,
} from '../store/types.js';
import { leaseExpired, leaseTakenOver } from './lease-errors.js';
import { DEFAULT_LEASE_TTL } from './memory-registry.js';
import {
  CONTENT_REFS_PER_DIGEST,
  type Lease,
  type ObjectLocation,
  type PartRecord,
  type RegistryEntry,
  type RegistryHealth,
  type SharedRegistry,
} from './types.js';

export interface RedisRegistryOptions {
  /** redis://[:password@]HOST:PORT[/DB]. Ignored when `client` is given. */
  readonly url?: string;
  /** A ready ioredis client (Sentinel, TLS, cluster-aware setups): `new Redis(...)` from ioredis. */
  readonly client?: IoRedisClient;
  /** Prefix of every key. Default "bigup:". */
  readonly keyPrefix?: string;
  /** Lease time (ms). Default 30 s. */
  readonly leaseTtl?: number;
  /** A command that gets no answer within this time fails (ms). Default 5000. */
  readonly commandTimeout?: number;
  /**
   * Redis memory (its `used_memory`, bytes) past which no new upload is recorded: OPEN is refused
   * with INSUFFICIENT_STORAGE while the records of uploads already open are still written, so acks
   * go on. Completed records stay for the TTL and no other bound counts them. Default: 90% of
   * Redis's `maxmemory`; when it has none, half its `total_system_memory`, or
   * REDIS_DEFAULTS.maxMemory (1 GiB) when Redis does not report that either.
   */
  readonly maxMemory?: number;
  /**
   * How long a content hint for instant upload (addContent) is kept after its last write (ms).
   * Default REDIS_DEFAULTS.contentTtl (7 days); each size's set of digests also holds at most
   * CONTENT_DIGESTS_PER_SIZE, so the index's memory is bounded by what completes in this time.
   */
  readonly contentTtl?: number;
  /** Told when the connection drops or comes back. */
  readonly logger?: { warn(message: string): void; info(message: string): void };
}

/**
 * An ioredis `Redis` instance, typed by the two members that tell it apart instead of by ioredis's
 * class: the package's public typings must not pull in ioredis's, which do not compile under
 * `strict` with `skipLibCheck: false` (they import an untyped package).
 */
export interface IoRedisClient {
  readonly status: string;
  eval: (...args: never[]) => unknown;
}

export const REDIS_DEFAULTS = {
  keyPrefix: 'bigup:',
  commandTimeout: 5000,
  /** When Redis has no maxmemory: this share of `total_system_memory`, or 1 GiB when unknown. */
  maxMemory: 2 ** 30,
  systemMemoryShare: 0.5,
  contentTtl: 7 * 24 * 3_600_000,
  /** Share of Redis's own `maxmemory` new uploads may fill. */
  maxMemoryShare: 0.9,
  /** How long one reading of Redis's memory is used (ms). */
  memoryReadingAge: 1000,
} as const;

/** Digests one (file size, chunk size) set of the content index keeps; past it, one goes at random. */
export const CONTENT_DIGESTS_PER_SIZE = 1024;

/** Fails with -1 (fence moved: taken over) or -2 (lease gone or not ours) before writing anything. */
const CHECK = `
local fence = tonumber(redis.call('GET', KEYS[1]))
if fence ~= tonumber(ARGV[1]) then return -1 end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -2 end
`;

/** KEYS: meta, ids. ARGV: id, info JSON, location JSON, now. All or nothing. */
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'info', ARGV[2], 'location', ARGV[3], 'updatedAt', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
`;

/** KEYS: meta, fence, lease. ARGV: holder, ttl. */
const ACQUIRE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -3 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
`;

/** KEYS: fence, lease. ARGV: token, lease value, ttl. */
const RENEW = `${CHECK}
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`;

/** KEYS: meta, parts, fence, lease. Nothing is deleted while the lease is held. */
const DELETE_UNLESS_LEASED = `
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
`;

/** KEYS: lease. ARGV: lease value. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`;

/** KEYS: fence, lease, meta, parts. ARGV: token, lease value, now, then index/value pairs. */
const ADD_PARTS = `${CHECK}
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[3], 'updatedAt', ARGV[3])
return 1
`;

/** KEYS: fence, lease, meta, parts. ARGV: token, lease value, now, completion JSON. */
const COMPLETE = `${CHECK}
redis.call('HSET', KEYS[3], 'completion', ARGV[4], 'updatedAt', ARGV[3])
redis.call('DEL', KEYS[4], KEYS[2])
return 1
`;

/**
 * KEYS: totals hash, client hash, held key. ARGV: client, bytes, per-client uploads, uploads,
 * per-client bytes, bytes. Returns {0} or {bound, value}: 1 per-client uploads, 2 uploads,
 * 3 per-client bytes, 4 bytes (quota.ts's order).
 */
const RESERVE = `
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 0} end
local bytes = tonumber(ARGV[2])
local mineCount = tonumber(redis.call('HGET', KEYS[2], 'count') or '0')
local mineBytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local allCount = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local allBytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if mineCount + 1 > tonumber(ARGV[3]) then return {1, mineCount} end
if allCount + 1 > tonumber(ARGV[4]) then return {2, allCount} end
if mineBytes + bytes > tonumber(ARGV[5]) then return {3, mineBytes + bytes} end
if allBytes + bytes > tonumber(ARGV[6]) then return {4, allBytes + bytes} end
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('HINCRBY', KEYS[1], 'bytes', bytes)
redis.call('HINCRBY', KEYS[2], 'count', 1)
redis.call('HINCRBY', KEYS[2], 'bytes', bytes)
redis.call('SET', KEYS[3], ARGV[2] .. ' ' .. ARGV[1])
return {0, 0}
`;

/** KEYS: totals hash, held key. ARGV: client hash prefix. Idempotent. */
const UNRESERVE = `
local held = redis.call('GET', KEYS[2])
if not held then return 0 end
local space = string.find(held, ' ')
local bytes = tonumber(string.sub(held, 1, space - 1))
local client = string.sub(held, space + 1)
redis.call('HINCRBY', KEYS[1], 'count', -1)
redis.call('HINCRBY', KEYS[1], 'bytes', -bytes)
local mine = ARGV[1] .. client
redis.call('HINCRBY', mine, 'count', -1)
redis.call('HINCRBY', mine, 'bytes', -bytes)
if tonumber(redis.call('HGET', mine, 'count')) <= 0 then redis.call('DEL', mine) end
redis.call('DEL', KEYS[2])
return 1
`;

function hashHex(hash: bigint): string {
  return hash.toString(16).padStart(16, '0');
}

/** One content hint as stored (addContent: field client, value JSON), or undefined. */
function contentRefOf(client: string, json: string): ContentRef | undefined {
  try {
    const value = JSON.parse(json) as { id?: unknown; location?: unknown };
    if (typeof value.id !== 'string' || typeof value.location !== 'string') return undefined;
    return { id: value.id, location: value.location, ...(client !== '' ? { client } : {}) };
  } catch {
    return undefined;
  }
}

/** HRANDFIELD ... WITHVALUES: field/value pairs, nested ([[f, v], ...], as Redis 7 answers) or flat. */
function refsOfPairs(reply: unknown): ContentRef[] {
  if (!Array.isArray(reply)) return [];
  const flat = (reply as unknown[]).flat();
  const refs: ContentRef[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const ref = contentRefOf(String(flat[i]), String(flat[i + 1]));
    if (ref) refs.push(ref);
  }
  return refs;
}

/** A Redis fault as the client sees it: retryable, and said plainly. */
function unreachable(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  return new ProtocolError(
    Errors.STORAGE_ERROR,
    `the upload registry is unreachable (${error instanceof Error ? error.message : String(error)}): this node stops acking; resume to continue`,
  );
}

export class RedisRegistry implements SharedRegistry {
  readonly kind = 'redis';
  readonly leaseTtl: number;
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly ownsClient: boolean;
  private readonly maxMemory: number | undefined;
  private readonly contentTtl: number;
  private readonly log: RedisRegistryOptions['logger'];
  private memoryReading: Promise<{ used: number; limit: number }> | undefined;
  private memoryReadAt = 0;
  private memoryUnreadable = false;
  private connected = false;

  constructor(options: RedisRegistryOptions) {
    this.leaseTtl = options.leaseTtl ?? DEFAULT_LEASE_TTL;
    this.prefix = options.keyPrefix ?? REDIS_DEFAULTS.keyPrefix;
    this.ownsClient = options.client === undefined;
    if (
      options.maxMemory !== undefined &&
      (!Number.isSafeInteger(options.maxMemory) || options.maxMemory < 1)
    )
      throw new Error('RedisRegistry option maxMemory must be a positive integer (bytes)');
    this.maxMemory = options.maxMemory;
    this.contentTtl = options.contentTtl ?? REDIS_DEFAULTS.contentTtl;
    if (!Number.isSafeInteger(this.contentTtl) || this.contentTtl < 1)
      throw new Error('RedisRegistry option contentTtl must be a positive integer (ms)');
    this.log = options.logger;
    const commandTimeout = options.commandTimeout ?? REDIS_DEFAULTS.commandTimeout;
    if (options.client) {
      this.redis = options.client as Redis;
    } else {
      if (options.url === undefined) throw new Error('RedisRegistry needs `url` or `client`');
      this.redis = new Redis(options.url, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout,
        connectTimeout: commandTimeout,
        // Reconnect forever, at most every 2 s: a node without Redis refuses work until it is back.
        retryStrategy: (attempt) => Math.min(2000, attempt * 100),
      });
    }
    const log = options.logger;
    this.redis.on('ready', () => {
      if (!this.connected) log?.info('registry: connected to Redis');
      this.connected = true;
    });
    this.redis.on('error', () => undefined);
    this.redis.on('close', () => {
      if (this.connected)
        log?.warn('registry: lost the connection to Redis; no chunk is acked until it is back');
      this.connected = false;
    });
  }

  private key(id: string, part: 'meta' | 'parts' | 'fence' | 'lease'): string {
    return `${this.prefix}{${id}}:${part}`;
  }

  private leaseValue(lease: Lease): string {
    return `${lease.token}:${lease.holder}`;
  }

  async init(): Promise<void> {
    if (this.redis.status === 'wait') await this.redis.connect();
    await this.redis.ping();
    const reading = await this.memory().catch((error: unknown) => error as Error);
    if (reading instanceof Error) {
      // A Redis whose ACL refuses INFO cannot be measured: the bound is off (other failures, a
      // timeout say, are tried again at the next OPEN).
      if (/NOPERM|unknown command/i.test(reading.message)) {
        this.memoryUnreadable = true;
        this.log?.warn(
          `registry: Redis refused INFO memory (${reading.message}); --registry-max-memory is not enforced`,
        );
      } else
        this.log?.warn(
          `registry: could not read Redis's memory (${reading.message}); each OPEN tries again`,
        );
    } else if (reading.used >= reading.limit)
      this.log?.warn(
        `registry: Redis already uses ${reading.used} bytes, past the ${reading.limit} new uploads may fill: every OPEN is refused until records expire or --registry-max-memory is raised`,
      );
    else
      this.log?.info(
        `registry: new uploads are refused past ${reading.limit} bytes of Redis memory (all of Redis's used_memory; ${reading.used} now)`,
      );
  }

  async create(info: UploadInfo, location: ObjectLocation): Promise<void> {
    const created = await this.redis.eval(
      CREATE,
      2,
      this.key(info.id, 'meta'),
      `${this.prefix}ids`,
      info.id,
      JSON.stringify(info),
      JSON.stringify(location),
      Date.now(),
    );
    if (created !== 1) throw new Error(`upload ${info.id} already exists`);
  }

  async getInfo(id: string): Promise<UploadInfo | undefined> {
    // One field of the meta hash: never the parts hash (up to 10,000 records).
    const [info, location] = await this.redis.hmget(this.key(id, 'meta'), 'info', 'location');
    if (info === null || info === undefined || location === null || location === undefined)
      return undefined;
    return JSON.parse(info) as UploadInfo;
  }

  /** Redis's memory in use and the bound for new uploads, read at most once a second. */
  private memory(): Promise<{ used: number; limit: number }> {
    const now = Date.now();
    if (this.memoryReading && now - this.memoryReadAt < REDIS_DEFAULTS.memoryReadingAge)
      return this.memoryReading;
    this.memoryReadAt = now;
    const reading = (async () => {
      const text = await this.redis.info('memory');
      const field = (name: string): number => {
        const match = new RegExp(`^${name}:(\\d+)`, 'm').exec(text);
        return match ? Number(match[1]) : 0;
      };
      const own = field('maxmemory');
      const system = field('total_system_memory');
      const limit =
        this.maxMemory ??
        (own > 0
          ? Math.floor(own * REDIS_DEFAULTS.maxMemoryShare)
          : system > 0
            ? Math.floor(system * REDIS_DEFAULTS.systemMemoryShare)
            : REDIS_DEFAULTS.maxMemory);
      return { used: field('used_memory'), limit };
    })();
    // A failed reading is not kept: the next OPEN reads again.
    reading.catch(() => {
      if (this.memoryReading === reading) this.memoryReading = undefined;
    });
    this.memoryReading = reading;
    return reading;
  }

  async admitUpload(): Promise<void> {
    if (this.memoryUnreadable) return;
    const { used, limit } = await this.memory();
    if (used >= limit)
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `the upload registry (Redis) uses ${used} bytes of the ${limit} new uploads may fill; retry once completed records and content hints expire`,
      );
  }

  async deleteUnlessLeased(id: string): Promise<boolean> {
    // The lease key expires with the lease (PEXPIRE on acquire and renew) and goes on release.
    const deleted = await this.redis.eval(
      DELETE_UNLESS_LEASED,
      4,
      this.key(id, 'meta'),
      this.key(id, 'parts'),
      this.key(id, 'fence'),
      this.key(id, 'lease'),
    );
    if (deleted !== 1) return false;
    await this.redis.zrem(`${this.prefix}ids`, id);
    return true;
  }

  async get(id: string): Promise<RegistryEntry | undefined> {
    const [meta, parts] = await Promise.all([
      this.redis.hgetall(this.key(id, 'meta')),
      this.redis.hgetall(this.key(id, 'parts')),
    ]);
    if (meta.info === undefined || meta.location === undefined) return undefined;
    const records: PartRecord[] = Object.entries(parts)
      .map(([index, value]) => {
        const space = value.indexOf(' ');
        return {
          index: Number(index),
          hash: BigInt(`0x${value.slice(0, space)}`),
          etag: value.slice(space + 1),
        };
      })
      .sort((a, b) => a.index - b.index);
    return {
      info: JSON.parse(meta.info) as UploadInfo,
      location: JSON.parse(meta.location) as ObjectLocation,
      parts: meta.completion === undefined ? records : [],
      ...(meta.completion !== undefined
        ? { completion: JSON.parse(meta.completion) as CompletionInfo }
        : {}),
      updatedAt: Number(meta.updatedAt ?? 0),
    };
  }

  /** Run a fenced script; maps its refusal codes to the lease errors. */
  private async fencedScript(
    script: string,
    keys: string[],
    args: Array<string | number>,
  ): Promise<void> {
    let result: unknown;
    try {
      result = await this.redis.eval(script, keys.length, ...keys, ...args);
    } catch (error) {
      throw unreachable(error);
    }
    if (result === -1) throw leaseTakenOver();
    if (result === -2) throw leaseExpired();
  }

  async acquire(id: string, holder: string): Promise<Lease> {
    let token: unknown;
    try {
      token = await this.redis.eval(
        ACQUIRE,
        3,
        this.key(id, 'meta'),
        this.key(id, 'fence'),
        this.key(id, 'lease'),
        holder,
        this.leaseTtl,
      );
    } catch (error) {
      throw unreachable(error);
    }
    if (token === -3)
      throw new ProtocolError(Errors.UPLOAD_GONE, 'the upload was deleted or expired');
    return { id, token: Number(token), holder };
  }

  renew(lease: Lease): Promise<void> {
    return this.fencedScript(
      RENEW,
      [this.key(lease.id, 'fence'), this.key(lease.id, 'lease')],
      [lease.token, this.leaseValue(lease), this.leaseTtl],
    );
  }

  async release(lease: Lease): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key(lease.id, 'lease'), this.leaseValue(lease));
  }

  addParts(lease: Lease, parts: readonly PartRecord[]): Promise<void> {
    const pairs: string[] = [];
    for (const part of parts) pairs.push(String(part.index), `${hashHex(part.hash)} ${part.etag}`);
    return this.fencedScript(
      ADD_PARTS,
      [
        this.key(lease.id, 'fence'),
        this.key(lease.id, 'lease'),
        this.key(lease.id, 'meta'),
        this.key(lease.id, 'parts'),
      ],
      [lease.token, this.leaseValue(lease), Date.now(), ...pairs],
    );
  }

  complete(lease: Lease, completion: CompletionInfo): Promise<void> {
    return this.fencedScript(
      COMPLETE,
      [
        this.key(lease.id, 'fence'),
        this.key(lease.id, 'lease'),
        this.key(lease.id, 'meta'),
        this.key(lease.id, 'parts'),
      ],
      [lease.token, this.leaseValue(lease), Date.now(), JSON.stringify(completion)],
    );
  }

  async delete(id: string): Promise<void> {
    await this.redis
      .multi()
      .del(
        this.key(id, 'meta'),
        this.key(id, 'parts'),
        this.key(id, 'fence'),
        this.key(id, 'lease'),
      )
      .zrem(`${this.prefix}ids`, id)
      .exec();
  }

  private contentKey(key: ContentKey, digest?: string): string {
    const bySize = `${this.prefix}content:${key.fileSize}:${key.chunkSize}`;
    return digest === undefined ? bySize : `${bySize}:${digest}`;
  }

  async addContent(key: ContentKey & { readonly digest: string }, ref: ContentRef): Promise<void> {
    const client = ref.client ?? '';
    const bySize = this.contentKey(key);
    const byClient = `${bySize}@${client}`;
    const byDigest = this.contentKey(key, key.digest);
    try {
      // Each key lives contentTtl after its last write, and a size's sets hold at most
      // CONTENT_DIGESTS_PER_SIZE digests: hints, bounded by what completes in that time.
      const replies = await this.redis
        .multi()
        .sadd(bySize, key.digest)
        .sadd(byClient, key.digest)
        .hset(byDigest, client, JSON.stringify({ id: ref.id, location: ref.location }))
        .pexpire(bySize, this.contentTtl)
        .pexpire(byClient, this.contentTtl)
        .pexpire(byDigest, this.contentTtl)
        .scard(bySize)
        .scard(byClient)
        .exec();
      const [bySizeCount, byClientCount] = (replies ?? []).slice(-2).map(([, n]) => Number(n));
      if (bySizeCount > CONTENT_DIGESTS_PER_SIZE) await this.redis.spop(bySize);
      if (byClientCount > CONTENT_DIGESTS_PER_SIZE) await this.redis.spop(byClient);
    } catch (error) {
      throw unreachable(error);
    }
  }

  async findContent(key: ContentKey): Promise<ContentRef[]> {
    const client = key.client;
    try {
      if (key.digest !== undefined) {
        if (client !== undefined) {
          const mine = await this.redis.hget(this.contentKey(key, key.digest), client);
          const ref = mine === null ? undefined : contentRefOf(client, mine);
          return ref ? [ref] : [];
        }
        const reply: unknown = await this.redis.call(
          'HRANDFIELD',
          this.contentKey(key, key.digest),
          CONTENT_REFS_PER_DIGEST,
          'WITHVALUES',
        );
        return refsOfPairs(reply);
      }
      if (client !== undefined) {
        // Whether this client delivered content of this size: one of its digests, its ref.
        const [digest] = await this.redis.srandmember(`${this.contentKey(key)}@${client}`, 1);
        if (digest === undefined) return [];
        const mine = await this.redis.hget(this.contentKey(key, digest), client);
        const ref = mine === null ? undefined : contentRefOf(client, mine);
        return ref ? [ref] : [];
      }
      const digests = await this.redis.srandmember(this.contentKey(key), CONTENT_LOOKUP_LIMIT);
      if (digests.length === 0) return [];
      const batch = this.redis.pipeline();
      for (const digest of digests)
        batch.call('HRANDFIELD', this.contentKey(key, digest), 1, 'WITHVALUES');
      const found: ContentRef[] = [];
      for (const [error, reply] of (await batch.exec()) ?? [])
        if (!error) found.push(...refsOfPairs(reply));
      return found.slice(0, CONTENT_LOOKUP_LIMIT);
    } catch (error) {
      throw unreachable(error);
    }
  }

  async list(page: ListPage = {}): Promise<UploadSummary[]> {
    const min = page.after === undefined ? '-' : `(${page.after}`;
    const ids =
      page.limit === undefined
        ? await this.redis.zrangebylex(`${this.prefix}ids`, min, '+')
        : await this.redis.zrangebylex(`${this.prefix}ids`, min, '+', 'LIMIT', 0, page.limit);
    const out: UploadSummary[] = [];
    for (const id of ids) {
      const [meta, parts, leased] = await Promise.all([
        this.redis.hmget(this.key(id, 'meta'), 'info', 'completion', 'updatedAt'),
        this.redis.hlen(this.key(id, 'parts')),
        this.redis.exists(this.key(id, 'lease')),
      ]);
      const [infoJson, completion, updatedAt] = meta;
      if (infoJson === null || infoJson === undefined) continue;
      const info = JSON.parse(infoJson) as UploadInfo;
      out.push({
        id,
        completed: completion !== null && completion !== undefined,
        updatedAt: Number(updatedAt ?? 0),
        fileSize: info.fileSize,
        ...(info.client !== undefined ? { client: info.client } : {}),
        empty: (completion === null || completion === undefined) && parts === 0,
        ...(leased > 0 ? { leased: true } : {}),
      });
    }
    return out;
  }

  async reserve(id: string, client: string, bytes: number, limits: QuotaLimits): Promise<void> {
    const result = await this.redis.eval(
      RESERVE,
      3,
      `${this.prefix}quota`,
      `${this.prefix}quota:client:${client}`,
      `${this.prefix}quota:held:${id}`,
      client,
      bytes,
      limits.maxUnfinishedUploadsPerClient,
      limits.maxUnfinishedUploads,
      limits.maxCommittedBytesPerClient,
      limits.maxCommittedBytes,
    );
    const [bound, value] = Array.isArray(result) ? (result as number[]) : [0, 0];
    if (bound === 1) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `this client already has ${value} unfinished uploads (limit ${limits.maxUnfinishedUploadsPerClient}); finish or terminate some`,
      );
    }
    if (bound === 2) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `the cluster holds ${value} unfinished uploads (limit ${limits.maxUnfinishedUploads})`,
      );
    }
    if (bound === 3) {
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `quota: this client's unfinished uploads would reserve ${value} bytes (limit ${limits.maxCommittedBytesPerClient})`,
      );
    }
    if (bound === 4) {
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `quota: unfinished uploads would reserve ${value} bytes (limit ${limits.maxCommittedBytes})`,
      );
    }
  }

  async unreserve(id: string): Promise<void> {
    await this.redis.eval(
      UNRESERVE,
      2,
      `${this.prefix}quota`,
      `${this.prefix}quota:held:${id}`,
      `${this.prefix}quota:client:`,
    );
  }

  async health(): Promise<RegistryHealth> {
    try {
      await this.redis.ping();
      return { ok: true, kind: this.kind };
    } catch (error) {
      return {
        ok: false,
        kind: this.kind,
        detail: error instanceof Error ? error.message : String(error),
      };
    }
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.redis.disconnect();
  }
}
