/**
 * What unfinished uploads hold, counted per client and in all: reserved bytes (an OPEN commits
 * the whole file size) and the number of uploads. OPEN checks these before the store creates
 * anything; completion and removal give the reservation back. Rebuilt from the store at start, so
 * a restart does not reset anyone's quota.
 *
 * A client is the subject an `authorizeUpload` hook named, else the connection's address.
 */
import { Errors, ProtocolError } from '../protocol/index.js';

export interface QuotaLimits {
  readonly maxCommittedBytes: number;
  readonly maxCommittedBytesPerClient: number;
  readonly maxUnfinishedUploads: number;
  readonly maxUnfinishedUploadsPerClient: number;
}

interface Holding {
  bytes: number;
  count: number;
}

export class ReservationLedger {
  private readonly byUpload = new Map<string, { client: string; bytes: number }>();
  private readonly byClient = new Map<string, Holding>();
  private readonly total: Holding = { bytes: 0, count: 0 };

  constructor(private readonly limits: QuotaLimits) {}

  /** Record an existing unfinished upload (at start, from the store); never refused. */
  restore(id: string, client: string, bytes: number): void {
    if (!this.byUpload.has(id)) this.add(id, client, bytes);
  }

  /** Reserve for a new upload, or throw the ProtocolError naming the bound it would cross. */
  reserve(id: string, client: string, bytes: number): void {
    // Counted twice, it would be released once: a caller's race, refused rather than leaked.
    if (this.byUpload.has(id))
      throw new ProtocolError(Errors.TOO_MANY_UPLOADS, `upload ${id} is already being created`);
    const mine = this.byClient.get(client) ?? { bytes: 0, count: 0 };
    const {
      maxCommittedBytes,
      maxCommittedBytesPerClient,
      maxUnfinishedUploads,
      maxUnfinishedUploadsPerClient,
    } = this.limits;
    if (mine.count + 1 > maxUnfinishedUploadsPerClient) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `this client already has ${mine.count} unfinished uploads (limit ${maxUnfinishedUploadsPerClient}); finish or terminate some`,
      );
    }
    if (this.total.count + 1 > maxUnfinishedUploads) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `the server holds ${this.total.count} unfinished uploads (limit ${maxUnfinishedUploads})`,
      );
    }
    if (mine.bytes + bytes > maxCommittedBytesPerClient) {
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `quota: this client's unfinished uploads would reserve ${mine.bytes + bytes} bytes (limit ${maxCommittedBytesPerClient})`,
      );
    }
    if (this.total.bytes + bytes > maxCommittedBytes) {
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `quota: unfinished uploads would reserve ${this.total.bytes + bytes} bytes (limit ${maxCommittedBytes})`,
      );
    }
    this.add(id, client, bytes);
  }

  /** The upload completed or was removed: its reservation is free again. Idempotent. */
  release(id: string): void {
    const entry = this.byUpload.get(id);
    if (!entry) return;
    this.byUpload.delete(id);
    const mine = this.byClient.get(entry.client);
    if (mine) {
      mine.bytes -= entry.bytes;
      mine.count--;
      if (mine.count === 0) this.byClient.delete(entry.client);
    }
    this.total.bytes -= entry.bytes;
    this.total.count--;
  }

  /** Reserved bytes and unfinished uploads, in all or for one client. */
  held(client?: string): { bytes: number; count: number } {
    const h = client === undefined ? this.total : this.byClient.get(client);
    return { bytes: h?.bytes ?? 0, count: h?.count ?? 0 };
  }

  private add(id: string, client: string, bytes: number): void {
    this.byUpload.set(id, { client, bytes });
    const mine = this.byClient.get(client) ?? { bytes: 0, count: 0 };
    mine.bytes += bytes;
    mine.count++;
    this.byClient.set(client, mine);
    this.total.bytes += bytes;
    this.total.count++;
  }
}

/**
 * OPENs per client address over time: a token bucket (`perSecond` refill, `burst` capacity).
 * Buckets of clients that went quiet are dropped, so the map stays as large as the active set.
 */
export class OpenRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  /** Take one OPEN for `client`; false when its bucket is empty. */
  take(client: string, now = Date.now()): boolean {
    if (this.perSecond <= 0) return true;
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(
      this.burst,
      bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond,
    );
    bucket.at = now;
    this.buckets.set(client, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    if (this.buckets.size > 10_000) this.prune(now);
    return true;
  }

  /** Forget buckets that have refilled completely: they carry no state. */
  private prune(now: number): void {
    for (const [client, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond >= this.burst)
        this.buckets.delete(client);
    }
  }
}
