/**
 * A ready-made Fastify app: the plugin, a static demo page, and logging that never records
 * tokens. Used by `big-uploader serve` and by the tests; apps with their own Fastify instance
 * register `bigUploader` instead.
 */
import { readFile, realpath } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { HttpErrors, sendHttpError } from './http-errors.js';
import { bigUploader } from './plugin.js';
import { OptionsError, resolveOptions, type BigUploaderOptions } from './options.js';

/**
 * Content-Security-Policy of the served page: inline styles for the demo's own <style> block, and
 * 'wasm-unsafe-eval' because the component hashes with xxHash64 compiled to WebAssembly.
 */
const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "worker-src 'self' blob:",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'self'",
].join('; ');

/**
 * The demo page built by `npm run build` (the <big-uploader> component wired to this server).
 * Compiled, this module is dist/server/app.js and the page is dist/demo; run from the TypeScript
 * sources (tests, `vite` dev), it is server/app.ts and the page is dist/demo of the checkout.
 */
export const DEFAULT_PAGE_DIR = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? '../dist/demo/' : '../demo/', import.meta.url),
);

export interface AppOptions extends BigUploaderOptions {
  /**
   * Directory served at `/` (index.html and assets), or false for no page. Default: the built demo
   * page ({@link DEFAULT_PAGE_DIR}); when it has not been built, `/` answers 404 and a warning is
   * logged. A `pageDir` that is given must exist.
   */
  pageDir?: string | false;
  /** pino level, or false for no logs. Default 'info'. */
  logLevel?: string | false;
  /**
   * Longest time a client may take to send a request's headers (ms); slower sockets are closed
   * (slowloris). Checked about every second. Default 10 s.
   */
  headersTimeout?: number;
  /**
   * Longest time from a request's start until its handler runs (ms): its headers and any body
   * Fastify reads itself (a JSON body on a management route); slower sockets are closed. Upload
   * bodies are not under it: a tus PATCH of many GiB, or an HTTP-binding chunk, is streamed by
   * its handler and bounded by `idleTimeout` and `minThroughput` (and `httpBodyTimeout`) instead,
   * so a long PATCH that keeps sending is never cut for its length (Node's own whole-request
   * `requestTimeout` is off for that reason). Default 30 s.
   */
  requestTimeout?: number;
  /**
   * TCP connections the server keeps open at once, HTTP and WebSocket together; more are closed
   * as they arrive. Default: `maxConnections` + 64 (room for page and state requests).
   */
  maxSockets?: number;
  /**
   * Reverse proxies whose `X-Forwarded-For` (and `-Proto`) the server believes: IP addresses or
   * CIDR ranges (Fastify's `trustProxy` as a list). Behind nginx without it, every client has the
   * proxy's address, so the per-address bounds (`opensPerSecond`, `maxUploadsPerAddress`, the
   * quotas) are shared by all of them. Default: none (the socket's address is the client's).
   */
  trustProxy?: readonly string[];
}

export const APP_DEFAULTS = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  extraSockets: 64,
} as const;

/**
 * `requestTimeout` (AppOptions): a request whose handler has not started that long after the
 * request did (headers, then any body Fastify parses) has its socket closed. Handlers that stream
 * an upload body start at once (their content parsers read nothing) and bound it themselves.
 */
function boundRequestsUntilHandled(app: FastifyInstance, requestTimeout: number): void {
  const timers = new WeakMap<object, NodeJS.Timeout>();
  const clear = (request: { raw: object }): void => {
    clearTimeout(timers.get(request.raw));
    timers.delete(request.raw);
  };
  app.addHook('onRequest', async (request) => {
    const timer = setTimeout(() => request.raw.socket.destroy(), requestTimeout);
    timer.unref();
    timers.set(request.raw, timer);
  });
  app.addHook('preHandler', async (request) => clear(request));
  app.addHook('onResponse', async (request) => clear(request));
  app.addHook('onRequestAbort', async (request) => clear(request));
}

/** Request URL without its query string: `?token=` must never reach a log line. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?[redacted]`;
}

/** Fastify logger options that keep tokens and secrets out of the logs. */
export function loggerOptions(level: string | false = 'info'): FastifyServerOptions['logger'] {
  if (level === false) return false;
  return {
    level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["bigup-secret"]'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method?: string; url?: string; ip?: string }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remoteAddress: req.ip,
      }),
    },
  };
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const {
    pageDir,
    logLevel: _logLevel,
    headersTimeout: headersInput,
    requestTimeout: requestInput,
    maxSockets: socketsInput,
    trustProxy,
    ...pluginOptions
  } = options;
  const headersTimeout = headersInput ?? APP_DEFAULTS.headersTimeout;
  if (!Number.isSafeInteger(headersTimeout) || headersTimeout < 100)
    throw new OptionsError('big-uploader option headersTimeout must be an integer >= 100 (ms)');
  const requestTimeout = requestInput ?? Math.max(APP_DEFAULTS.requestTimeout, headersTimeout);
  if (!Number.isSafeInteger(requestTimeout) || requestTimeout < headersTimeout)
    throw new OptionsError(
      'big-uploader option requestTimeout must be an integer (ms) no smaller than headersTimeout',
    );
  const maxSockets =
    socketsInput ?? resolveOptions(pluginOptions).maxConnections + APP_DEFAULTS.extraSockets;
  if (!Number.isSafeInteger(maxSockets) || maxSockets < 1)
    throw new OptionsError('big-uploader option maxSockets must be a positive integer');
  const app = Fastify({
    ...(trustProxy && trustProxy.length > 0 ? { trustProxy: [...trustProxy] } : {}),
    logger: loggerOptions(options.logLevel ?? 'info'),
    forceCloseConnections: true,
    // While closing, requests still reach our hooks: a foreign Host gets its 403 and an upgrade
    // its 503 SHUTTING_DOWN with Retry-After (SPEC.md 3.3, 3.5), and an upgrade's socket is closed
    // after its answer instead of holding close() open.
    return503OnClosing: false,
    // Node's own defaults let a socket send its headers for 60 s and check only every 30 s.
    serverFactory: (handler) => {
      const server = createServer(
        {
          headersTimeout,
          // Whole-request deadlines would cut a long PATCH; see AppOptions.requestTimeout.
          requestTimeout: 0,
          connectionsCheckingInterval: Math.min(1000, headersTimeout),
        },
        handler,
      );
      server.maxConnections = maxSockets;
      return server;
    },
  });
  boundRequestsUntilHandled(app, requestTimeout);
  await app.register(bigUploader, pluginOptions);
  if (pageDir === false) return app;
  let root: string;
  try {
    root = await realpath(pageDir ?? DEFAULT_PAGE_DIR);
  } catch (error) {
    if (pageDir !== undefined)
      throw new OptionsError(
        `big-uploader: page directory ${pageDir} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    app.log.warn(
      `the demo page is not built (${DEFAULT_PAGE_DIR}): run \`npm run build\`; / answers 404`,
    );
    return app;
  }

  // The page loads only its own scripts; its upload worker is a Blob URL; it may talk to any
  // WebSocket endpoint it is configured with; nobody may frame it (clickjacking) or sniff types.
  app.addHook('onSend', async (request, reply) => {
    if (request.routeOptions.url !== '/*') return;
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Content-Security-Policy', PAGE_CSP);
    reply.header('X-Frame-Options', 'SAMEORIGIN');
    reply.header('Referrer-Policy', 'no-referrer');
  });
  // A tiny static handler: GET only, resolved inside `root` (no traversal), unknown paths 404.
  app.get('/*', async (request, reply) => {
    const raw = (request.params as { '*': string })['*'] || 'index.html';
    let target: string;
    try {
      target = resolve(root, decodeURIComponent(raw));
    } catch {
      return sendHttpError(reply, HttpErrors.NOT_FOUND);
    }
    if (target !== root && !target.startsWith(root + sep))
      return sendHttpError(reply, HttpErrors.NOT_FOUND);
    let real: string;
    try {
      real = await realpath(target);
    } catch {
      return sendHttpError(reply, HttpErrors.NOT_FOUND);
    }
    if (!real.startsWith(root + sep)) return sendHttpError(reply, HttpErrors.NOT_FOUND);
    try {
      const body = await readFile(real);
      return reply.type(TYPES[extname(real)] ?? 'application/octet-stream').send(body);
    } catch {
      return sendHttpError(reply, HttpErrors.NOT_FOUND);
    }
  });
  return app;
}
