/**
 * The big-uploader Fastify plugin: the bigup.1 WebSocket endpoint, the HTTP state routes, the
 * sweeper and background sync, wired to a store. Register it in any Fastify 5 app:
 *
 *   await app.register(bigUploader, { dir: './data', token: process.env.UPLOAD_TOKEN });
 *   app.bigUploader.events.on('upload-complete', (u) => ...);
 *
 * `fastify.bigUploader` is decorated on the instance that registers the plugin (fastify-plugin),
 * while the routes live in an encapsulated child context, so `{ prefix: '/files' }` moves every
 * route and the app's own hooks and routes stay untouched.
 *
 * Logging: the upgrade URL may carry `?token=`; build the app with `loggerOptions()` (or your own
 * req serializer that drops the query string) so tokens never reach the logs.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { HeaderSize, SUPPORTED_SUBPROTOCOLS, hashToHex } from '../protocol/index.js';
import { loadNodeHasher } from '../protocol/native-hasher.js';
import { handshakeGuard, hostAllowed } from './handshake.js';
import { HttpBinding } from './http-binding.js';
import { HttpErrors, sendHttpError } from './http-errors.js';
import { registerHttpRoutes } from './http.js';
import { ServerMetrics } from './metrics.js';
import {
  OptionsError,
  resolveOptions,
  type BigUploaderOptions,
  type CompletedUpload,
  type ResolvedOptions,
} from './options.js';
import { OpenRateLimiter } from './quota.js';
import { Session } from './session.js';
import { DiskStore } from './store/disk-store.js';
import type { UploadStore } from './store/types.js';
import { Sweeper } from './sweeper.js';
import { registerTusRoutes } from './tus/routes.js';
import type { OpenUpload } from './upload.js';
import { UploadRegistry } from './uploads.js';

/** Events on `fastify.bigUploader.events`. */
export interface BigUploaderEvents {
  'upload-complete': [upload: CompletedUpload];
}

/** What the plugin decorates the Fastify instance with. */
export interface BigUploaderInstance {
  readonly options: ResolvedOptions;
  readonly store: UploadStore;
  readonly metrics: ServerMetrics;
  readonly events: EventEmitter<BigUploaderEvents>;
  /** Run one TTL sweep now; resolves to the number of uploads removed. */
  sweep(now?: number): Promise<number>;
  /** Graceful stop of the upload side (also run by app.close()). Idempotent. */
  shutdown(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    bigUploader: BigUploaderInstance;
  }
}

/** Options Fastify itself reads from `register(plugin, options)`; they are not ours to refuse. */
const FASTIFY_REGISTER_OPTIONS = ['prefix', 'logLevel', 'logSerializers'] as const;

export interface BigUploaderPluginOptions extends BigUploaderOptions {
  /** Prefix of every route of the plugin (the WebSocket endpoint, /uploads, /healthz, /metrics). */
  prefix?: string;
}

const plugin: FastifyPluginAsync<BigUploaderPluginOptions> = async (
  fastify: FastifyInstance,
  input: BigUploaderPluginOptions,
) => {
  const { prefix, ...ours } = input;
  for (const name of FASTIFY_REGISTER_OPTIONS) delete (ours as Record<string, unknown>)[name];
  const options = resolveOptions(ours);
  if (
    prefix !== undefined &&
    (typeof prefix !== 'string' || (prefix !== '' && !prefix.startsWith('/')))
  ) {
    throw new OptionsError('big-uploader option prefix must be a path starting with "/"');
  }
  const store: UploadStore =
    options.store ??
    new DiskStore({
      dir: options.dir,
      preallocate: options.preallocate,
      minFreeInodes: options.minFreeInodes,
      groupReadable: options.groupReadable,
      logger: fastify.log,
    });
  await store.init();
  const hasher = await loadNodeHasher();
  const metrics = new ServerMetrics();
  store.setQuotaLimits?.(options);
  store.setObserver?.((backend, operation, seconds, error) =>
    metrics.observeBackend(backend, operation, seconds, error),
  );
  const registry = new UploadRegistry(store, options, hasher, metrics, fastify.log);
  await registry.restoreReservations();
  const openRate = new OpenRateLimiter(options.opensPerSecond, options.openBurst);
  const multiplexedOpenRate = new OpenRateLimiter(
    options.multiplexedOpensPerSecond,
    Math.max(1, options.multiplexedOpensPerSecond),
  );
  const events = new EventEmitter<BigUploaderEvents>();
  const sessions = new Set<Session>();
  /** Upgrade requests that passed the handshake checks and have no session yet. */
  const upgrading = new Set<IncomingMessage>();
  // Behind a proxy that is not trusted, every client has the proxy's address and shares the
  // per-address bounds with all the others: said once, when a forwarded request first shows it.
  let untrustedProxyNoted = false;
  fastify.addHook('onRequest', async (request) => {
    if (untrustedProxyNoted || request.headers['x-forwarded-for'] === undefined) return;
    if (request.ip !== request.socket.remoteAddress) return;
    untrustedProxyNoted = true;
    fastify.log.warn(
      { from: request.ip },
      'a request carries X-Forwarded-For from an address not trusted as a proxy: if a proxy is in front, set trustProxy (serve --trust-proxy), or every client counts as its address for the per-address bounds',
    );
  });
  const sweeper = new Sweeper(
    store,
    registry,
    options.ttl,
    options.emptyUploadTtl,
    options.sweepBatch,
    metrics,
    fastify.log,
  );
  let shuttingDown = false;
  let shutdownRun: Promise<void> | undefined;

  const completed = (upload: OpenUpload): void => {
    registry.completed(upload.id);
    const info: CompletedUpload = {
      id: upload.id,
      name: upload.info.name,
      contentType: upload.info.contentType,
      metadata: upload.info.metadata,
      fileSize: upload.info.fileSize,
      digest: upload.completion?.digest ?? hashToHex(upload.digest()),
      location: upload.completion?.location ?? '',
    };
    events.emit('upload-complete', info);
    const onUploadComplete = options.onUploadComplete;
    if (onUploadComplete) {
      Promise.resolve()
        .then(() => onUploadComplete(info))
        .catch((error: unknown) =>
          fastify.log.error({ err: error, upload: upload.id }, 'onUploadComplete failed'),
        );
    }
  };

  // The HTTP binding's leases are sessions too (server/http-binding.ts): ticked and shut down here.
  const httpBinding = new HttpBinding({
    options,
    registry,
    hasher,
    metrics,
    openRate,
    shuttingDown: () => shuttingDown,
    completed,
  });

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, run: () => void): void => {
    const timer = setInterval(run, ms);
    timer.unref();
    timers.push(timer);
  };
  const tickMs = Math.max(
    20,
    Math.min(1000, Math.floor(Math.min(options.idleTimeout, options.throughputWindow) / 4)),
  );
  every(tickMs, () => {
    const now = Date.now();
    for (const session of sessions) session.tick(now);
    httpBinding.tick(now);
  });
  every(options.heartbeatInterval, () => {
    for (const session of sessions) session.heartbeat();
  });
  if (!options.durable) {
    every(options.syncInterval, () => {
      registry
        .checkpointAll()
        .catch((error: unknown) => fastify.log.error({ err: error }, 'background sync failed'));
    });
  }
  sweeper.start(options.sweepInterval);

  async function shutdown(): Promise<void> {
    shutdownRun ??= (async () => {
      shuttingDown = true;
      for (const t of timers) clearInterval(t);
      await sweeper.stop();
      const goodbyes = Promise.all(
        [...sessions].map((s) => s.shutdown()).concat(httpBinding.shutdown()),
      );
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.shutdownTimeout);
      });
      await Promise.race([goodbyes, timeout]);
      clearTimeout(timer);
      await registry.closeAll(options.shutdownTimeout);
      fastify.log.info('big-uploader stopped: journals flushed');
    })();
    return shutdownRun;
  }

  // Refuse oversized messages at the frame header, before buffering them.
  const maxPayload = options.maxChunkSize + HeaderSize.DATA;
  if (!fastify.hasDecorator('websocketServer')) {
    // @fastify/websocket, registered in our child context below, sends every upgrade request of
    // the server through routing, but its clean-up hook only sees our routes: an upgrade to any
    // other path gets its HTTP answer (404) and then its socket must be closed here, or it stays
    // open (a descriptor per request, and app.close() waits on it).
    fastify.addHook('onResponse', async (request, reply) => {
      if (request.headers.upgrade !== undefined) reply.raw.socket?.destroy();
    });
  }
  const routes = async (scope: FastifyInstance): Promise<void> => {
    // Every route, the WebSocket upgrade included, first checks the Host (DNS rebinding).
    scope.addHook('onRequest', async (request, reply) => {
      if (!hostAllowed(request, options)) {
        request.log.warn(
          { host: request.headers.host },
          'request refused: Host not allowed (see the allowedHosts option)',
        );
        await sendHttpError(reply, HttpErrors.HOST_NOT_ALLOWED);
        return;
      }
      // @fastify/websocket would complete an upgrade on any route of this scope (101, then a
      // close); a client aimed at /healthz or /uploads/:id must learn at once that the URL is wrong.
      const upgrade = request.headers.upgrade;
      if (
        typeof upgrade === 'string' &&
        /\bwebsocket\b/i.test(upgrade) &&
        !(request.routeOptions.config as { bigupEndpoint?: boolean } | undefined)?.bigupEndpoint
      ) {
        await sendHttpError(reply, HttpErrors.NOT_FOUND);
      }
    });
    // Faults answer a code and a generic message: no errno, path or stack leaves the server.
    scope.setErrorHandler(async (error: FastifyError, request, reply) => {
      const status = error.statusCode ?? 500;
      if (status >= 500) {
        request.log.error({ err: error }, 'big-uploader route failed');
        return sendHttpError(reply, HttpErrors.INTERNAL_ERROR);
      }
      return reply.code(status).send({ code: error.code ?? 'BAD_REQUEST', error: error.message });
    });
    if (!scope.hasDecorator('websocketServer')) {
      await scope.register(websocket, {
        options: {
          maxPayload,
          perMessageDeflate: false,
          // The first version the client offers that we speak: its order is its preference (SPEC.md 3.2).
          handleProtocols: (protocols: Set<string>) =>
            [...protocols].find((p) => SUPPORTED_SUBPROTOCOLS.includes(p)) ?? false,
        },
        preClose: async function preClose(this: FastifyInstance) {
          await shutdown();
          // Whatever did not close within the shutdown timeout is cut now.
          for (const client of this.websocketServer.clients) client.terminate();
          await new Promise<void>((resolve) => this.websocketServer.close(() => resolve()));
        },
        errorHandler: (error: Error, socket: WebSocket) => {
          scope.log.debug({ err: error }, 'websocket error');
          socket.terminate();
        },
      });
    } else {
      scope.addHook('preClose', shutdown);
    }

    scope.get(
      options.path,
      {
        websocket: true,
        config: { bigupEndpoint: true },
        onRequest: [
          withoutCompressionOffer,
          handshakeGuard(options, {
            connections: () => sessions.size + upgrading.size,
            shuttingDown: () => shuttingDown,
            admitted: (request) => {
              // Counted from the check to the session (or the socket's end), so upgrades racing
              // past the check cannot exceed maxConnections.
              const raw = request.raw;
              upgrading.add(raw);
              raw.socket.once('close', () => upgrading.delete(raw));
            },
          }),
        ],
      },
      (socket, request) => {
        upgrading.delete(request.raw);
        if (!speaksBigup(socket)) {
          // An app-wide WebSocket server chose another subprotocol: this endpoint speaks only bigup.
          socket.close(1002, `subprotocol ${SUPPORTED_SUBPROTOCOLS.join(' or ')} required`);
          return;
        }
        const session = new Session(socket, request, {
          options,
          registry,
          hasher,
          metrics,
          openRate,
          multiplexedOpenRate,
          shuttingDown: () => shuttingDown,
          completed,
        });
        sessions.add(session);
        metrics.connections.set(sessions.size);
        socket.on('close', () => {
          sessions.delete(session);
          metrics.connections.set(sessions.size);
        });
      },
    );

    if (options.httpBinding) httpBinding.register(scope);
    registerHttpRoutes(scope, {
      options,
      store,
      registry,
      metrics,
      shuttingDown: () => shuttingDown,
    });
    await registerTusRoutes(scope, {
      options,
      registry,
      store,
      hasher,
      metrics,
      openRate,
      // Tus records (server/tus/tail.ts) live beside the disk store's directories.
      stateDir: store instanceof DiskStore ? store.dir : options.dir,
      log: fastify.log,
      shuttingDown: () => shuttingDown,
      completed,
    });
  };
  await fastify.register(routes, prefix ? { prefix } : {});

  fastify.decorate('bigUploader', {
    options,
    store,
    metrics,
    events,
    sweep: (now?: number) => sweeper.sweep(now),
    shutdown,
  } satisfies BigUploaderInstance);

  fastify.addHook('onClose', async () => {
    await shutdown();
    // A store the plugin made is the plugin's to close; one passed in is its maker's.
    if (!options.store) await store.close?.();
  });
};

/**
 * DATA is already compressed or incompressible, and inflating a client's frames costs memory we
 * do not bound: the extension offer is dropped before the upgrade, so no WebSocket server (ours or
 * an app-wide one with permessage-deflate on) can negotiate it on this route.
 */
async function withoutCompressionOffer(request: FastifyRequest): Promise<void> {
  delete request.raw.headers['sec-websocket-extensions'];
}

/**
 * When the app registered @fastify/websocket itself, its server-wide options apply to every
 * route: the subprotocol must still be bigup.2 or bigup.1. The largest message is put back on the socket by
 * the Session, which sets it (before the first frame) to the largest OPEN and raises it to one
 * chunk at ACCEPT, whatever the app-wide server allows.
 */
function speaksBigup(socket: WebSocket): boolean {
  return SUPPORTED_SUBPROTOCOLS.includes(socket.protocol);
}

/** The big-uploader Fastify plugin (named `big-uploader`, Fastify 5). */
export const bigUploader = fp(plugin, { name: 'big-uploader', fastify: '5.x' });
export default bigUploader;
