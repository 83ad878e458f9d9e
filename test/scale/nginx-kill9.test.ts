/**
 * Two `big-uploader serve` processes (object store on s3rver, registry on redis-server) behind
 * nginx. One 256 MiB upload through nginx; each round the node serving it is SIGKILLed while
 * chunks are on the wire, and the client reconnects through nginx, which sends it to the other
 * node. Every chunk ever acked must be reported by whichever node answers next; no acked chunk is
 * sent again; at most one window is re-sent per cut; the object read back through the S3 API is
 * byte-identical. /healthz (through nginx) reports the store and the registry.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex, chunkCount } from '../../protocol/index.js';
import { startChildServer, type ChildServer } from '../helpers/server.js';
import { AckLog, chunksIn, openOrResume, pump } from '../reliability/lib/pump.js';
import { startNginx, type NginxProcess } from '../../bench/services/nginx.js';
import { freePort, startRedis, type RedisProcess } from '../../bench/services/redis.js';
import {
  readObject,
  S3RVER_CREDENTIALS,
  startS3rver,
  type S3rverProcess,
} from '../../bench/services/s3rver.js';

const MiB = 1024 * 1024;
const FILE = 256 * MiB;
const KILLS = 5;
const WINDOW = 32 * MiB;

describe('two serve nodes behind nginx, kill -9 of the serving node', () => {
  let s3: S3rverProcess;
  let redis: RedisProcess;
  let nginx: NginxProcess;
  const ports: number[] = [];
  const nodes = new Map<number, ChildServer>();

  const startNode = async (port: number): Promise<ChildServer> => {
    const node = await startChildServer(
      [
        '--port',
        String(port),
        '--store',
        `s3://${s3.bucket}/k9`,
        '--s3-endpoint',
        s3.endpoint,
        '--s3-force-path-style',
        '--registry',
        redis.url,
        '--lease-ttl',
        '5s',
        '--window',
        String(WINDOW),
        '--metrics',
        '--public-health',
      ],
      {
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      },
    );
    nodes.set(port, node);
    return node;
  };

  /** The port of the node that has the upload open (bigup_uploads_active on /metrics). */
  const servingPort = async (): Promise<number | undefined> => {
    for (let attempt = 0; attempt < 50; attempt++) {
      for (const [port, node] of nodes) {
        if (node.process.exitCode !== null || node.process.signalCode !== null) continue;
        const text = await fetch(`${node.url}/metrics`).then(
          (r) => r.text(),
          () => '',
        );
        if (/^bigup_uploads_active 1$/m.test(text)) return port;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  };

  beforeAll(async () => {
    [s3, redis] = await Promise.all([startS3rver(), startRedis()]);
    ports.push(await freePort(), await freePort());
    await Promise.all(ports.map((p) => startNode(p)));
    nginx = await startNginx(ports);
  }, 60_000);

  afterAll(async () => {
    for (const node of nodes.values()) {
      node.kill('SIGKILL');
      await node.exited;
    }
    await nginx?.stop();
    await s3?.stop();
    await redis?.stop();
    await redis?.cleanup();
  });

  it('/healthz through nginx reports the object store and the registry', async () => {
    const response = await fetch(`${nginx.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: 'ok',
      store: { ok: true, kind: 's3', bucket: s3.bucket },
      registry: { ok: true, kind: 'redis' },
    });
  });

  it(`completes a 256 MiB upload byte-identical across ${KILLS} SIGKILLs of the serving node`, async () => {
    const data = randomBytes(FILE);
    const wsUrl = `${nginx.url.replace(/^http/, 'ws')}/upload`;
    let upload: { id: Uint8Array; secret: Uint8Array } | undefined;
    let log: AckLog | undefined;
    let kills = 0;
    let dead: number | undefined;
    let previous: number | undefined;
    let takeovers = 0;
    const sends = new Map<number, number>();
    let ackedResent = 0;
    for (;;) {
      let opened: Awaited<ReturnType<typeof openOrResume>> | undefined;
      for (let attempt = 0; !opened; attempt++) {
        try {
          opened = await openOrResume(wsUrl, upload, {
            fileSize: FILE,
            chunkSize: 0,
            name: 'k9.bin',
          });
        } catch (error) {
          if (attempt > 50) throw error;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const { client, accept } = opened;
      upload ??= { id: accept.uploadId, secret: accept.secret };
      log ??= new AckLog(accept.chunkSize, FILE);
      const chunk = accept.chunkSize;
      // The promise: every chunk ever acked is reported by whichever node answers now.
      const reported = chunksIn(accept.ranges, chunk, FILE);
      expect(
        log.chunks.filter((i) => !reported.has(i)),
        `acked chunks lost after kill ${kills}`,
      ).toEqual([]);
      const serving = await servingPort();
      expect(serving).toBeDefined();
      if (previous !== undefined && serving !== previous) takeovers++;
      previous = serving;
      if (dead !== undefined) {
        // The killed node comes back (same port) once the client is on the other one.
        await startNode(dead);
      }
      const missing = [...Array(chunkCount(FILE, chunk)).keys()].filter((i) => !reported.has(i));
      const acked = new Set(log.chunks);
      let ackedThisRound = 0;
      const killAfter = Math.max(1, Math.floor(missing.length / (KILLS + 1 - kills) / 2));
      const last = kills >= KILLS;
      const result = await pump(client, accept, data, missing, log, {
        timeoutMs: 30_000,
        onAck: () => {
          if (!last && ++ackedThisRound === killAfter && serving !== undefined)
            nodes.get(serving)?.kill('SIGKILL');
        },
      });
      for (const { index } of result.frames) {
        if (acked.has(index)) ackedResent++;
        sends.set(index, (sends.get(index) ?? 0) + 1);
      }
      if (!last) {
        expect(result.interrupted).toBe(true);
        kills++;
        dead = serving;
        await nodes.get(serving!)?.exited;
        client.destroy();
        continue;
      }
      expect(result.errors).toEqual([]);
      client.complete();
      await client.expect('result', 60_000);
      client.close();
      break;
    }
    expect(kills).toBe(KILLS);
    expect(takeovers).toBeGreaterThanOrEqual(KILLS);
    expect(ackedResent).toBe(0);
    const chunk = log.chunkSize;
    let resentBytes = 0;
    for (const [, count] of sends) resentBytes += (count - 1) * chunk;
    expect(resentBytes).toBeLessThanOrEqual(KILLS * WINDOW);
    const key = `k9/${bytesToHex(upload.id)}/k9.bin`;
    const stored = await readObject(s3.client, s3.bucket, key);
    expect(stored.byteLength).toBe(FILE);
    expect(stored.equals(data)).toBe(true);
  }, 300_000);
});
