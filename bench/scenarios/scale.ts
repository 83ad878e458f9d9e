/**
 * Scenario `scale` (issue 17): the object-store mode on one S3 server, s3rver from npm, reached
 * through one counting proxy (bench/services/s3-fault-proxy.ts, which also answers ListParts from
 * the parts it saw, since s3rver cannot and @tus/s3-store lists on every PATCH).
 *  (a) one upload of the source: big-uploader `serve --store s3:// --registry redis://`, the same
 *      without a registry (in-process), and @tus/server + @tus/s3-store with tus-js-client; the
 *      three alternated round by round.
 *  (b) 8 concurrent uploads (8 different files, size/8 each) through nginx to 1 node and to 2
 *      nodes sharing the bucket and Redis, alternated.
 * Time: from the gate's "go" to the last client's result, read by the harness for every row.
 * Server CPU: /proc of every server process of the row over that span. Every stored object is
 * checked by size through the S3 API, the bytes of every single upload and of one of each 8.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { spawnPeer, type BenchChild } from '../proc.js';
import { startServer, type ProductServer } from '../product.js';
import { startNginx, type NginxProcess } from '../services/nginx.js';
import { startRedis, type RedisProcess } from '../services/redis.js';
import { startS3FaultProxy, type S3FaultProxy } from '../services/s3-fault-proxy.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverProcess } from '../services/s3rver.js';
import { median } from '../stats.js';
import type { ScenarioResult } from '../types.js';
import { MiB, mb, type ScenarioContext } from './common.js';

const CONCURRENT_UPLOADS = 8;
/** Rounds; BENCH_SCALE_ROUNDS shrinks it (the scenario's test runs one). */
const rounds = (): number => Math.max(1, Math.min(10, Number(process.env.BENCH_SCALE_ROUNDS ?? 3)));
const GiB = 2 ** 30;
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
};

interface Row {
  label: string;
  /** Client peer per file: script and args. */
  clients: (files: string[]) => Array<{ script: string; args: string[] }>;
  servers: () => BenchChild[];
  files: string[];
  /** Bytes of one file. */
  fileSize: number;
  redis: boolean;
}

interface Measure {
  seconds: number;
  cpuSeconds: number;
  s3Requests: Record<string, number>;
  redisOps: number;
}

const cpuOf = (children: BenchChild[]): number =>
  children.reduce((sum, c) => {
    const s = c.sample();
    return sum + (s ? s.userSeconds + s.sysSeconds : 0);
  }, 0);

/** Total Redis commands so far, from INFO commandstats, leaving out the INFO calls themselves. */
function redisCalls(redis: RedisProcess): number {
  const text = execFileSync('redis-cli', ['-p', String(redis.port), 'INFO', 'commandstats'], {
    encoding: 'utf8',
  });
  let total = 0;
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (m[1] !== 'info') total += Number(m[2]);
  return total;
}

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** One timed run: gate every client, release them together, wait for every result. */
async function timedRun(
  ctx: ScenarioContext,
  row: Row,
  proxy: S3FaultProxy,
  redis: RedisProcess,
): Promise<Measure> {
  const clients = row
    .clients(row.files)
    .map((c) => spawnPeer(ctx.repoRoot, c.script, c.args, { BENCH_GATE: '1' }));
  try {
    await Promise.all(clients.map((c) => c.waitForMessage((m) => m.event === 'ready', 60_000)));
    const servers = row.servers();
    const seen0 = new Map(proxy.seen);
    const redis0 = row.redis ? redisCalls(redis) : 0;
    const cpu0 = cpuOf(servers);
    const t0 = performance.now();
    for (const c of clients) c.writeLine('go');
    const results = await Promise.all(
      clients.map((c) =>
        c.waitForMessage((m) => m.event === 'result' || m.event === 'error', ctx.timeoutMs),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpuSeconds = cpuOf(servers) - cpu0;
    const bad = results.find((r) => r.event === 'error');
    if (bad) throw new Error(`${row.label}: client: ${String(bad.message)}`);
    const s3Requests: Record<string, number> = {};
    for (const [op, n] of proxy.seen) {
      const d = n - (seen0.get(op) ?? 0);
      if (d) s3Requests[op] = d;
    }
    return {
      seconds,
      cpuSeconds,
      s3Requests,
      redisOps: row.redis ? redisCalls(redis) - redis0 : 0,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
}

/**
 * Check what the run stored: exactly `count` new objects of `size` bytes; the bytes of `bytesOf`
 * of them against `digests` (sha256 of each source file). Removes them afterwards (disk space).
 */
async function checkStored(
  s3: S3rverProcess,
  size: number,
  digests: Set<string>,
  count: number,
  bytesOf: number,
): Promise<void> {
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  const objects = (listed.Contents ?? []).filter((o) => o.Size === size);
  if (objects.length !== count)
    throw new Error(`expected ${count} stored object(s) of ${size} bytes, found ${objects.length}`);
  for (const o of objects.slice(0, bytesOf)) {
    const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: o.Key }));
    if (!digests.has(await sha256(got.Body as Readable)))
      throw new Error(`stored object ${o.Key} differs from every source file`);
  }
  for (const o of listed.Contents ?? [])
    await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: o.Key }));
}

export async function scaleScenario(ctx: ScenarioContext): Promise<ScenarioResult> {
  const n = rounds();
  const title = `Object store (issue 17): ${(ctx.size / MiB).toFixed(0)} MiB on s3rver, ours vs @tus/s3-store; ${CONCURRENT_UPLOADS} concurrent uploads through nginx to 1 and 2 nodes`;
  let s3: S3rverProcess | undefined;
  let proxy: S3FaultProxy | undefined;
  let redis: RedisProcess | undefined;
  const products: ProductServer[] = [];
  const nginxes: NginxProcess[] = [];
  let tus: BenchChild | undefined;
  try {
    [s3, redis] = await Promise.all([startS3rver('bigup-bench'), startRedis()]);
    proxy = await startS3FaultProxy(s3.endpoint, { answerListParts: true });
    const storeArgs = (prefix: string, registry: boolean): string[] => [
      '--store',
      `s3://${s3!.bucket}/${prefix}`,
      '--s3-endpoint',
      proxy!.endpoint,
      '--s3-force-path-style',
      ...(registry ? ['--registry', redis!.url] : []),
    ];
    const node = async (
      name: string,
      prefix: string,
      registry: boolean,
    ): Promise<ProductServer> => {
      const p = await startServer(
        ctx.repoRoot,
        join(ctx.dir, name),
        storeArgs(prefix, registry),
        30_000,
        AWS_ENV,
      );
      products.push(p);
      return p;
    };
    const withRedis = await node('node-redis', 'shared', true);
    const alone = await node('node-alone', 'alone', false);
    const second = await node('node-redis-2', 'shared', true);
    tus = spawnPeer(
      ctx.repoRoot,
      'bench/peers/tus-s3-server.ts',
      ['--endpoint', proxy.endpoint, '--bucket', s3.bucket],
      AWS_ENV,
    );
    const listening = await tus.waitForMessage(
      (m) => m.event === 'listening' || m.event === 'error',
      30_000,
    );
    if (listening.event === 'error') throw new Error(`tus server: ${String(listening.message)}`);
    const tusPort = Number(listening.port);
    const tusChild = tus;
    const oneNode = await startNginx([withRedis.port]);
    nginxes.push(oneNode);
    const twoNodes = await startNginx([withRedis.port, second.port]);
    nginxes.push(twoNodes);

    const ours =
      (url: string) =>
      (files: string[]): Array<{ script: string; args: string[] }> =>
        files.map((f) => ({
          script: 'bench/peers/bigup-client.ts',
          args: ['--url', url, '--file', f],
        }));
    const partSize = Math.max(1, Math.floor(ctx.size / CONCURRENT_UPLOADS));
    const parts: string[] = [];
    for (let i = 0; i < CONCURRENT_UPLOADS; i++) {
      const path = join(ctx.dir, `concurrent-${i}.bin`);
      await writeFile(path, randomBytes(partSize));
      parts.push(path);
    }
    const digests = new Set<string>([await sha256(createReadStream(ctx.source))]);
    for (const p of parts) digests.add(await sha256(createReadStream(p)));
    const wsUrl = (nginx: NginxProcess): string => `${nginx.url.replace(/^http/, 'ws')}/upload`;
    const single: Row[] = [
      {
        label: 'big-uploader --store s3:// --registry redis://',
        clients: ours(withRedis.url),
        servers: () => [withRedis.child],
        files: [ctx.source],
        fileSize: ctx.size,
        redis: true,
      },
      {
        label: 'big-uploader --store s3:// (in-process registry)',
        clients: ours(alone.url),
        servers: () => [alone.child],
        files: [ctx.source],
        fileSize: ctx.size,
        redis: false,
      },
      {
        label: '@tus/server + @tus/s3-store, tus-js-client one PATCH',
        clients: (files) =>
          files.map((f) => ({
            script: 'bench/peers/tus-client.ts',
            args: ['--endpoint', `http://127.0.0.1:${tusPort}/files`, '--file', f, '--chunk', '0'],
          })),
        servers: () => [tusChild],
        files: [ctx.source],
        fileSize: ctx.size,
        redis: false,
      },
    ];
    const cluster: Row[] = [
      {
        label: `1 node behind nginx, ${CONCURRENT_UPLOADS} x ${(partSize / MiB).toFixed(0)} MiB`,
        clients: ours(wsUrl(oneNode)),
        servers: () => [withRedis.child],
        files: parts,
        fileSize: partSize,
        redis: true,
      },
      {
        label: `2 nodes behind nginx, ${CONCURRENT_UPLOADS} x ${(partSize / MiB).toFixed(0)} MiB`,
        clients: ours(wsUrl(twoNodes)),
        servers: () => [withRedis.child, second.child],
        files: parts,
        fileSize: partSize,
        redis: true,
      },
    ];
    const measured = new Map<Row, Measure[]>();
    for (let round = 1; round <= n; round++) {
      for (const row of [...single, ...cluster]) {
        ctx.log(`scale round ${round}/${n}: ${row.label}`);
        const m = await timedRun(ctx, row, proxy, redis);
        await checkStored(s3, row.fileSize, digests, row.files.length, 1);
        ctx.log(`  ${mb(row.fileSize * row.files.length, m.seconds)} MB/s`);
        measured.set(row, [...(measured.get(row) ?? []), m]);
      }
    }
    const summary = (row: Row): { mbps: number; cpu: number; s3: string; redis: string } => {
      const ms = measured.get(row) ?? [];
      const bytes = row.fileSize * row.files.length;
      const gib = bytes / GiB;
      const s3ops = new Map<string, number[]>();
      for (const m of ms)
        for (const [op, k] of Object.entries(m.s3Requests))
          s3ops.set(op, [...(s3ops.get(op) ?? []), k / gib]);
      return {
        mbps: median(ms.map((m) => bytes / 1e6 / m.seconds)) ?? 0,
        cpu: median(ms.map((m) => m.cpuSeconds / gib)) ?? 0,
        s3: [...s3ops.entries()]
          .map(([op, v]) => `${op} ${(median(v) ?? 0).toFixed(0)}`)
          .join(', '),
        redis: row.redis ? (median(ms.map((m) => m.redisOps / gib)) ?? 0).toFixed(0) : '-',
      };
    };
    const ref = summary(single[2]);
    const oneRef = summary(cluster[0]);
    const rows = [...single, ...cluster].map((row) => {
      const s = summary(row);
      const ms = measured.get(row) ?? [];
      const bytes = row.fileSize * row.files.length;
      const rates = ms.map((m) => bytes / 1e6 / m.seconds);
      const versus = single.includes(row) ? s.mbps / ref.mbps : s.mbps / oneRef.mbps;
      return [
        row.label,
        `${s.mbps.toFixed(1)} (${Math.min(...rates).toFixed(1)}-${Math.max(...rates).toFixed(1)})`,
        `${versus.toFixed(2)} ${single.includes(row) ? 'x tus' : 'x 1 node'}`,
        s.cpu.toFixed(2),
        s.s3,
        s.redis,
      ];
    });
    return {
      id: 'scale',
      title,
      status: 'ok',
      headers: [
        'Row',
        'MB/s median (min-max)',
        'Ratio',
        'Server CPU s/GiB',
        'S3 requests per GiB (median)',
        'Redis commands per GiB',
      ],
      rows,
      notes: [
        `${n} round(s), rows alternated within each round; s3rver, redis-server, nginx, every server and every client share this machine's cores, so the figures include s3rver's own cost on the same box.`,
        `The 2-node row runs both nodes on the same cores as the 1-node row: it shows the overhead of a second node and of nginx's spreading, not scaling.`,
        'Every stored object was checked by size through the S3 API, the bytes (sha256) of the single upload and of one of the concurrent ones, then deleted.',
        'S3 requests are counted by the proxy both stacks go through; its ListParts answers (for @tus/s3-store) are counted too. Redis commands from INFO commandstats over the span (lease renewals included).',
      ],
    };
  } catch (error) {
    return {
      id: 'scale',
      title,
      status: 'failed',
      reason: error instanceof Error ? error.message : String(error),
    };
  } finally {
    for (const x of nginxes) await x.stop();
    await tus?.stop();
    for (const p of products) await p.child.stop();
    await proxy?.close();
    await s3?.stop();
    await redis?.stop();
    await redis?.cleanup();
  }
}
