/**
 * The plain HTTP surface: upload state and removal (`/uploads/:id`), health and metrics.
 * State requests need the admin token (Bearer) or the upload's resume secret (`Bigup-Secret`);
 * a malformed id, an unknown id and a wrong secret all get the same 404.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Limits, parseSecret, parseUploadId } from '../protocol/index.js';
import { SHA256_BYTES } from './constant-time.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedOptions } from './options.js';
import { requestToken, tokenMatches } from './handshake.js';
import { HttpErrors, httpErrorBody, sendHttpError } from './http-errors.js';
import type { StoredUpload, UploadInfo, UploadStore } from './store/types.js';
import { UploadRegistry, isDamage } from './uploads.js';

/** What GET /uploads/:id answers. */
export interface UploadStateBody {
  readonly id: string;
  /** 'damaged': the server found its record of the upload damaged (SPEC.md 7.2); ranges are empty. */
  readonly state: 'uploading' | 'completed' | 'damaged';
  readonly name: string;
  readonly contentType: string;
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly ackedBytes: number;
  readonly ranges: ReadonlyArray<{ start: number; end: number }>;
  readonly connected: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly digest?: string;
}

const NOT_FOUND = httpErrorBody(HttpErrors.NOT_FOUND);

export interface HttpContext {
  readonly options: ResolvedOptions;
  readonly store: UploadStore;
  readonly registry: UploadRegistry;
  readonly metrics: ServerMetrics;
  readonly shuttingDown: () => boolean;
}

export function registerHttpRoutes(fastify: FastifyInstance, ctx: HttpContext): void {
  /**
   * What `read` finds, or undefined. Unreadable metadata counts as unknown here: there is no
   * secret hash to authorize against and no size to report (SPEC.md 12).
   */
  async function readOrUnknown<T>(
    id: string,
    log: FastifyRequest['log'],
    read: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    try {
      return await read();
    } catch (error) {
      // Anything else unreadable is unknown too: an unauthenticated caller must not learn an
      // errno or a path from it. The operator finds it in the log.
      if (!isDamage(error))
        log.error({ err: error, upload: id }, 'cannot read an upload record; answered 404');
      return undefined;
    }
  }

  const readState = (id: string, log: FastifyRequest['log']): Promise<StoredUpload | undefined> =>
    readOrUnknown(id, log, () => ctx.store.readState(id));

  /** The info for checking a secret: no chunk records, so a wrong secret costs one small read. */
  const readInfo = (id: string, log: FastifyRequest['log']): Promise<UploadInfo | undefined> =>
    readOrUnknown(id, log, () => ctx.registry.storedInfo(id));

  /** The id if the request may see this upload, else undefined (the caller answers 404). */
  async function authorize(
    request: FastifyRequest<{ Params: { id: string } }>,
  ): Promise<string | undefined> {
    const id = request.params.id;
    if (!parseUploadId(id)) return undefined;
    // Any upload: the admin token only (the server token lets a client upload, not manage others').
    const bearer = requestToken(request, false);
    if (
      bearer !== undefined &&
      ctx.options.adminTokens.length > 0 &&
      tokenMatches(bearer, ctx.options.adminTokens)
    ) {
      return (ctx.registry.peek(id) ?? (await readInfo(id, request.log))) ? id : undefined;
    }
    const header = request.headers['bigup-secret'];
    const secret =
      typeof header === 'string' ? parseSecret(header.trim().toLowerCase()) : undefined;
    const info = ctx.registry.peek(id)?.info ?? (await readInfo(id, request.log));
    // Hash even when the id is unknown, so both answers take comparable time.
    const ok = UploadRegistry.secretMatches(
      info?.secretHash ?? '00'.repeat(SHA256_BYTES),
      secret ?? new Uint8Array(Limits.SECRET_BYTES),
    );
    return info && secret && ok ? id : undefined;
  }

  // Upload state is per user and changes every second: never cached (SPEC.md section 12).
  fastify.addHook('onSend', async (request, reply) => {
    if (request.routeOptions.url?.endsWith('/uploads/:id'))
      reply.header('Cache-Control', 'no-store');
  });

  fastify.get<{ Params: { id: string } }>(
    '/uploads/:id',
    async (request, reply): Promise<UploadStateBody | typeof NOT_FOUND> => {
      const id = await authorize(request);
      if (!id) return reply.code(404).send(NOT_FOUND);
      const loaded = ctx.registry.peek(id);
      const stored = loaded ? undefined : await readState(id, request.log);
      const info = loaded?.info ?? stored?.info;
      if (!info) return reply.code(404).send(NOT_FOUND);
      let ranges: Array<{ start: number; end: number }>;
      const completion = loaded?.completion ?? stored?.completion;
      if (loaded) {
        ranges = loaded.ranges();
      } else {
        ranges = [];
        const chunks = [...(stored?.chunks ?? [])].sort((a, b) => a.index - b.index);
        for (const { index } of chunks) {
          const start = index * info.chunkSize;
          const end = Math.min(start + info.chunkSize, info.fileSize);
          const last = ranges[ranges.length - 1];
          if (last && last.end >= start) last.end = Math.max(last.end, end);
          else ranges.push({ start, end });
        }
      }
      if (completion) ranges = info.fileSize > 0 ? [{ start: 0, end: info.fileSize }] : [];
      const ackedBytes = ranges.reduce((sum, r) => sum + r.end - r.start, 0);
      const updatedAt = loaded?.lastActivity ?? stored?.updatedAt ?? info.createdAt;
      return {
        id,
        state: completion ? 'completed' : stored?.damaged !== undefined ? 'damaged' : 'uploading',
        name: info.name,
        contentType: info.contentType,
        fileSize: info.fileSize,
        chunkSize: info.chunkSize,
        ackedBytes,
        ranges,
        connected: loaded?.owner !== undefined,
        createdAt: new Date(info.createdAt).toISOString(),
        updatedAt: new Date(updatedAt).toISOString(),
        ...(completion ? { digest: completion.digest } : {}),
      };
    },
  );

  fastify.delete<{ Params: { id: string } }>(
    '/uploads/:id',
    async (request, reply: FastifyReply) => {
      const id = await authorize(request);
      if (!id || !(await ctx.registry.remove(id))) return reply.code(404).send(NOT_FOUND);
      return reply.code(204).send();
    },
  );

  /**
   * Health and metrics describe the server: they need the admin token when one is set, else the
   * server token when one is set; answers 401 and returns true when the caller has neither.
   */
  function tokenRefused(request: FastifyRequest, reply: FastifyReply): boolean {
    const accepted =
      ctx.options.adminTokens.length > 0 ? ctx.options.adminTokens : ctx.options.tokens;
    if (accepted.length === 0) return false;
    const bearer = requestToken(request, false);
    if (bearer !== undefined && tokenMatches(bearer, accepted)) return false;
    void sendHttpError(reply.header('WWW-Authenticate', 'Bearer'), HttpErrors.TOKEN_REQUIRED);
    return true;
  }

  fastify.get('/healthz', async (request, reply) => {
    if (!ctx.options.publicHealth && tokenRefused(request, reply)) return reply;
    if (ctx.shuttingDown()) return reply.code(503).send({ status: 'shutting-down' });
    if (!ctx.store.health) return { status: 'ok' };
    // A node that cannot reach its bucket or registry cannot ack, and one whose disk failed a
    // directory fsync cannot complete until restarted (directory-syncs.ts); say so (503), so the
    // load balancer sends clients to a node that can and the operator restarts this one.
    const backends = await ctx.store.health();
    const ok = backends.store.ok && backends.registry.ok;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', ...backends });
  });

  if (!ctx.options.metrics) return;
  fastify.get('/metrics', async (request, reply) => {
    if (tokenRefused(request, reply)) return reply;
    reply.header('Content-Type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
