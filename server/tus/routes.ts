/**
 * The tus 1.0.0 endpoint (https://tus.io/protocols/resumable-upload): core (HEAD, PATCH, OPTIONS)
 * and the extensions creation, creation-with-upload, creation-defer-length, expiration, checksum
 * and termination, served at `tusPath` by the plugin, in the plugin's route scope (so the Host
 * allow-list and the error handler apply), over the same registry and store as the WebSocket
 * endpoint. A tus upload is an ordinary upload: `GET /uploads/:id` shows it, the sweeper expires
 * it, quotas count it, `onUploadComplete` hears of it.
 *
 *   POST    <tusPath>        create (Upload-Length or Upload-Defer-Length; Upload-Metadata);
 *                            201 + Location <tusPath><id>, and Bigup-Upload-Id / Bigup-Secret for
 *                            `GET /uploads/:id`. With a body (creation-with-upload), as PATCH.
 *   HEAD    <tusPath><id>    Upload-Offset, Upload-Length (or Upload-Defer-Length), Upload-Metadata
 *   PATCH   <tusPath><id>    body at Upload-Offset; 204 + the new Upload-Offset
 *   DELETE  <tusPath><id>    termination
 *   OPTIONS                  what this server speaks (no credentials needed)
 *
 * Offsets: tus counts bytes, the store counts whole chunks; the offset is the recorded chunks'
 * contiguous prefix plus a verified partial tail (progress.ts, tail.ts). One writer per upload: a
 * PATCH owns the upload in the registry while its body arrives, so a second PATCH, or one while a
 * WebSocket connection owns it, gets 423 (tusd's answer); a WebSocket RESUME takes the upload over
 * and the PATCH's body is cut. A HEAD that loads the upload for its answer keeps no one out.
 *
 * Deferred length: the upload is stored once its length is known, which must come with the first
 * PATCH that carries bytes (tus-js-client and Uppy send it there when they read a file); until then
 * the upload is a small pending record (pending.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  Errors,
  ProtocolError,
  bytesToHex,
  parseUploadId,
  type Hasher,
  type OpenMessage,
} from '../../protocol/index.js';
import { HttpErrors, sendHttpError, type HttpErrorDefinition } from '../http-errors.js';
import type { ServerMetrics } from '../metrics.js';
import type { ResolvedOptions } from '../options.js';
import { clientAddress } from '../client-address.js';
import type { OpenRateLimiter } from '../quota.js';
import type { UploadInfo, UploadStore } from '../store/types.js';
import type { OpenUpload, UploadOwner } from '../upload.js';
import type { UploadRegistry } from '../uploads.js';
import {
  admitCreation,
  admitUploadRequest,
  checkAccess,
  isHttpError,
  type TusAccess,
} from './access.js';
import { corsHeaders } from './cors.js';
import { httpErrorFor } from './errors.js';
import {
  CHECKSUM_ALGORITHMS,
  HeaderError,
  OFFSET_OCTET_STREAM,
  TUS_EXTENSIONS,
  TUS_VERSION,
  formatMetadata,
  nameAndType,
  parseChecksum,
  parseDeferLength,
  parseMetadata,
  parseSize,
  speaksTus,
  withoutEmptyRelativePath,
  type ChecksumHeader,
} from './headers.js';
import { writePatch, type PatchOutcome } from './patch-writer.js';
import { PendingUploads, type PendingUpload } from './pending.js';
import { TusProgress } from './progress.js';
import { StallGuard } from './stall-guard.js';
import { TailStore, type TailRecord } from './tail.js';

/** What the tus endpoint needs from the plugin. */
export interface TusContext {
  readonly options: ResolvedOptions;
  readonly registry: UploadRegistry;
  readonly hasher: Hasher;
  readonly metrics: ServerMetrics;
  readonly openRate: OpenRateLimiter;
  /** Where tails and pending records live: `<stateDir>/tus/`. */
  readonly stateDir: string;
  readonly log: FastifyBaseLogger;
  readonly shuttingDown: () => boolean;
  /** A fresh completion: the plugin's hooks and events. */
  readonly completed: (upload: OpenUpload) => void;
  readonly store: UploadStore;
}

/** A tus request holding an upload: eviction (WebSocket takeover, DELETE, TTL) cuts its body. */
class RequestOwner implements UploadOwner {
  evicted: ProtocolError | undefined;

  constructor(
    private readonly raw: IncomingMessage,
    readonly address: string,
  ) {}

  evict(error: ProtocolError): void {
    this.evicted = error;
    this.raw.destroy();
  }
}

/**
 * A HEAD holding an upload only to load it for the moment of its answer: a writer that comes
 * meanwhile takes the upload over (UploadOwner.readOnly), and the HEAD answers from it as from any
 * loaded upload.
 */
class HeadReader implements UploadOwner {
  readonly readOnly = true;

  constructor(readonly address: string) {}

  evict(): void {}
}

/** The refusal of a request, as a value: the catalogue entry and an optional message. */
class TusRefusal extends Error {
  constructor(
    readonly definition: HttpErrorDefinition,
    message?: string,
  ) {
    super(message ?? definition.message);
  }
}

function refusalOf(error: unknown): TusRefusal | undefined {
  if (error instanceof TusRefusal) return error;
  if (error instanceof HeaderError) return new TusRefusal(HttpErrors.TUS_BAD_HEADER, error.message);
  if (error instanceof ProtocolError) {
    const definition = httpErrorFor(error);
    // Internal faults keep their message to the log only.
    return new TusRefusal(
      definition,
      definition.status >= 500 ? definition.message : error.message,
    );
  }
  return undefined;
}

export async function registerTusRoutes(scope: FastifyInstance, ctx: TusContext): Promise<void> {
  const { options, registry } = ctx;
  const base = options.tusPath;
  if (base === false) return;
  const modes = options.groupReadable ? { file: 0o640, dir: 0o750 } : { file: 0o600, dir: 0o700 };
  const tails = new TailStore(ctx.stateDir, modes);
  await tails.init();
  const progress = new TusProgress(
    tails,
    ctx.hasher,
    2 * options.maxUnfinishedUploads,
    options.tusPartialWritesPerChunk,
  );
  const pending = new PendingUploads(
    tails.dir,
    modes,
    { maxInAll: options.maxUnfinishedUploads, maxPerClient: options.maxUnfinishedUploadsPerClient },
    Math.min(options.emptyUploadTtl, options.ttl),
  );
  await pending.init();
  // An upload completed or removed by any path (a WebSocket TERMINATE or COMPLETE, the sweeper, the
  // admin's DELETE) takes its tail record along; before, only tus's own DELETE and completion did,
  // and the rest piled up in tus/ until a restart (an inode each, a client could make 100 a second).
  registry.onGone((id) => void progress.forget(id));
  // Records of uploads that completed or went away while the server was down: dropped at start.
  void (async () => {
    for (const id of await tails.ids()) {
      const state = await ctx.store.readState(id).catch(() => ({ completion: undefined }));
      if (!state || state.completion) await tails.remove(id);
    }
  })().catch((error: unknown) =>
    ctx.log.warn({ err: error }, 'tus: clean-up of tail records failed'),
  );

  /** An unfinished upload expires after the TTL of the sweeper (the shorter one while it is empty). */
  function expiresAt(upload: OpenUpload): string | undefined {
    if (upload.completed) return undefined;
    const ttl =
      upload.acked.total === 0 ? Math.min(options.emptyUploadTtl, options.ttl) : options.ttl;
    return new Date(upload.lastActivity + ttl).toUTCString();
  }

  function refuse(request: FastifyRequest, reply: FastifyReply, refusal: TusRefusal): FastifyReply {
    ctx.metrics.errors.inc({ code: refusal.definition.code });
    // A body we will not read is not worth receiving: close after the answer instead of draining.
    if (!request.raw.complete) reply.header('Connection', 'close');
    if (refusal.definition === HttpErrors.TOKEN_REQUIRED)
      reply.header('WWW-Authenticate', 'Bearer');
    if (refusal.definition.status === 503) reply.header('Retry-After', '5');
    return sendHttpError(reply, refusal.definition, refusal.message);
  }

  /** Run a handler; refusals become their HTTP answers, anything else the plugin's 500. */
  function guarded(
    handler: (
      request: FastifyRequest<{ Params: { id?: string } }>,
      reply: FastifyReply,
    ) => Promise<FastifyReply>,
  ) {
    return async (
      request: FastifyRequest<{ Params: { id?: string } }>,
      reply: FastifyReply,
    ): Promise<FastifyReply> => {
      try {
        return await handler(request, reply);
      } catch (error) {
        const refusal = refusalOf(error);
        if (!refusal) throw error;
        if (refusal.definition.status >= 500 && !(error instanceof TusRefusal))
          request.log.error({ err: error }, 'tus request failed');
        return refuse(request, reply, refusal);
      }
    };
  }

  function access(request: FastifyRequest): TusAccess {
    if (ctx.shuttingDown()) throw new TusRefusal(HttpErrors.SHUTTING_DOWN);
    const result = checkAccess(request, options);
    if (isHttpError(result)) throw new TusRefusal(result);
    return result;
  }

  function uploadIdOf(request: FastifyRequest<{ Params: { id?: string } }>): string {
    const id = request.params.id ?? '';
    if (!parseUploadId(id)) throw new TusRefusal(HttpErrors.NOT_FOUND);
    return id;
  }

  function location(request: FastifyRequest, id: string): string {
    return `${request.protocol}://${request.headers.host ?? 'localhost'}${scope.prefix}${base}${id}`;
  }

  /** What the store knows of an upload without opening it; NOT_FOUND when nothing. */
  /**
   * The announced (deferred-length) upload `id`, if it is still only announced. A record whose
   * removal failed after its upload was stored (storeFromPending) is removed here: the stored
   * upload is what the id names now, for PATCH, HEAD and DELETE alike.
   */
  async function announced(id: string): Promise<PendingUpload | undefined> {
    const waiting = await pending.read(id);
    if (waiting && (registry.peek(id) ?? (await ctx.store.readState(id)))) {
      await pending.remove(id);
      return undefined;
    }
    return waiting;
  }

  /**
   * The upload's info, for every tus request about an upload that is not only announced. An
   * upload tus did not create is NOT_FOUND here: tus requests carry no secret (the URL is the
   * capability), and a WebSocket or HTTP-binding upload must not be read, written or removed by
   * whoever learns its id (its `files/<id>/` folder, the logs, the application's hook).
   */
  async function infoOf(id: string): Promise<UploadInfo> {
    const info = registry.peek(id)?.info ?? (await registry.storedInfo(id));
    if (!info || info.tus !== true) throw new TusRefusal(HttpErrors.NOT_FOUND);
    return info;
  }

  /** Body present: a Content-Length above 0, or a chunked body. */
  function hasBody(request: FastifyRequest): boolean {
    const length = request.headers['content-length'];
    return (
      (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined
    );
  }

  function requireOctetStream(request: FastifyRequest): void {
    const type = request.headers['content-type'];
    if (
      typeof type !== 'string' ||
      type.split(';')[0].trim().toLowerCase() !== OFFSET_OCTET_STREAM
    ) {
      throw new TusRefusal(HttpErrors.TUS_CONTENT_TYPE);
    }
  }

  function checksumOf(request: FastifyRequest): ChecksumHeader | undefined {
    const checksum = parseChecksum(request.headers['upload-checksum']);
    if (checksum === 'unsupported') throw new TusRefusal(HttpErrors.TUS_CHECKSUM_UNSUPPORTED);
    return checksum;
  }

  /**
   * Claim the upload for a writing request: one upload slot (maxUploads) taken before the first
   * await, as OPEN does, so racing PATCHes cannot all pass; 423 when someone else owns it.
   */
  async function claimForWriting(id: string, owner: RequestOwner): Promise<OpenUpload> {
    const refusal = registry.reserveSlot(owner.address);
    if (refusal !== undefined) throw new TusRefusal(HttpErrors.TUS_BUSY, refusal);
    let claimed: OpenUpload | 'locked' | undefined;
    try {
      claimed = await registry.claim(id, owner);
    } finally {
      registry.releaseSlot(owner.address);
    }
    if (claimed === undefined) throw new TusRefusal(HttpErrors.NOT_FOUND);
    if (claimed === 'locked') throw new TusRefusal(HttpErrors.TUS_LOCKED);
    ctx.metrics.uploadsActive.set(registry.ownedCount);
    return claimed;
  }

  function letGo(upload: OpenUpload, owner: UploadOwner): void {
    registry.release(upload, owner);
    ctx.metrics.uploadsActive.set(registry.ownedCount);
  }

  /** Stream the request body into the upload from `offset`; the stall guard bounds its time. */
  async function receive(
    request: FastifyRequest,
    upload: OpenUpload,
    owner: RequestOwner,
    offset: number,
    tail: TailRecord | undefined,
    checksum: ChecksumHeader | undefined,
  ): Promise<PatchOutcome> {
    const guard = new StallGuard(request.raw, options);
    try {
      return await writePatch({
        upload,
        offset,
        tail,
        body: request.raw,
        checksum,
        durable: options.durable,
        hasher: ctx.hasher,
        progress,
        owned: () => upload.owner === owner,
        onBytes: (length) => guard.onBytes(length),
      });
    } finally {
      guard.stop();
    }
  }

  /**
   * After a body: answer the outcome, completing the upload when its last byte arrived. Returns
   * the new offset for a stored body; throws the refusal otherwise.
   */
  async function settleOutcome(
    upload: OpenUpload,
    owner: RequestOwner,
    outcome: PatchOutcome,
  ): Promise<number> {
    if (owner.evicted) throw new TusRefusal(httpErrorFor(owner.evicted));
    switch (outcome.kind) {
      case 'checksum-mismatch':
        throw new TusRefusal(HttpErrors.TUS_CHECKSUM_MISMATCH);
      case 'too-large':
        throw new TusRefusal(HttpErrors.TUS_TOO_LARGE, 'the body goes past Upload-Length');
      case 'conflict':
        throw new TusRefusal(HttpErrors.TUS_CONFLICT);
      case 'partial-writes-exceeded':
        throw new TusRefusal(HttpErrors.TUS_PATCH_TOO_SMALL, outcome.message);
      case 'tail-lost':
        // tus clients answer 409 with a HEAD, which now gives the chunk's start.
        throw new TusRefusal(
          HttpErrors.TUS_OFFSET_MISMATCH,
          'the bytes kept of this chunk failed their check and were dropped; HEAD gives the offset to send from',
        );
      case 'storage':
        throw outcome.error;
      default:
        break;
    }
    const { offset } = await progress.offsetOf(upload);
    if (offset === upload.info.fileSize && !upload.completed) await complete(upload);
    return offset;
  }

  async function complete(upload: OpenUpload): Promise<void> {
    const { fresh } = await upload.complete(undefined);
    if (!fresh) return;
    ctx.completed(upload);
    await progress.forget(upload.id);
    ctx.log.info({ upload: upload.id, size: upload.info.fileSize }, 'tus upload completed');
  }

  function uploadHeaders(reply: FastifyReply, upload: OpenUpload, offset: number): FastifyReply {
    reply.header('Upload-Offset', String(offset));
    const expires = expiresAt(upload);
    if (expires) reply.header('Upload-Expires', expires);
    return reply;
  }

  /** Create the stored upload of `fileSize` bytes (id and secret given for a pending one). */
  async function createUpload(
    request: FastifyRequest,
    client: string,
    fileSize: number,
    metadata: Record<string, string>,
    owner: RequestOwner,
    preset?: PendingUpload,
  ): Promise<{ upload: OpenUpload; secret: Uint8Array }> {
    await registry.checkSizeAndSpace(fileSize);
    if (!preset && !ctx.openRate.take(clientAddress(request.ip))) {
      throw new ProtocolError(
        Errors.TOO_MANY_UPLOADS,
        `more than ${options.opensPerSecond} new uploads per second from this address; retry shortly`,
      );
    }
    const { name, contentType } = nameAndType(metadata);
    const message: OpenMessage = {
      type: 'open',
      fileSize,
      chunkSize: 0,
      name,
      contentType,
      token: '',
      metadata,
    };
    const refusal = registry.reserveSlot(owner.address);
    if (refusal !== undefined) throw new TusRefusal(HttpErrors.TUS_BUSY, refusal);
    try {
      const created = await registry.create(
        message,
        owner,
        client,
        preset
          ? { id: preset.id, secretHash: preset.secretHash, createdAt: preset.createdAt }
          : undefined,
        undefined,
        undefined,
        true,
      );
      ctx.metrics.uploadsActive.set(registry.ownedCount);
      request.log.info({ upload: created.upload.id, size: fileSize, tus: true }, 'upload created');
      return { upload: created.upload, secret: created.secret };
    } finally {
      registry.releaseSlot(owner.address);
    }
  }

  // ------------------------------------------------------------------------------------------

  await scope.register(async (tus) => {
    // Bodies are streamed into the store by the handlers, never parsed or buffered by Fastify.
    tus.removeAllContentTypeParsers();
    tus.addContentTypeParser('*', (_request, _payload, done) => done(null));

    tus.addHook('onRequest', async (request, reply) => {
      reply.header('Tus-Resumable', TUS_VERSION);
      for (const [name, value] of Object.entries(corsHeaders(request, options.origins)))
        reply.header(name, value);
      if (request.method === 'OPTIONS') return;
      if (!speaksTus(request.headers['tus-resumable'])) {
        reply.header('Tus-Version', TUS_VERSION);
        await refuse(request, reply, new TusRefusal(HttpErrors.TUS_VERSION_UNSUPPORTED));
      }
    });
    tus.addHook('onSend', async (_request, reply) => {
      reply.header('Cache-Control', 'no-store');
    });

    const discover = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
      reply
        .header('Tus-Version', TUS_VERSION)
        .header('Tus-Extension', TUS_EXTENSIONS.join(','))
        .header('Tus-Max-Size', String(options.maxUploadSize))
        .header('Tus-Checksum-Algorithm', CHECKSUM_ALGORITHMS.join(','))
        .code(204)
        .send();

    const create = guarded(async (request, reply) => {
      const who = access(request);
      const fileSize = parseSize('Upload-Length', request.headers['upload-length']);
      const deferred = parseDeferLength(request.headers['upload-defer-length']);
      if ((fileSize === undefined) === !deferred)
        throw new TusRefusal(
          HttpErrors.TUS_BAD_HEADER,
          'send exactly one of Upload-Length and Upload-Defer-Length: 1',
        );
      const metadata = withoutEmptyRelativePath(parseMetadata(request.headers['upload-metadata']));
      const body = hasBody(request);
      if (body) requireOctetStream(request);
      const checksum = body ? checksumOf(request) : undefined;
      if (fileSize !== undefined && fileSize > options.maxUploadSize)
        throw new TusRefusal(
          HttpErrors.TUS_TOO_LARGE,
          `Upload-Length exceeds the limit of ${options.maxUploadSize} bytes`,
        );
      const { name, contentType } = nameAndType(metadata);
      if (Buffer.byteLength(contentType) > 255)
        throw new TusRefusal(HttpErrors.TUS_BAD_HEADER, 'the file type is longer than 255 bytes');
      const client = await admitCreation(request, who, options, { fileSize, name, contentType });
      if (fileSize === undefined) {
        // creation-defer-length: nothing is stored until the length is known (pending.ts).
        if (body)
          throw new TusRefusal(
            HttpErrors.TUS_BAD_HEADER,
            'a creation with a deferred length takes no body; send it with the first PATCH, and Upload-Length with it',
          );
        if (!ctx.openRate.take(clientAddress(request.ip)))
          throw new ProtocolError(
            Errors.TOO_MANY_UPLOADS,
            'too many new uploads from this address; retry shortly',
          );
        const record = await pending.create(client, metadata);
        return reply
          .code(201)
          .header('Location', location(request, record.id))
          .header('Bigup-Upload-Id', record.id)
          .header('Bigup-Secret', bytesToHex(record.secret))
          .header('Upload-Expires', new Date(record.createdAt + pending.ttl).toUTCString())
          .send();
      }
      const owner = new RequestOwner(request.raw, clientAddress(request.ip));
      const { upload, secret } = await createUpload(request, client, fileSize, metadata, owner);
      let offset = 0;
      try {
        if (body)
          offset = await settleOutcome(
            upload,
            owner,
            await receive(request, upload, owner, 0, undefined, checksum),
          );
        else if (fileSize === 0) await complete(upload);
      } finally {
        letGo(upload, owner);
      }
      reply
        .code(201)
        .header('Location', location(request, upload.id))
        .header('Bigup-Upload-Id', upload.id)
        .header('Bigup-Secret', bytesToHex(secret));
      if (body) uploadHeaders(reply, upload, offset);
      else {
        const expires = expiresAt(upload);
        if (expires) reply.header('Upload-Expires', expires);
      }
      return reply.send();
    });

    /** Deferred-length uploads whose first PATCH is creating them (one at a time per id). */
    const fromPending = new Set<string>();

    /**
     * The first PATCH of a deferred-length upload: the length must come now (see module comment).
     * The upload stored under the announced id, owned by `owner`; undefined when the PATCH gives
     * no length yet (nothing to store).
     */
    async function storeFromPending(
      request: FastifyRequest,
      who: ReturnType<typeof access>,
      id: string,
      waiting: PendingUpload,
      { offset, length }: { offset: number; length: number | undefined },
      owner: RequestOwner,
    ): Promise<OpenUpload | undefined> {
      await admitUploadRequest(request, who, options, id, waiting.client);
      if (offset !== 0) throw new TusRefusal(HttpErrors.TUS_OFFSET_MISMATCH);
      if (length === undefined) {
        if (hasBody(request))
          throw new TusRefusal(
            HttpErrors.TUS_BAD_HEADER,
            'send Upload-Length with the first PATCH of a deferred-length upload',
          );
        return undefined;
      }
      if (length > options.maxUploadSize)
        throw new TusRefusal(
          HttpErrors.TUS_TOO_LARGE,
          `Upload-Length exceeds the limit of ${options.maxUploadSize} bytes`,
        );
      await admitCreation(request, who, options, {
        fileSize: length,
        ...nameAndType(waiting.metadata),
      });
      const { upload } = await createUpload(
        request,
        waiting.client,
        length,
        waiting.metadata,
        owner,
        waiting,
      );
      try {
        await pending.remove(id);
      } catch (error) {
        // The upload is stored: it must not stay owned by a request that failed.
        letGo(upload, owner);
        throw error;
      }
      return upload;
    }

    const patch = guarded(async (request, reply) => {
      const who = access(request);
      const id = uploadIdOf(request);
      requireOctetStream(request);
      const offset = parseSize('Upload-Offset', request.headers['upload-offset']);
      if (offset === undefined)
        throw new TusRefusal(HttpErrors.TUS_BAD_HEADER, 'Upload-Offset is required');
      const length = parseSize('Upload-Length', request.headers['upload-length']);
      const contentLength = parseSize('Content-Length', request.headers['content-length']);
      const checksum = checksumOf(request);
      const owner = new RequestOwner(request.raw, clientAddress(request.ip));
      let upload: OpenUpload;
      // Two first PATCHes at once would both create the upload from the one record (the second
      // creation fails after reserving its quota a second time, which nothing then releases): one
      // request at a time looks at the record and stores from it, as PATCHes of a stored upload
      // are one at a time. Taken before the read, so no request acts on a record read stale.
      if (fromPending.has(id)) throw new TusRefusal(HttpErrors.TUS_LOCKED);
      fromPending.add(id);
      let waiting: PendingUpload | undefined;
      let created: OpenUpload | undefined;
      try {
        waiting = await announced(id);
        if (waiting)
          created = await storeFromPending(request, who, id, waiting, { offset, length }, owner);
      } finally {
        fromPending.delete(id);
      }
      if (waiting) {
        if (created === undefined) return reply.code(204).header('Upload-Offset', '0').send();
        upload = created;
      } else {
        // What needs no open upload is checked first: a refused request opens nothing.
        const info = await infoOf(id);
        await admitUploadRequest(request, who, options, id, info.client);
        if (length !== undefined && length !== info.fileSize)
          throw new TusRefusal(HttpErrors.TUS_BAD_HEADER, 'Upload-Length cannot change');
        if (contentLength !== undefined && offset + contentLength > info.fileSize)
          throw new TusRefusal(HttpErrors.TUS_TOO_LARGE, 'the body goes past Upload-Length');
        upload = await claimForWriting(id, owner);
      }
      try {
        const size = upload.info.fileSize;
        if (length !== undefined && length !== size)
          throw new TusRefusal(HttpErrors.TUS_BAD_HEADER, 'Upload-Length cannot change');
        const { offset: current, tail } = await progress.offsetOf(upload);
        if (offset !== current)
          throw new TusRefusal(
            HttpErrors.TUS_OFFSET_MISMATCH,
            `Upload-Offset ${offset} does not match the upload's offset ${current}`,
          );
        if (contentLength !== undefined && offset + contentLength > size)
          throw new TusRefusal(HttpErrors.TUS_TOO_LARGE, 'the body goes past Upload-Length');
        const newOffset = upload.completed
          ? size
          : await settleOutcome(
              upload,
              owner,
              await receive(request, upload, owner, offset, tail, checksum),
            );
        if (newOffset === size && size === 0 && !upload.completed) await complete(upload);
        return uploadHeaders(reply, upload, newOffset).code(204).send();
      } finally {
        letGo(upload, owner);
      }
    });

    const head = guarded(async (request, reply) => {
      const who = access(request);
      const id = uploadIdOf(request);
      const waiting = await announced(id);
      if (waiting) {
        await admitUploadRequest(request, who, options, id, waiting.client);
        if (waiting.metadata && Object.keys(waiting.metadata).length > 0)
          reply.header('Upload-Metadata', formatMetadata(waiting.metadata));
        return reply
          .code(200)
          .header('Upload-Offset', '0')
          .header('Upload-Defer-Length', '1')
          .header('Upload-Expires', new Date(waiting.createdAt + pending.ttl).toUTCString())
          .send();
      }
      await admitUploadRequest(request, who, options, id, (await infoOf(id)).client);
      // Read-only: a loaded upload is looked at where it is (even while a PATCH writes it);
      // otherwise it is loaded for the moment of the answer.
      let upload = registry.peek(id);
      let owner: HeadReader | undefined;
      if (!upload) {
        owner = new HeadReader(clientAddress(request.ip));
        const claimed = await registry.claim(id, owner);
        if (claimed === undefined) throw new TusRefusal(HttpErrors.NOT_FOUND);
        if (claimed === 'locked') {
          owner = undefined;
          upload = registry.peek(id);
          if (!upload) throw new TusRefusal(HttpErrors.TUS_LOCKED);
        } else {
          upload = claimed;
        }
      }
      try {
        const { offset } = await progress.offsetOf(upload);
        if (Object.keys(upload.info.metadata).length > 0)
          reply.header('Upload-Metadata', formatMetadata(upload.info.metadata));
        return uploadHeaders(reply, upload, offset)
          .header('Upload-Length', String(upload.info.fileSize))
          .code(200)
          .send();
      } finally {
        if (owner) letGo(upload, owner);
      }
    });

    const terminate = guarded(async (request, reply) => {
      const who = access(request);
      const id = uploadIdOf(request);
      const waiting = await announced(id);
      if (waiting) {
        await admitUploadRequest(request, who, options, id, waiting.client);
        await pending.remove(id);
        return reply.code(204).send();
      }
      await admitUploadRequest(request, who, options, id, (await infoOf(id)).client);
      if (!(await registry.remove(id))) throw new TusRefusal(HttpErrors.NOT_FOUND);
      await progress.forget(id);
      request.log.info({ upload: id }, 'tus upload terminated');
      return reply.code(204).send();
    });

    /** X-HTTP-Method-Override, for clients behind proxies that drop PATCH and DELETE. */
    const overridden = guarded(async (request, reply) => {
      const method = String(request.headers['x-http-method-override'] ?? '').toUpperCase();
      if (method === 'PATCH') return patch(request, reply);
      if (method === 'DELETE') return terminate(request, reply);
      if (method === 'HEAD') return head(request, reply);
      throw new TusRefusal(HttpErrors.NOT_FOUND);
    });

    const root = base;
    const rootNoSlash = base.slice(0, -1);
    for (const url of [root, rootNoSlash]) {
      tus.options(url, discover);
      tus.post(url, create);
    }
    const one = `${base}:id`;
    tus.options(one, discover);
    tus.route({ method: 'HEAD', url: one, handler: head });
    tus.patch(one, patch);
    tus.delete(one, terminate);
    tus.post(one, overridden);
  });
}
