/**
 * tus uploads created with Upload-Defer-Length: 1, before their length is known. The store sizes
 * an upload at creation (its data file, the reservation the quotas count), so such an upload is
 * only announced: its id, the sha256 of its secret, its client and metadata, in
 *
 *   <dir>/tus/<id>.pending   JSON, written to <id>.pending.tmp, fsynced, renamed over.
 *
 * The first PATCH that gives Upload-Length creates the stored upload under the same id (quotas
 * and space are checked then) and removes the record. A pending upload holds no bytes, so it
 * expires after `emptyUploadTtl` (checked when it is read, and when the count is full), and
 * pending uploads are bounded like unfinished ones: `maxUnfinishedUploads` in all and
 * `maxUnfinishedUploadsPerClient` per client (the same options, a separate count).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Errors, ProtocolError, bytesToHex } from '../../protocol/index.js';
import { fsyncDir } from '../store/directory-syncs.js';

export interface PendingUpload {
  readonly id: string;
  readonly secretHash: string;
  readonly client: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: number;
}

const ID = /^[0-9a-f]{32}$/;
const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_RDONLY } = fsConstants;

function isPending(value: unknown, id: string): value is PendingUpload {
  const v = value as Record<string, unknown> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.id === id &&
    typeof v.secretHash === 'string' &&
    /^[0-9a-f]{64}$/.test(v.secretHash) &&
    typeof v.client === 'string' &&
    typeof v.createdAt === 'number' &&
    typeof v.metadata === 'object' &&
    v.metadata !== null &&
    !Array.isArray(v.metadata) &&
    Object.values(v.metadata).every((x) => typeof x === 'string')
  );
}

export class PendingUploads {
  /** client -> pending uploads it holds. */
  private readonly byClient = new Map<string, Set<string>>();
  private total = 0;

  constructor(
    private readonly dir: string,
    private readonly modes: { file: number; dir: number },
    private readonly limits: { maxInAll: number; maxPerClient: number },
    /** How long a pending upload lives (ms). */
    readonly ttl: number,
  ) {}

  private path(id: string, suffix = ''): string {
    if (!ID.test(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
    return join(this.dir, `${id}.pending${suffix}`);
  }

  /** Count what is there (and drop what expired while the server was down). */
  async init(now = Date.now()): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      const id = name.slice(0, 32);
      if (!name.endsWith('.pending') || !ID.test(id)) continue;
      const record = await this.load(id);
      if (!record || now - record.createdAt > this.ttl) await this.drop(id, undefined);
      else this.count(record.id, record.client);
    }
  }

  /** Announce an upload; its secret is returned once and only its hash is kept. */
  async create(
    client: string,
    metadata: Readonly<Record<string, string>>,
    now = Date.now(),
  ): Promise<PendingUpload & { secret: Uint8Array }> {
    if (
      this.total >= this.limits.maxInAll ||
      (this.byClient.get(client)?.size ?? 0) >= this.limits.maxPerClient
    )
      await this.expire(now);
    if (this.total >= this.limits.maxInAll)
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `the server holds ${this.total} uploads of unknown length (limit ${this.limits.maxInAll})`,
      );
    if ((this.byClient.get(client)?.size ?? 0) >= this.limits.maxPerClient) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `this client holds ${this.limits.maxPerClient} uploads of unknown length; finish or terminate some`,
      );
    }
    const secret = new Uint8Array(randomBytes(32));
    const record: PendingUpload = {
      id: bytesToHex(randomBytes(16)),
      secretHash: createHash('sha256').update(secret).digest('hex'),
      client,
      metadata: { ...metadata },
      createdAt: now,
    };
    this.count(record.id, client);
    try {
      const temp = this.path(record.id, '.tmp');
      const handle = await open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, this.modes.file);
      try {
        await handle.writeFile(JSON.stringify(record));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path(record.id));
      await fsyncDir(this.dir);
    } catch (error) {
      await this.drop(record.id, client);
      throw error;
    }
    return { ...record, secret };
  }

  /** The pending upload `id`, unless there is none or it expired (then it is removed). */
  async read(id: string, now = Date.now()): Promise<PendingUpload | undefined> {
    if (!ID.test(id)) return undefined;
    const record = await this.load(id);
    if (!record) return undefined;
    if (now - record.createdAt > this.ttl) {
      await this.drop(id, record.client);
      return undefined;
    }
    return record;
  }

  /** The upload is stored now, or terminated. */
  async remove(id: string): Promise<void> {
    const record = await this.load(id);
    await this.drop(id, record?.client);
  }

  private async load(id: string): Promise<PendingUpload | undefined> {
    let handle;
    try {
      handle = await open(this.path(id), O_RDONLY | O_NOFOLLOW);
      const json: unknown = JSON.parse(await handle.readFile('utf8'));
      return isPending(json, id) ? json : undefined;
    } catch {
      return undefined;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  private async expire(now: number): Promise<void> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      if (name.endsWith('.pending')) await this.read(name.slice(0, 32), now);
    }
  }

  private count(id: string, client: string): void {
    const mine = this.byClient.get(client) ?? new Set<string>();
    if (mine.has(id)) return;
    mine.add(id);
    this.byClient.set(client, mine);
    this.total++;
  }

  private async drop(id: string, client: string | undefined): Promise<void> {
    await rm(this.path(id), { force: true });
    await rm(this.path(id, '.tmp'), { force: true });
    if (client === undefined) return;
    const mine = this.byClient.get(client);
    if (mine?.delete(id)) {
      this.total--;
      if (mine.size === 0) this.byClient.delete(client);
    }
  }
}
