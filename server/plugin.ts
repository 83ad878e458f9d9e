/**
 * The big-uploader Fastify plugin: the bigup.1 WebSocket endpoint, the HTTP state routes, the
 * sweeper and background sync, wired to a store. Register it in any Fastify 5 app:
 *
 *   await app.register(bigUploader, { dir: './data', token: process.env.UPLOAD_TOKEN });
 *   app.bigUploader.events.on('upload-complete', (u) => ...);
 *
 * Logging: the upgrade URL may carry `?token=`; build the app with `loggerOptions()` (or your own
 * req serializer that drops the query string) so tokens never reach the logs.
 */
import { EventEmitter } from 'node:events';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { HeaderSize, SUBPROTOCOL_V1, hashToHex } from '../protocol/index.js';
import { loadNodeHasher } from '../protocol/native-hasher.js';
import { handshakeGuard } from './handshake.js';
import { registerHttpRoutes } from './http.js';
import { ServerMetrics } from './metrics.js';
import { resolveOptions, type BigUploaderOptions, type CompletedUpload, type ResolvedOptions } from './options.js';
import { Session } from './session.js';
import { DiskStore } from './store/disk-store.js';
import type { UploadStore } from './store/types.js';
import { Sweeper } from './sweeper.js';
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

const plugin: FastifyPluginAsync<BigUploaderOptions> = async (fastify: FastifyInstance, input: BigUploaderOptions) => {
  const options = resolveOptions(input);
  const store = options.store ?? new DiskStore({ dir: options.dir, preallocate: options.preallocate });
  await store.init();
  const hasher = await loadNodeHasher();
  const metrics = new ServerMetrics();
  const registry = new UploadRegistry(store, options, hasher, metrics, fastify.log);
  const events = new EventEmitter<BigUploaderEvents>();
  const sessions = new Set<Session>();
  const sweeper = new Sweeper(store, registry, options.ttl, metrics, fastify.log);
  let shuttingDown = false;
  let shutdownRun: Promise<void> | undefined;

  const completed = (upload: OpenUpload): void => {
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
    if (options.onUploadComplete) {
      Promise.resolve()
        .then(() => options.onUploadComplete!(info))
        .catch((error: unknown) => fastify.log.error({ err: error, upload: upload.id }, 'onUploadComplete failed'));
    }
  };

  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, run: () => void): void => {
    const timer = setInterval(run, ms);
    timer.unref();
    timers.push(timer);
  };
  const tickMs = Math.max(20, Math.min(1000, Math.floor(Math.min(options.idleTimeout, options.throughputWindow) / 4)));
  every(tickMs, () => {
    const now = Date.now();
    for (const session of sessions) session.tick(now);
  });
  every(options.heartbeatInterval, () => {
    for (const session of sessions) session.heartbeat();
  });
  if (!options.durable) {
    every(options.syncInterval, () => {
      registry.checkpointAll().catch((error: unknown) => fastify.log.error({ err: error }, 'background sync failed'));
    });
  }
  sweeper.start(options.sweepInterval);

  async function shutdown(): Promise<void> {
    shutdownRun ??= (async () => {
      shuttingDown = true;
      for (const t of timers) clearInterval(t);
      await sweeper.stop();
      const goodbyes = Promise.all([...sessions].map((s) => s.shutdown()));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, options.shutdownTimeout); });
      await Promise.race([goodbyes, timeout]);
      clearTimeout(timer);
      await registry.closeAll(options.shutdownTimeout);
      fastify.log.info('big-uploader stopped: journals flushed');
    })();
    return shutdownRun;
  }

  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(websocket, {
      options: {
        // Refuse oversized messages at the frame header, before buffering them.
        maxPayload: options.maxChunkSize + HeaderSize.DATA,
        perMessageDeflate: false,
        handleProtocols: (protocols: Set<string>) => (protocols.has(SUBPROTOCOL_V1) ? SUBPROTOCOL_V1 : false),
      },
      preClose: async function preClose(this: FastifyInstance) {
        await shutdown();
        // Whatever did not close within the shutdown timeout is cut now.
        for (const client of this.websocketServer.clients) client.terminate();
        await new Promise<void>((resolve) => this.websocketServer.close(() => resolve()));
      },
      errorHandler: (error: Error, socket: WebSocket) => {
        fastify.log.debug({ err: error }, 'websocket error');
        socket.terminate();
      },
    });
  } else {
    fastify.addHook('preClose', shutdown);
  }

  fastify.get(options.path, {
    websocket: true,
    onRequest: handshakeGuard(options, { connections: () => sessions.size, shuttingDown: () => shuttingDown }),
  }, (socket, request) => {
    const session = new Session(socket, request, {
      options,
      registry,
      hasher,
      metrics,
      shuttingDown: () => shuttingDown,
      completed,
    });
    session.attachRequest(request);
    sessions.add(session);
    metrics.connections.set(sessions.size);
    socket.on('close', () => {
      sessions.delete(session);
      metrics.connections.set(sessions.size);
    });
  });

  registerHttpRoutes(fastify, { options, store, registry, metrics, shuttingDown: () => shuttingDown });

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
  });
};

/** The big-uploader Fastify plugin (named `big-uploader`, Fastify 5). */
export const bigUploader = fp(plugin, { name: 'big-uploader', fastify: '5.x' });
export default bigUploader;
