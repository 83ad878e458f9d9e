/**
 * The in-process registry: one node, nothing shared, gone when the process ends (so an object
 * store with this registry survives no restart: every unfinished upload is forgotten, and its
 * multipart upload is left for the bucket's lifecycle rule, docs/scaling.md). For tests and for
 * trying the object store on one box; many nodes need RedisRegistry.
 *
 * Leases follow the same rules as in Redis (types.ts): a token per upload that only grows, a
 * lease that runs out after `leaseTtl` unless renewed, and fenced writes.
 */
import { Errors, ProtocolError } from '../../protocol/index.js';
import {
  CONTENT_LOOKUP_LIMIT,
  type CompletionInfo,
  type ContentKey,
  type ContentRef,
  type ListPage,
  type UploadInfo,
  type UploadSummary,
} from '../store/types.js';
import { ReservationLedger, type QuotaLimits } from '../quota.js';
import { leaseExpired, leaseTakenOver } from './lease-errors.js';
import {
  CONTENT_REFS_PER_DIGEST,
  type Lease,
  type ObjectLocation,
  type PartRecord,
  type RegistryEntry,
  type RegistryHealth,
  type SharedRegistry,
} from './types.js';

export interface MemoryRegistryOptions {
  /** How long a lease lasts without renewal (ms). Default 30 s. */
  readonly leaseTtl?: number;
  /** Clock, for tests. */
  readonly now?: () => number;
}

interface Holder {
  token: number;
  holder: string;
  until: number;
}

interface Entry {
  info: UploadInfo;
  location: ObjectLocation;
  parts: Map<number, PartRecord>;
  completion?: CompletionInfo;
  updatedAt: number;
  fence: number;
  holder?: Holder;
}

export const DEFAULT_LEASE_TTL = 30_000;

export class MemoryRegistry implements SharedRegistry {
  readonly kind = 'memory';
  private readonly entries = new Map<string, Entry>();
  readonly leaseTtl: number;
  private readonly now: () => number;

  constructor(options: MemoryRegistryOptions = {}) {
    this.leaseTtl = options.leaseTtl ?? DEFAULT_LEASE_TTL;
    this.now = options.now ?? Date.now;
  }

  async init(): Promise<void> {}

  async create(info: UploadInfo, location: ObjectLocation): Promise<void> {
    if (this.entries.has(info.id)) throw new Error(`upload ${info.id} already exists`);
    this.entries.set(info.id, {
      info,
      location,
      parts: new Map(),
      updatedAt: this.now(),
      fence: 0,
    });
  }

  async get(id: string): Promise<RegistryEntry | undefined> {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const parts = [...entry.parts.values()].sort((a, b) => a.index - b.index);
    return {
      info: entry.info,
      location: entry.location,
      parts,
      ...(entry.completion ? { completion: entry.completion } : {}),
      updatedAt: entry.updatedAt,
    };
  }

  async getInfo(id: string): Promise<UploadInfo | undefined> {
    return this.entries.get(id)?.info;
  }

  async deleteUnlessLeased(id: string): Promise<boolean> {
    const entry = this.entries.get(id);
    if (!entry || (entry.holder !== undefined && entry.holder.until > this.now())) return false;
    this.entries.delete(id);
    return true;
  }

  async acquire(id: string, holder: string): Promise<Lease> {
    const entry = this.entries.get(id);
    if (!entry) throw new ProtocolError(Errors.UPLOAD_GONE, 'the upload was deleted or expired');
    const token = ++entry.fence;
    entry.holder = { token, holder, until: this.now() + this.leaseTtl };
    return { id, token, holder };
  }

  /** The entry when `lease` is still the current, unexpired one; TAKEN_OVER otherwise. */
  private fenced(lease: Lease): { entry: Entry; holder: Holder } {
    const entry = this.entries.get(lease.id);
    if (!entry) throw new ProtocolError(Errors.UPLOAD_GONE, 'the upload was deleted or expired');
    if (entry.fence !== lease.token) throw leaseTakenOver();
    const holder = entry.holder;
    if (!holder || holder.token !== lease.token || holder.until < this.now()) throw leaseExpired();
    return { entry, holder };
  }

  async renew(lease: Lease): Promise<void> {
    this.fenced(lease).holder.until = this.now() + this.leaseTtl;
  }

  async release(lease: Lease): Promise<void> {
    const entry = this.entries.get(lease.id);
    if (entry?.holder?.token === lease.token) entry.holder = undefined;
  }

  async addParts(lease: Lease, parts: readonly PartRecord[]): Promise<void> {
    const { entry } = this.fenced(lease);
    for (const part of parts) entry.parts.set(part.index, part);
    entry.updatedAt = this.now();
  }

  async complete(lease: Lease, completion: CompletionInfo): Promise<void> {
    const { entry } = this.fenced(lease);
    entry.completion = completion;
    entry.parts.clear();
    entry.updatedAt = this.now();
  }

  async delete(id: string): Promise<void> {
    this.entries.delete(id);
  }

  /** "size:chunk" -> digest -> client ('' for none) -> ref: content delivered (instant upload). */
  private readonly content = new Map<string, Map<string, Map<string, ContentRef>>>();

  async addContent(key: ContentKey & { readonly digest: string }, ref: ContentRef): Promise<void> {
    const bySize = `${key.fileSize}:${key.chunkSize}`;
    let digests = this.content.get(bySize);
    if (!digests) this.content.set(bySize, (digests = new Map<string, Map<string, ContentRef>>()));
    let refs = digests.get(key.digest);
    if (!refs) digests.set(key.digest, (refs = new Map<string, ContentRef>()));
    refs.set(ref.client ?? '', ref);
  }

  async findContent(key: ContentKey): Promise<ContentRef[]> {
    const digests = this.content.get(`${key.fileSize}:${key.chunkSize}`);
    if (!digests) return [];
    const pick = (digest: string): ContentRef[] => {
      const refs = digests.get(digest);
      if (!refs) return [];
      if (key.client !== undefined) {
        const mine = refs.get(key.client);
        return mine ? [mine] : [];
      }
      return [...refs.values()].slice(0, CONTENT_REFS_PER_DIGEST);
    };
    if (key.digest !== undefined) return pick(key.digest);
    // By size alone one ref per digest is enough: it says that content of that size exists.
    const found: ContentRef[] = [];
    for (const digest of digests.keys()) {
      if (found.length >= CONTENT_LOOKUP_LIMIT) break;
      found.push(...pick(digest).slice(0, 1));
    }
    return found.slice(0, CONTENT_LOOKUP_LIMIT);
  }

  async list(page: ListPage = {}): Promise<UploadSummary[]> {
    const ids = [...this.entries.keys()]
      .filter((id) => page.after === undefined || id > page.after)
      .sort();
    const out: UploadSummary[] = [];
    for (const id of ids.slice(0, page.limit ?? ids.length)) {
      const entry = this.entries.get(id);
      if (!entry) continue;
      out.push({
        id,
        completed: entry.completion !== undefined,
        updatedAt: entry.updatedAt,
        fileSize: entry.info.fileSize,
        ...(entry.info.client !== undefined ? { client: entry.info.client } : {}),
        empty: entry.completion === undefined && entry.parts.size === 0,
        ...(entry.holder !== undefined && entry.holder.until > this.now() ? { leased: true } : {}),
      });
    }
    return out;
  }

  /** One ledger for this process, made with the first limits it is asked to enforce. */
  private ledger: ReservationLedger | undefined;

  async reserve(id: string, client: string, bytes: number, limits: QuotaLimits): Promise<void> {
    this.ledger ??= new ReservationLedger(limits);
    this.ledger.reserve(id, client, bytes);
  }

  async unreserve(id: string): Promise<void> {
    this.ledger?.release(id);
  }

  async health(): Promise<RegistryHealth> {
    return { ok: true, kind: this.kind };
  }

  async close(): Promise<void> {}
}
