/**
 * `big-uploader serve`: a thin shell around the Fastify plugin (server/). Every option can also
 * come from an environment variable; the command line wins.
 */
import { hostname, networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import {
  buildApp,
  SERVER_DEFAULTS as DEFAULTS,
  OptionsError,
  type AppOptions,
} from '../server/index.js';
import { parseS3Url } from '../server/store/s3/url.js';
import { openBackend, type BackendSpec } from './backends.js';
import { formatBytes, parseDuration, parseSize, UsageError } from './units.js';

const HELP = `Usage: big-uploader serve [options]

Run the upload server: WebSocket endpoint /upload (protocols bigup.1 and bigup.2) and its HTTP
binding at the same path, the tus 1.0 endpoint /files/, the uploader page at /,
GET|DELETE /uploads/:id, /healthz, and /metrics with --metrics. Stops gracefully on SIGINT/SIGTERM.

Options (environment variable in brackets; the command line wins):
  --host HOST              address to bind [BIG_UPLOADER_HOST] (default 127.0.0.1)
  --port PORT              port, 0 = any free [BIG_UPLOADER_PORT] (default 3000)
  --dir DIR                data directory [BIG_UPLOADER_DIR] (default ./data)
  --max-size SIZE          largest upload, e.g. 10GiB [BIG_UPLOADER_MAX_SIZE] (default ${formatBytes(DEFAULTS.maxUploadSize)})
  --token TOKEN            require this token to upload (Bearer header or ?token=); repeatable
                           [BIG_UPLOADER_TOKEN, comma separated] (default none)
  --ticket-secret SECRET   accept upload tickets signed with SECRET (32+ characters; mint them in
                           your backend with mintUploadTicket) [BIG_UPLOADER_TICKET_SECRET, comma separated]
  --admin-token TOKEN      token for GET/DELETE of any /uploads/:id, /metrics and /healthz
                           [BIG_UPLOADER_ADMIN_TOKEN, comma separated] (default none)
  --origin URL             allowed browser Origin, e.g. https://app.example.com; repeatable
                           [BIG_UPLOADER_ORIGIN, comma separated] (default same origin only)
  --durable                fdatasync before every ACK (group commit) [BIG_UPLOADER_DURABLE=1]
  --ttl DURATION           remove incomplete uploads idle this long, e.g. 24h [BIG_UPLOADER_TTL] (default 24h)
  --chunk-size SIZE        chunk size when the client lets the server choose [BIG_UPLOADER_CHUNK_SIZE] (default ${formatBytes(DEFAULTS.defaultChunkSize)})
  --max-chunk-size SIZE    largest chunk size agreed [BIG_UPLOADER_MAX_CHUNK_SIZE] (default ${formatBytes(DEFAULTS.maxChunkSize)})
  --window SIZE            flow-control window per connection [BIG_UPLOADER_WINDOW] (default ${formatBytes(DEFAULTS.window)})
  --max-connections N      concurrent WebSocket connections [BIG_UPLOADER_MAX_CONNECTIONS] (default ${DEFAULTS.maxConnections})
  --max-uploads N          concurrent uploads [BIG_UPLOADER_MAX_UPLOADS] (default ${DEFAULTS.maxUploads})
  --max-uploads-per-address N  concurrent uploads from one client address
                           [BIG_UPLOADER_MAX_UPLOADS_PER_ADDRESS] (default ${DEFAULTS.maxUploadsPerAddress})
  --instant-upload SCOPE   subject|address|global|off: who may complete an upload from content
                           another upload stored; a scope must hold clients that trust each other
                           (README, "Instant upload") [BIG_UPLOADER_INSTANT_UPLOAD] (default subject)
  --max-queued-bytes SIZE  answers queued for a client that does not read before it is cut
                           [BIG_UPLOADER_MAX_QUEUED_BYTES] (default ${formatBytes(DEFAULTS.maxQueuedBytes)})
  --max-refused N          refused messages one connection may collect [BIG_UPLOADER_MAX_REFUSED] (default ${DEFAULTS.maxRefusedMessages})
  --max-committed SIZE     bytes all unfinished uploads may reserve [BIG_UPLOADER_MAX_COMMITTED]
                           (default: bounded by free space only)
  --max-committed-per-client SIZE  bytes one client's unfinished uploads may reserve
                           [BIG_UPLOADER_MAX_COMMITTED_PER_CLIENT] (default: --max-size)
  --max-unfinished N       unfinished uploads kept in all [BIG_UPLOADER_MAX_UNFINISHED] (default ${DEFAULTS.maxUnfinishedUploads})
  --max-unfinished-per-client N  unfinished uploads one client may keep
                           [BIG_UPLOADER_MAX_UNFINISHED_PER_CLIENT] (default ${DEFAULTS.maxUnfinishedUploadsPerClient})
  --opens-per-second N     new uploads per second per client address, 0 = no limit
                           [BIG_UPLOADER_OPENS_PER_SECOND] (default ${DEFAULTS.opensPerSecond}, bursts of ${DEFAULTS.openBurst})
  --open-burst N           new uploads one address may open at once [BIG_UPLOADER_OPEN_BURST] (default ${DEFAULTS.openBurst})
  --empty-upload-ttl DURATION  remove unfinished uploads that stored no chunk after this idle time
                           [BIG_UPLOADER_EMPTY_UPLOAD_TTL] (default 10m)
  --idle-timeout DURATION  close connections without progress this long [BIG_UPLOADER_IDLE_TIMEOUT] (default 60s)
  --heartbeat DURATION     ping interval [BIG_UPLOADER_HEARTBEAT] (default 30s)
  --min-throughput SIZE    least bytes/s of an active upload, 0 = off [BIG_UPLOADER_MIN_THROUGHPUT] (default 1KiB)
  --sync-interval DURATION background flush interval (default mode) [BIG_UPLOADER_SYNC_INTERVAL] (default 5s)
  --sync-bytes SIZE        also flush after this much data, 0 = by time only (default mode)
                           [BIG_UPLOADER_SYNC_BYTES] (default ${formatBytes(DEFAULTS.syncBytes)})
  --shutdown-timeout DURATION  longest graceful stop [BIG_UPLOADER_SHUTDOWN_TIMEOUT] (default 5s)
  --no-preallocate         do not count unfinished uploads' sizes against the free space
                           [BIG_UPLOADER_NO_PREALLOCATE=1]
  --group-readable         completed files 0640 and directories 0750 (default 0600/0700)
                           [BIG_UPLOADER_GROUP_READABLE=1]
  --page-dir DIR           directory served at / instead of the built-in demo page (the
                           <big-uploader> component wired to this server) [BIG_UPLOADER_PAGE_DIR]
  --allowed-host NAME      a host name clients reach this server by (checked against the Host
                           header: the DNS-rebinding defence); repeatable [BIG_UPLOADER_ALLOWED_HOST,
                           comma separated]. Default: any with --token; without one, loopback names,
                           the --host address, and this machine's addresses and hostname when
                           --host is 0.0.0.0 or ::
  --header-timeout DURATION  longest time for a request's headers (slowloris) [BIG_UPLOADER_HEADER_TIMEOUT] (default 10s)
  --request-timeout DURATION  longest time from a request's start to its handler; upload bodies
                           (tus PATCH, HTTP chunks) are bounded by --idle-timeout and
                           --min-throughput instead [BIG_UPLOADER_REQUEST_TIMEOUT] (default 30s)
  --max-sockets N          TCP connections at once, HTTP and WebSocket [BIG_UPLOADER_MAX_SOCKETS]
                           (default --max-connections + 64)
  --trust-proxy ADDR       a reverse proxy (IP or CIDR) whose X-Forwarded-For names the client, for
                           the per-address bounds; repeatable [BIG_UPLOADER_TRUST_PROXY, comma
                           separated]. Default: none (behind nginx, give nginx's address)
  --insecure-no-token      allow a non-loopback --host without --token or --ticket-secret (anyone
                           who can reach the port can then upload) [BIG_UPLOADER_INSECURE_NO_TOKEN=1]
  --public-health          answer /healthz without the token (load balancers) [BIG_UPLOADER_PUBLIC_HEALTH=1]
  --no-page                serve no page at / [BIG_UPLOADER_NO_PAGE=1]
  --metrics                serve Prometheus metrics at /metrics, behind --admin-token (else --token)
                           [BIG_UPLOADER_METRICS=1] (default off)
Object store and shared registry (docs/scaling.md; credentials from the standard AWS environment
variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or the SDK's other sources):
  --store s3://BUCKET[/PREFIX]  keep uploads in an S3-compatible bucket instead of --dir [BIG_UPLOADER_STORE]
  --s3-endpoint URL        S3-compatible endpoint (MinIO, R2, Ceph RGW) [BIG_UPLOADER_S3_ENDPOINT] (default AWS)
  --s3-region REGION       [BIG_UPLOADER_S3_REGION] (default AWS_REGION, else us-east-1)
  --s3-force-path-style    address buckets as ENDPOINT/BUCKET/KEY [BIG_UPLOADER_S3_FORCE_PATH_STYLE=1]
  --s3-max-attempts N      attempts per S3 request (5xx, SlowDown, timeouts are retried)
                           [BIG_UPLOADER_S3_MAX_ATTEMPTS] (default 3)
  --s3-request-timeout DURATION  an S3 request idle this long fails [BIG_UPLOADER_S3_REQUEST_TIMEOUT] (default 60s)
  --s3-max-sockets N       connections to the S3 endpoint [BIG_UPLOADER_S3_MAX_SOCKETS] (default 64)
  --tus-partial-writes N   tus PATCHes that may end inside one chunk (the next reads the chunk's
                           bytes so far back; on S3 it rewrites the part) [BIG_UPLOADER_TUS_PARTIAL_WRITES] (default 64)
  --registry redis://HOST:PORT/DB  upload records, parts and leases in Redis, shared by every node
                           [BIG_UPLOADER_REGISTRY] (default: in this process, one node only)
  --lease-ttl DURATION     how long a node owns an upload without renewing [BIG_UPLOADER_LEASE_TTL] (default 30s)
  --registry-timeout DURATION  a Redis command unanswered this long fails (the chunk is not acked)
                           [BIG_UPLOADER_REGISTRY_TIMEOUT] (default 5s)
  --registry-max-memory SIZE  Redis memory past which new uploads are refused (INSUFFICIENT_STORAGE;
                           open ones still ack) [BIG_UPLOADER_REGISTRY_MAX_MEMORY]
                           (default 90% of Redis's maxmemory; without one, half the machine's memory)

  --log-level LEVEL        fatal|error|warn|info|debug|silent [BIG_UPLOADER_LOG_LEVEL] (default info)
  -h, --help               show this help
`;

const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  dir: { type: 'string' },
  'max-size': { type: 'string' },
  token: { type: 'string', multiple: true },
  origin: { type: 'string', multiple: true },
  durable: { type: 'boolean' },
  ttl: { type: 'string' },
  'chunk-size': { type: 'string' },
  'max-chunk-size': { type: 'string' },
  window: { type: 'string' },
  'max-connections': { type: 'string' },
  'max-queued-bytes': { type: 'string' },
  'max-refused': { type: 'string' },
  'max-committed': { type: 'string' },
  'max-committed-per-client': { type: 'string' },
  'max-unfinished': { type: 'string' },
  'max-unfinished-per-client': { type: 'string' },
  'opens-per-second': { type: 'string' },
  'open-burst': { type: 'string' },
  'empty-upload-ttl': { type: 'string' },
  'max-uploads': { type: 'string' },
  'max-uploads-per-address': { type: 'string' },
  'instant-upload': { type: 'string' },
  'idle-timeout': { type: 'string' },
  heartbeat: { type: 'string' },
  'min-throughput': { type: 'string' },
  'sync-interval': { type: 'string' },
  'sync-bytes': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'no-preallocate': { type: 'boolean' },
  'group-readable': { type: 'boolean' },
  'page-dir': { type: 'string' },
  'no-page': { type: 'boolean' },
  'allowed-host': { type: 'string', multiple: true },
  'trust-proxy': { type: 'string', multiple: true },
  'ticket-secret': { type: 'string', multiple: true },
  'admin-token': { type: 'string', multiple: true },
  'insecure-no-token': { type: 'boolean' },
  'header-timeout': { type: 'string' },
  'request-timeout': { type: 'string' },
  'tus-partial-writes': { type: 'string' },
  'max-sockets': { type: 'string' },
  'public-health': { type: 'boolean' },
  metrics: { type: 'boolean' },
  store: { type: 'string' },
  's3-endpoint': { type: 'string' },
  's3-region': { type: 'string' },
  's3-force-path-style': { type: 'boolean' },
  's3-max-attempts': { type: 'string' },
  's3-request-timeout': { type: 'string' },
  's3-max-sockets': { type: 'string' },
  registry: { type: 'string' },
  'lease-ttl': { type: 'string' },
  'registry-timeout': { type: 'string' },
  'registry-max-memory': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Name = keyof typeof OPTIONS;

function envName(name: string): string {
  return `BIG_UPLOADER_${name.replace(/-/g, '_').toUpperCase()}`;
}

function integer(text: string, option: string): number {
  if (!/^\d+$/.test(text.trim()))
    throw new UsageError(`${option}: "${text}" is not a whole number`);
  return Number(text.trim());
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * The Host names to answer. With a token, any unless listed. Without one, a server reachable
 * beyond loopback answers the names it is reachable by: the bound address, or for a wildcard
 * bind every interface address and the machine's hostname, plus what --allowed-host lists.
 */
function allowedHostsFor(
  host: string,
  hasToken: boolean,
  listed: string[],
): { allowedHosts?: string[] } {
  if (hasToken) return listed.length > 0 ? { allowedHosts: listed } : {};
  const names = new Set(listed);
  if (host === '0.0.0.0' || host === '::') {
    for (const addresses of Object.values(networkInterfaces()))
      for (const a of addresses ?? []) names.add(a.address);
    names.add(hostname());
  } else if (!isLoopback(host)) {
    names.add(host);
  }
  return names.size > 0 ? { allowedHosts: [...names].map((n) => n.toLowerCase()) } : {};
}

/** Parse argv + env into app options and the listen address. Exported for tests. */
export function parseServeArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
):
  | { help: true }
  | {
      help: false;
      host: string;
      port: number;
      insecureNoToken: boolean;
      app: AppOptions;
      backend?: BackendSpec;
    } {
  let values: Partial<Record<Name, string | string[] | boolean>>;
  try {
    values = parseArgs({
      args: argv,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new UsageError(`serve: ${(error as Error).message}`);
  }
  if (values.help) return { help: true };
  const str = (name: Name): string | undefined => {
    const v = values[name];
    if (typeof v === 'string') return v;
    const e = env[envName(name)];
    return e === undefined || e === '' ? undefined : e;
  };
  const list = (name: Name): string[] => {
    const v = values[name];
    if (Array.isArray(v)) return v;
    const e = env[envName(name)];
    return e
      ? e
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : [];
  };
  const flag = (name: Name): boolean =>
    values[name] === true || /^(1|true|yes)$/i.test(env[envName(name)] ?? '');
  const size = (name: Name) => {
    const v = str(name);
    return v === undefined ? undefined : parseSize(v, `--${name}`);
  };
  const duration = (name: Name) => {
    const v = str(name);
    return v === undefined ? undefined : parseDuration(v, `--${name}`);
  };
  const count = (name: Name) => {
    const v = str(name);
    return v === undefined ? undefined : integer(v, `--${name}`);
  };

  const host = str('host') ?? '127.0.0.1';
  const port = count('port') ?? 3000;
  if (port > 65535) throw new UsageError(`--port: ${port} is not a port`);
  const tokens = list('token');
  const ticketSecrets = list('ticket-secret');
  const adminTokens = list('admin-token');
  const pageDir = str('page-dir');
  if (pageDir !== undefined && flag('no-page'))
    throw new UsageError('--page-dir and --no-page exclude each other');
  const logLevel = str('log-level') ?? 'info';
  const app: AppOptions = {
    dir: resolve(str('dir') ?? './data'),
    maxUploadSize: size('max-size'),
    token: tokens.length > 0 ? tokens : undefined,
    origins: list('origin'),
    durable: flag('durable'),
    ttl: duration('ttl'),
    defaultChunkSize: size('chunk-size'),
    maxChunkSize: size('max-chunk-size'),
    window: size('window'),
    maxConnections: count('max-connections'),
    maxUploads: count('max-uploads'),
    maxUploadsPerAddress: count('max-uploads-per-address'),
    instantUpload: instantScope(str('instant-upload')),
    maxQueuedBytes: size('max-queued-bytes'),
    maxRefusedMessages: count('max-refused'),
    maxCommittedBytes: size('max-committed'),
    maxCommittedBytesPerClient: size('max-committed-per-client'),
    maxUnfinishedUploads: count('max-unfinished'),
    maxUnfinishedUploadsPerClient: count('max-unfinished-per-client'),
    opensPerSecond: count('opens-per-second'),
    openBurst: count('open-burst'),
    emptyUploadTtl: duration('empty-upload-ttl'),
    idleTimeout: duration('idle-timeout'),
    heartbeatInterval: duration('heartbeat'),
    minThroughput: size('min-throughput'),
    syncInterval: duration('sync-interval'),
    syncBytes: size('sync-bytes'),
    shutdownTimeout: duration('shutdown-timeout'),
    preallocate: !flag('no-preallocate'),
    groupReadable: flag('group-readable'),
    logLevel: logLevel === 'silent' ? false : logLevel,
    metrics: flag('metrics'),
    publicHealth: flag('public-health'),
    ...(ticketSecrets.length > 0 ? { ticketSecret: ticketSecrets } : {}),
    ...(adminTokens.length > 0 ? { adminToken: adminTokens } : {}),
    headersTimeout: duration('header-timeout'),
    requestTimeout: duration('request-timeout'),
    maxSockets: count('max-sockets'),
    ...(list('trust-proxy').length > 0 ? { trustProxy: list('trust-proxy') } : {}),
    tusPartialWritesPerChunk: count('tus-partial-writes'),
    ...allowedHostsFor(host, tokens.length > 0 || ticketSecrets.length > 0, list('allowed-host')),
    ...(flag('no-page')
      ? { pageDir: false as const }
      : pageDir
        ? { pageDir: resolve(pageDir) }
        : {}),
  };
  const backend = backendSpec(str, flag, count, duration, size);
  return {
    help: false,
    host,
    port,
    insecureNoToken: flag('insecure-no-token'),
    app,
    ...(backend ? { backend } : {}),
  };
}

/** --store and --registry with their options; undefined in disk mode. */
function backendSpec(
  str: (name: Name) => string | undefined,
  flag: (name: Name) => boolean,
  count: (name: Name) => number | undefined,
  duration: (name: Name) => number | undefined,
  size: (name: Name) => number | undefined,
): BackendSpec | undefined {
  const store = str('store');
  const registry = str('registry');
  if (store === undefined) {
    const stray = (
      ['registry', 's3-endpoint', 's3-region', 'lease-ttl', 'registry-max-memory'] as const
    ).find((name) => str(name) !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --store s3://BUCKET`);
    return undefined;
  }
  const target = parseS3Url(store);
  if (!target) throw new UsageError(`--store: "${store}" is not s3://BUCKET[/PREFIX]`);
  if (registry !== undefined && !/^rediss?:\/\/[^/]+(\/\d+)?$/.test(registry)) {
    throw new UsageError(`--registry: "${registry}" is not redis://HOST:PORT[/DB]`);
  }
  const endpoint = str('s3-endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
    throw new UsageError(`--s3-endpoint: "${endpoint}" is not http(s)://HOST[:PORT]`);
  }
  const region = str('s3-region');
  const maxAttempts = count('s3-max-attempts');
  const requestTimeout = duration('s3-request-timeout');
  const maxSockets = count('s3-max-sockets');
  const leaseTtl = duration('lease-ttl');
  const commandTimeout = duration('registry-timeout');
  const maxMemory = size('registry-max-memory');
  if (maxMemory === 0) throw new UsageError('--registry-max-memory must be at least 1 byte');
  if (maxMemory !== undefined && registry === undefined)
    throw new UsageError('--registry-max-memory needs --registry redis://HOST:PORT[/DB]');
  if (maxAttempts === 0 || maxSockets === 0) {
    throw new UsageError('--s3-max-attempts and --s3-max-sockets must be at least 1');
  }
  return {
    ...target,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(region !== undefined ? { region } : {}),
    forcePathStyle: flag('s3-force-path-style'),
    ...(maxAttempts !== undefined ? { maxAttempts } : {}),
    ...(requestTimeout !== undefined ? { requestTimeout } : {}),
    ...(maxSockets !== undefined ? { maxSockets } : {}),
    ...(registry !== undefined
      ? {
          registry: {
            url: registry,
            ...(leaseTtl !== undefined ? { leaseTtl } : {}),
            ...(commandTimeout !== undefined ? { commandTimeout } : {}),
            ...(maxMemory !== undefined ? { maxMemory } : {}),
          },
        }
      : {}),
  };
}

export async function run(argv: string[]): Promise<number> {
  const parsed = parseServeArgs(argv);
  if (parsed.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const { host, port, app: appOptions } = parsed;
  if (!isLoopback(host) && !appOptions.token && !appOptions.ticketSecret) {
    if (!parsed.insecureNoToken) {
      throw new UsageError(
        `refusing to listen on ${host} without a token: anyone who can reach it could upload files and fill the disk. ` +
          'Pass --token (or BIG_UPLOADER_TOKEN) or --ticket-secret, or --insecure-no-token to accept that.',
      );
    }
    process.stderr.write(
      `\n  WARNING: big-uploader is listening on ${host} WITHOUT a token (--insecure-no-token): anyone who\n` +
        `  can reach this address can upload files and fill the disk.\n\n`,
    );
  }
  const store = parsed.backend
    ? await openBackend(parsed.backend, {
        info: (m) => process.stdout.write(`big-uploader: ${m}\n`),
        warn: (m) => process.stderr.write(`big-uploader: ${m}\n`),
      })
    : undefined;
  let app;
  try {
    app = await buildApp(store ? { ...appOptions, store } : appOptions);
  } catch (error) {
    if (error instanceof OptionsError) throw new UsageError(error.message);
    throw error;
  }
  const address = await app.listen({ host, port });
  const url = new URL(address);
  const where = parsed.backend
    ? `data in s3://${parsed.backend.bucket}/${parsed.backend.prefix}, registry ${parsed.backend.registry ? 'redis' : 'in-process'}`
    : `data in ${appOptions.dir}`;
  process.stdout.write(
    `big-uploader listening on ${address} (WebSocket ws://${url.host}${appOptions.path ?? '/upload'}, ${where})\n`,
  );

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`big-uploader: ${signal} again, exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      process.stderr.write(
        `big-uploader: ${signal}, finishing in-flight writes and closing connections\n`,
      );
      // Belt and braces: the graceful path is bounded by shutdownTimeout; never hang past it.
      const hard = setTimeout(
        () => process.exit(1),
        (appOptions.shutdownTimeout ?? DEFAULTS.shutdownTimeout) + 5000,
      );
      hard.unref();
      app
        .close()
        .then(() => store?.close())
        .then(
          () => resolveExit(0),
          (error: unknown) => {
            process.stderr.write(`big-uploader: shutdown failed: ${String(error)}\n`);
            resolveExit(1);
          },
        );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function instantScope(value: string | undefined): AppOptions['instantUpload'] {
  if (value === undefined) return undefined;
  if (value === 'off') return false;
  if (value === 'subject' || value === 'address' || value === 'global') return value;
  throw new UsageError(`--instant-upload: "${value}" is not subject, address, global or off`);
}
