/**
 * The registry of uploads open in this process: loads them from the store on demand, gives each
 * at most one owner (the newest connection wins, protocol/SPEC.md section 7.3 "Ownership"), unloads them
 * when their owner leaves, and removes them for DELETE, TERMINATE and the TTL sweeper.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import {
  Errors,
  Limits,
  ProtocolError,
  bytesToHex,
  hashToHex,
  type Hasher,
  type OpenMessage,
} from '../protocol/index.js';
import { SHA256_BYTES, sameBytes, sha256 } from './constant-time.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { ReservationLedger } from './quota.js';
import { leaseTakenOver } from './registry/lease-errors.js';
import { sanitizeName } from './store/names.js';
import {
  type ContentRef,
  type CreateIntent,
  type StoredUpload,
  type UploadInfo,
  type UploadStore,
} from './store/types.js';
import { OpenUpload, type UploadOwner } from './upload.js';

/** A store's UPLOAD_DAMAGED (SPEC.md 7.2): the upload's records are damaged. */
export function isDamage(error: unknown): error is ProtocolError {
  return error instanceof ProtocolError && error.code === Errors.UPLOAD_DAMAGED.code;
}

/** The identity of an upload announced before it was stored (tus creation-defer-length). */
export interface PresetIdentity {
  readonly id: string;
  readonly secretHash: string;
  readonly createdAt: number;
}

export class UploadRegistry {
  private readonly loaded = new Map<string, OpenUpload>();
  /** Loads and unloads in progress, so one id is never opened twice at once. */
  private readonly transitions = new Map<string, Promise<unknown>>();
  /** closeAll began: no upload is created any more (SHUTTING_DOWN). */
  private closing = false;

  /** Reservations of unfinished uploads, per client and in all (quotas). */
  readonly ledger: ReservationLedger;

  constructor(
    private readonly store: UploadStore,
    private readonly options: ResolvedOptions,
    private readonly hasher: Hasher,
    private readonly metrics: ServerMetrics,
    private readonly log?: FastifyBaseLogger,
  ) {
    this.ledger = new ReservationLedger(options);
  }

  /** The store can withdraw chunk records (REPLACE_CHUNK, SPEC.md 16.9). */
  get retractsChunks(): boolean {
    return this.store.retractsChunks === true;
  }

  /**
   * Rebuild the reservations of unfinished uploads from the store (at start). Reads the unfinished
   * uploads only (ListPage.unfinished), so start-up does not grow with completed ones.
   */
  async restoreReservations(): Promise<void> {
    // A store that counts quotas itself (cluster-wide) is the only ledger that counts.
    if (this.store.countsQuotas === true) return;
    for (const summary of await this.store.list({ unfinished: true })) {
      if (!summary.completed)
        this.ledger.restore(summary.id, summary.client ?? 'unknown', summary.fileSize ?? 0);
    }
  }

  /** A fresh completion: the reservation became a delivered file. */
  completed(id: string): void {
    this.ledger.release(id);
    this.gone(id);
  }

  private readonly goneListeners: Array<(id: string) => void> = [];

  /**
   * `listener` is told the id of every upload that completed or was removed here, by any binding
   * or the sweeper, so state kept beside the store for unfinished uploads (the tus endpoint's
   * partial-chunk records) goes with them instead of piling up until a restart.
   */
  onGone(listener: (id: string) => void): void {
    this.goneListeners.push(listener);
  }

  private gone(id: string): void {
    for (const listener of this.goneListeners) listener(id);
  }

  /** Upload slots taken by OPENs and RESUMEs still being answered (see reserveSlot). */
  private reservedSlots = 0;
  /** The same, per client address. */
  private readonly reservedByAddress = new Map<string, number>();

  /**
   * Take an upload slot for a client at `address` before the first await of an OPEN or RESUME, so
   * concurrent ones cannot all pass the check. Undefined when taken; else why not: every slot is
   * owned or reserved (`maxUploads`), or this address holds `maxUploadsPerAddress` of them (one
   * address trickling a chunk a minute into every slot would keep everyone else out). Pair with
   * releaseSlot(address).
   */
  reserveSlot(address: string): string | undefined {
    const refusal = this.slotRefusal(address);
    if (refusal !== undefined) return refusal;
    this.reservedSlots++;
    this.reservedByAddress.set(address, (this.reservedByAddress.get(address) ?? 0) + 1);
    return undefined;
  }

  /** Why reserveSlot(address) would refuse now, or undefined; reserves nothing. */
  slotRefusal(address: string): string | undefined {
    if (this.ownedCount + this.reservedSlots >= this.options.maxUploads)
      return 'too many uploads in progress';
    const mine = (this.reservedByAddress.get(address) ?? 0) + this.ownedBy(address);
    if (mine >= this.options.maxUploadsPerAddress)
      return `this address has ${mine} uploads in progress (maxUploadsPerAddress ${this.options.maxUploadsPerAddress}); finish some first`;
    return undefined;
  }

  releaseSlot(address: string): void {
    this.reservedSlots--;
    const left = (this.reservedByAddress.get(address) ?? 1) - 1;
    if (left > 0) this.reservedByAddress.set(address, left);
    else this.reservedByAddress.delete(address);
  }

  /** Uploads with a live connection from `address`. */
  private ownedBy(address: string): number {
    let n = 0;
    for (const upload of this.loaded.values()) if (upload.owner?.address === address) n++;
    return n;
  }

  /** Uploads that have a live connection. */
  get ownedCount(): number {
    let n = 0;
    for (const upload of this.loaded.values()) if (upload.owner) n++;
    return n;
  }

  /** The loaded upload for an id, if any (no store access). */
  peek(id: string): OpenUpload | undefined {
    return this.loaded.get(id);
  }

  private async serialize<T>(id: string, work: () => Promise<T>): Promise<T> {
    const previous = this.transitions.get(id) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(work);
    const tail = run.catch(() => undefined);
    this.transitions.set(id, tail);
    void tail.then(() => {
      if (this.transitions.get(id) === tail) this.transitions.delete(id);
    });
    return run;
  }

  /** OPEN: validate, check space, create and reserve, then own. Returns the upload and its secret. */
  /**
   * SPEC.md 7.1 checks 2 and 3 (size, then space), so that an OPEN is refused for its size before
   * the server's capacity (check 4) is reported. `create` checks again.
   */
  async checkSizeAndSpace(fileSize: number): Promise<void> {
    if (fileSize > this.options.maxUploadSize) {
      throw new ProtocolError(
        Errors.FILE_TOO_LARGE,
        `file of ${fileSize} bytes exceeds the limit of ${this.options.maxUploadSize}`,
      );
    }
    const free = await this.store.freeSpace();
    if (fileSize > free) {
      throw new ProtocolError(
        Errors.INSUFFICIENT_STORAGE,
        `file of ${fileSize} bytes exceeds the free space`,
      );
    }
  }

  /**
   * OPEN, after `checkSizeAndSpace` (the session runs it first, in SPEC.md 7.1's order): the
   * store's create checks the space again, atomically with the reservation.
   */
  /** The chunk size an OPEN gets: the proposal clamped to the server's bounds and the store's. */
  chunkSizeFor(message: OpenMessage): number {
    const proposed =
      message.chunkSize === 0
        ? this.options.defaultChunkSize
        : Math.min(Math.max(message.chunkSize, Limits.MIN_CHUNK_SIZE), this.options.maxChunkSize);
    // An object store maps chunks to parts and may need a larger one (part rules).
    return (
      this.store.chunkSizeFor?.(message.fileSize, proposed, this.options.maxChunkSize) ?? proposed
    );
  }

  /**
   * Whether content of this size is remembered at completion and may be an instant upload: not
   * when instant upload is off (its index would be written for nothing), nor below
   * `instantUploadMinSize` (an empty file is never one).
   */
  remembersContent(fileSize: number, client?: string): boolean {
    return (
      this.instantUploads &&
      fileSize >= this.options.instantUploadMinSize &&
      // Content nobody could find (a client without a subject in the default scope) is not
      // written to the index.
      (client === undefined || this.findsContent(client))
    );
  }

  /** Instant upload is on and the store can find content (PROOF_OF_POSSESSION may be granted). */
  get instantUploads(): boolean {
    return (
      this.options.instantUpload !== false &&
      this.store.findContent !== undefined &&
      this.store.readContent !== undefined &&
      this.store.adoptContent !== undefined
    );
  }

  /**
   * The upload's info as the store keeps it, without its chunk records where the store can (the
   * disk store reads `<id>.json` alone): what checking a secret or a tus request needs.
   */
  storedInfo(id: string): Promise<UploadInfo | undefined> {
    return this.store.readInfo
      ? this.store.readInfo(id)
      : this.store.readState(id).then((state) => state?.info);
  }

  /**
   * Whether `client` may find content at all: in the default 'subject' scope only a client with
   * an authorization subject (see the instantUpload option: a scope holds clients that trust each
   * other, and one address may be many users).
   */
  private findsContent(client: string): boolean {
    return this.options.instantUpload !== 'subject' || client.startsWith('subject:');
  }

  /**
   * Whether this OPEN may become an instant upload (SPEC.md 16.10): completed content of its file
   * size at the chunk size it would get exists within the dedupe scope of `client`, and that is
   * its proposed chunk size or `namedChunkSize` (the client takes a CHALLENGE naming another).
   * With the global scope always true (whether a size exists is then another tenant's information).
   */
  async mayHoldContent(
    message: OpenMessage,
    client: string,
    namedChunkSize: boolean,
  ): Promise<boolean> {
    const chunkSize = this.chunkSizeFor(message);
    if (
      !this.remembersContent(message.fileSize) ||
      !this.findsContent(client) ||
      (chunkSize !== message.chunkSize && !namedChunkSize)
    )
      return false;
    if (this.options.instantUpload === 'global') return true;
    // One of this client's is enough: the store reads no further (an OPEN's lookup stays short).
    const found =
      (await this.store.findContent?.({
        fileSize: message.fileSize,
        chunkSize,
        client,
        limit: 1,
      })) ?? [];
    return found.some((ref) => ref.client === client);
  }

  /**
   * Completed content of this OPEN's size and chunk size with `digest`, within the dedupe scope of
   * `client` (SPEC.md 16.10): candidates only, whose bytes the caller still has to see proven.
   * The chunk size is the one the OPEN gets (the proposal, or one the CHALLENGE named).
   */
  async findContent(
    message: OpenMessage,
    client: string,
    digest: bigint,
    namedChunkSize: boolean,
  ): Promise<ContentRef[]> {
    const chunkSize = this.chunkSizeFor(message);
    if (
      !this.remembersContent(message.fileSize) ||
      !this.findsContent(client) ||
      (chunkSize !== message.chunkSize && !namedChunkSize)
    )
      return [];
    const global = this.options.instantUpload === 'global';
    const found =
      (await this.store.findContent?.({
        fileSize: message.fileSize,
        chunkSize,
        digest: hashToHex(digest),
        // In the per-subject scope the store never touches another client's content.
        ...(global ? {} : { client }),
      })) ?? [];
    return this.options.instantUpload === 'global'
      ? found
      : found.filter((ref) => ref.client === client);
  }

  /** Bytes of found content, for checking a proof. */
  readContent(ref: ContentRef, offset: number, length: number): Promise<Uint8Array> {
    if (!this.store.readContent) throw new ProtocolError(Errors.INTERNAL_ERROR, 'no content reads');
    return this.store.readContent(ref, offset, length);
  }

  /**
   * A new upload completed at once from `ref`'s content (instant upload): its own id, the OPEN's
   * name and metadata, stored as durably as a completion. Returns it as a completed upload;
   * undefined where the store cannot share that content (the OPEN goes on as an ordinary one).
   */
  async adopt(
    message: OpenMessage,
    client: string,
    ref: ContentRef,
    digest: bigint,
    batch?: string,
  ): Promise<OpenUpload | undefined> {
    if (!this.store.adoptContent)
      throw new ProtocolError(Errors.INTERNAL_ERROR, 'instant upload is not available');
    const { info } = this.infoFor(message, client, undefined, batch);
    const completion = await this.store.adoptContent(info, ref, hashToHex(digest));
    if (completion === undefined) return undefined;
    this.metrics.uploadsCreated.inc();
    this.metrics.uploadsCompleted.inc();
    return new OpenUpload(
      info,
      undefined,
      [],
      this.hasher,
      this.options.durable,
      this.metrics,
      completion,
      this.options.syncBytes,
      this.remembersContent(info.fileSize, info.client),
    );
  }

  /** `batch`: see UploadInfo.batch; kept only for an upload with a relative path. */
  private infoFor(
    message: OpenMessage,
    client: string,
    preset?: PresetIdentity,
    batch?: string,
    viaTus = false,
  ): { info: UploadInfo; secret: Uint8Array } {
    const chunkSize = this.chunkSizeFor(message);
    // A preset identity (a tus upload created before its length was known) keeps its id and secret.
    const secret = preset ? new Uint8Array(0) : randomBytes(Limits.SECRET_BYTES);
    const info: UploadInfo = {
      id: preset?.id ?? bytesToHex(randomBytes(Limits.UPLOAD_ID_BYTES)),
      secretHash: preset?.secretHash ?? bytesToHex(sha256(secret)),
      fileSize: message.fileSize,
      chunkSize,
      name: sanitizeName(message.name),
      // What the client called it, when sanitizing changed it (the operator may want it back).
      ...(sanitizeName(message.name) !== message.name ? { originalName: message.name } : {}),
      contentType: message.contentType,
      metadata: { ...message.metadata },
      // The OPEN digest is defined at the proposed chunk size (SPEC.md 7.1): keep it only when the
      // agreed size is that size, otherwise it could never match and would fail a good upload.
      ...(message.digest !== undefined && chunkSize === message.chunkSize
        ? { digest: hashToHex(message.digest) }
        : {}),
      createdAt: preset?.createdAt ?? Date.now(),
      client,
      ...(batch !== undefined && message.metadata.relativePath !== undefined ? { batch } : {}),
      ...(viaTus ? { tus: true as const } : {}),
    };
    return { info, secret };
  }

  async create(
    message: OpenMessage,
    owner: UploadOwner,
    client: string,
    preset?: PresetIdentity,
    batch?: string,
    intent?: CreateIntent,
    viaTus = false,
  ): Promise<{ upload: OpenUpload; secret: Uint8Array }> {
    if (this.closing)
      throw new ProtocolError(Errors.SHUTTING_DOWN, 'the server is shutting down; retry shortly');
    const { info, secret } = this.infoFor(message, client, preset, batch, viaTus);
    // Reserved synchronously (before the store's awaits), so racing OPENs all see each other.
    if (this.store.countsQuotas !== true) this.ledger.reserve(info.id, client, info.fileSize);
    const upload = await this.serialize(info.id, async () => {
      let handle;
      try {
        handle = await this.store.create(info, intent);
      } catch (error) {
        this.ledger.release(info.id);
        throw error;
      }
      const created = new OpenUpload(
        info,
        handle,
        [],
        this.hasher,
        // One completed in the step that created it acks nothing before its RESULT, and its
        // completion flushes the data before the commit: a flush per record would be a second.
        this.options.durable && intent?.completesAtOnce !== true,
        this.metrics,
        undefined,
        this.options.syncBytes,
        this.remembersContent(info.fileSize, info.client),
      );
      created.owner = owner;
      this.loaded.set(info.id, created);
      return created;
    });
    this.metrics.uploadsCreated.inc();
    return { upload, secret: new Uint8Array(secret) };
  }

  /**
   * RESUME: check the secret, then load (or find) the upload and own it. The secret is checked
   * against the stored metadata before any file is opened or anything is cached, so wrong secrets
   * cost no descriptors and leave nothing behind. Unknown id and wrong secret are the same
   * NOT_FOUND, and both do one sha256 and one constant-time compare.
   */
  async resume(idBytes: Uint8Array, secret: Uint8Array, owner: UploadOwner): Promise<OpenUpload> {
    const id = bytesToHex(idBytes);
    const notFound = new ProtocolError(Errors.NOT_FOUND, 'no upload with this id and secret');
    const damaged = (damage: string): ProtocolError => {
      // Deactivated, not loaded: nothing is claimed, written or cut. Logged on every attempt, which
      // is rare since the error is fatal and not retryable. The details stay in the log.
      this.log?.error(
        { upload: id, damage },
        'upload damaged: RESUME refused with UPLOAD_DAMAGED; its files are kept for the operator',
      );
      return new ProtocolError(
        Errors.UPLOAD_DAMAGED,
        'the server found its record of this upload damaged; start a new upload',
      );
    };
    const given = sha256(secret);
    const upload = await this.serialize(id, async () => {
      const loaded = this.loaded.get(id);
      if (loaded) {
        if (!sameBytes(given, Buffer.from(loaded.info.secretHash, 'hex'))) throw notFound;
        if (await loaded.stillOwned()) return loaded;
        // Another node took the upload over while this copy stayed loaded (its connection not yet
        // found dead): its ranges are stale. Reload from the store, which takes the upload anew.
        await this.unloadStale(loaded);
      }
      let state: StoredUpload | undefined;
      try {
        // The secret is checked against the metadata alone first: a wrong one must not make the
        // server read the upload's journal (a RESUME is a few bytes, a journal up to MiBs).
        const info = this.store.readInfo
          ? await this.store.readInfo(id)
          : (state = await this.store.readState(id))?.info;
        const expected = info ? Buffer.from(info.secretHash, 'hex') : new Uint8Array(SHA256_BYTES);
        if (!sameBytes(given, expected) || !info) throw notFound;
        state ??= await this.store.readState(id);
      } catch (error) {
        if (!isDamage(error)) throw error;
        // Unreadable metadata: the secret hash is gone, so the secret cannot be checked and whoever
        // holds the id (128 random bits) learns that the upload is unusable (SPEC.md 7.2).
        sameBytes(given, new Uint8Array(SHA256_BYTES));
        throw damaged(error.message);
      }
      if (!state) throw notFound;
      const found = await this.load(state);
      if (!(found instanceof OpenUpload)) throw damaged(found.damaged ?? 'damaged');
      return found;
    });
    if (upload.failure) {
      this.unloadIfUnowned(upload);
      throw new ProtocolError(
        Errors.STORAGE_ERROR,
        'the upload hit a storage error; retry shortly',
      );
    }
    const previous = upload.owner;
    upload.owner = owner;
    if (previous && previous !== owner) {
      // The newer connection wins; writes the older one started finish and are journaled first.
      previous.evict(
        new ProtocolError(Errors.TAKEN_OVER, 'another connection resumed this upload'),
      );
      await upload.settle();
    }
    return upload;
  }

  /**
   * The tus endpoint's way in (server/tus/): its requests are authorized by the server token or a
   * ticket and name the upload by id, with no resume secret. Loads the upload and owns it unless
   * someone else does: then 'locked' (tus answers 423, it never takes an upload over from a
   * writer; an owner that only reads is replaced without being told). Undefined
   * for an unknown id; UPLOAD_DAMAGED for a damaged one.
   */
  async claim(id: string, owner: UploadOwner): Promise<OpenUpload | 'locked' | undefined> {
    return this.serialize(id, async () => {
      let upload = this.loaded.get(id);
      if (upload && !(await upload.stillOwned())) {
        await this.unloadStale(upload);
        upload = undefined;
      }
      if (!upload) {
        const state = await this.store.readState(id);
        if (!state) return undefined;
        const found = await this.load(state);
        if (!(found instanceof OpenUpload)) {
          throw new ProtocolError(
            Errors.UPLOAD_DAMAGED,
            `upload damaged: ${found.damaged ?? 'damaged'}`,
          );
        }
        upload = found;
      }
      if (upload.owner && upload.owner !== owner && !upload.owner.readOnly) return 'locked';
      if (upload.failure) {
        this.unloadIfUnowned(upload);
        throw new ProtocolError(
          Errors.STORAGE_ERROR,
          'the upload hit a storage error; retry shortly',
        );
      }
      upload.owner = owner;
      return upload;
    });
  }

  /** Open a stored upload (the secret already checked) and cache it; damaged ones are not opened. */
  private async load(state: StoredUpload): Promise<OpenUpload | StoredUpload> {
    const id = state.info.id;
    if (state.damaged) return state;
    if (state.completion) {
      const done = new OpenUpload(
        state.info,
        undefined,
        [],
        this.hasher,
        this.options.durable,
        this.metrics,
        state.completion,
      );
      this.loaded.set(id, done);
      return done;
    }
    let handle;
    try {
      handle = await this.store.open(id);
    } catch (error) {
      // Damage found by the store's open (it re-reads the journal) is answered like readState's.
      if (isDamage(error)) return { ...state, damaged: error.message };
      throw error;
    }
    // The handle re-read the journal under its own trust rule; state.chunks came from the same bytes.
    const upload = new OpenUpload(
      state.info,
      handle,
      state.chunks,
      this.hasher,
      this.options.durable,
      this.metrics,
      undefined,
      this.options.syncBytes,
      this.remembersContent(state.info.fileSize, state.info.client),
    );
    if (state.chunksWithdrawn) upload.discardAnnouncedDigest();
    this.loaded.set(id, upload);
    return upload;
  }

  /**
   * Drop a loaded copy another server process took over (OpenUpload.stillOwned false): its owner
   * hears TAKEN_OVER, as it would have at once had the takeover happened in this process, and its
   * handle is closed. Runs inside `serialize` for the upload's id.
   */
  private async unloadStale(upload: OpenUpload): Promise<void> {
    const owner = upload.owner;
    upload.owner = undefined;
    this.loaded.delete(upload.id);
    owner?.evict(leaseTakenOver());
    await upload.settle();
    await upload.close().catch(() => undefined);
  }

  /** Unload an upload nobody owns (a refused RESUME must not leave its files open). */
  unloadIfUnowned(upload: OpenUpload): void {
    void this.serialize(upload.id, async () => {
      if (upload.owner || this.loaded.get(upload.id) !== upload) return;
      await upload.settle();
      if (upload.owner || this.loaded.get(upload.id) !== upload) return;
      this.loaded.delete(upload.id);
      // Nobody awaits this: a failed final checkpoint (the store's files tampered with, a disk
      // error) is logged, never an unhandled rejection, which would end the process. What the
      // checkpoint did not flush is what a crash would lose: the journal's trust rule covers it.
      await upload.close().catch((error: unknown) => {
        this.log?.warn(
          { upload: upload.id, err: error },
          'closing an unloaded upload failed; its last acked ranges may need resending',
        );
      });
    });
  }

  /** The owner left (connection closed): once its writes settle, unload unless someone took it. */
  release(upload: OpenUpload, owner: UploadOwner): void {
    if (upload.owner !== owner) return;
    upload.owner = undefined;
    this.unloadIfUnowned(upload);
  }

  /**
   * Remove an upload (DELETE, TERMINATE, TTL). Its owner, unless it is `except`, is evicted with
   * UPLOAD_GONE. Returns false when the id is unknown, or (with `unlessOwned`, for the sweeper)
   * when a connection owns it at the moment of removal. With `unlessCompleted` (an OPEN with data
   * whose completion failed, SPEC.md 16.11) an upload whose completed record was committed before
   * the failure is kept (reading it finishes the move) and false is returned.
   */
  async remove(
    id: string,
    except?: UploadOwner,
    unlessOwned = false,
    unlessCompleted = false,
  ): Promise<boolean> {
    return this.serialize(id, async () => {
      const upload = this.loaded.get(id);
      if (upload?.owner && unlessOwned) return false;
      if (upload?.owner && upload.owner === except && !(await upload.stillOwned())) {
        // The connection asking (TERMINATE) lost the upload to a connection on another node and
        // has not heard yet: the newest connection wins, so it is told, and nothing is removed.
        await this.unloadStale(upload);
        return false;
      }
      let stored: StoredUpload | undefined;
      if (upload) {
        if (upload.owner && upload.owner !== except) {
          upload.owner.evict(
            new ProtocolError(Errors.UPLOAD_GONE, 'the upload was deleted or expired'),
          );
        }
        upload.owner = undefined;
        this.loaded.delete(id);
        await upload.settle();
        await upload.close().catch(() => undefined);
      } else {
        stored = await this.store.readState(id);
        if (!stored) return false;
      }
      if (unlessCompleted) {
        // A loaded upload is read only now, after its handle was closed.
        stored ??= await this.store.readState(id).catch(() => undefined);
        if (stored?.completion) {
          this.ledger.release(id);
          return false;
        }
      }
      // The sweeper listed the upload a while ago: a connection on another node may hold it now.
      if (unlessOwned && this.store.removeUnlessLeased) {
        if (!(await this.store.removeUnlessLeased(id))) return false;
      } else await this.store.remove(id);
      this.ledger.release(id);
      this.gone(id);
      return true;
    });
  }

  /** Background sync of every loaded upload (default mode). */
  async checkpointAll(): Promise<void> {
    await Promise.all([...this.loaded.values()].map((u) => u.checkpoint()));
  }

  /**
   * Shutdown: let writes settle, checkpoint and release every handle. Then wait, up to
   * `timeoutMs`, for unloads already under way: an upload whose connection closed before the
   * shutdown is no longer in `loaded`, but its final checkpoint and close run in a transition,
   * and the journal must not change after the app says it stopped.
   */
  async closeAll(timeoutMs: number): Promise<void> {
    this.closing = true;
    const closeLoaded = async (): Promise<void> => {
      await Promise.all(
        [...this.loaded.values()].map(async (u) => {
          await u.settle();
          await u.close().catch(() => undefined);
        }),
      );
      this.loaded.clear();
    };
    await closeLoaded();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    const drained = (async () => {
      // Transition tails never reject; a finished one leaves the map before this loop looks again.
      while (this.transitions.size > 0) await Promise.all([...this.transitions.values()]);
    })();
    await Promise.race([drained, timeout]);
    clearTimeout(timer);
    // Creations and loads that were under way at the first pass: nothing stays open after close.
    await closeLoaded();
  }

  /** Check a resume secret in its hex form (HTTP `Bigup-Secret`). */
  static secretMatches(secretHash: string, secret: Uint8Array): boolean {
    return sameBytes(sha256(secret), Buffer.from(secretHash, 'hex'));
  }
}
