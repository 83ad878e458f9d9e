/**
 * One suite for every SharedRegistry (in-process and Redis): records, paged listing, and the
 * lease rules that keep a paused or cut-off node from acking into an upload another node owns.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, ProtocolError } from '../../protocol/index.js';
import { MemoryRegistry } from '../../server/registry/memory-registry.js';
import { RedisRegistry } from '../../server/registry/redis-registry.js';
import { CONTENT_REFS_PER_DIGEST, type SharedRegistry } from '../../server/registry/types.js';
import { CONTENT_LOOKUP_LIMIT, type UploadInfo } from '../../server/store/types.js';
import { startRedis, type RedisProcess } from '../../bench/services/redis.js';

/**
 * Long enough that renewing every third of it holds on a loaded CI machine (at 300 ms a renewal
 * once came after the lease had run out: a fresh-clone run failed here).
 */
const LEASE_MS = 1500;

function infoFor(id: string): UploadInfo {
  return {
    id,
    secretHash: 'ab'.repeat(32),
    fileSize: 30,
    chunkSize: 10,
    name: 'f.bin',
    contentType: 'application/octet-stream',
    metadata: {},
    createdAt: Date.now(),
    client: 'address:1.2.3.4',
  };
}

async function codeOf(work: Promise<unknown>): Promise<number | undefined> {
  try {
    await work;
  } catch (error) {
    return error instanceof ProtocolError ? error.code : -1;
  }
  return undefined;
}

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
}, 20_000);
afterAll(async () => {
  await redis?.stop();
  await redis?.cleanup();
});

const kinds: Array<[string, () => { a: SharedRegistry; b: SharedRegistry }]> = [
  [
    'memory',
    () => {
      const shared = new MemoryRegistry({ leaseTtl: LEASE_MS });
      return { a: shared, b: shared };
    },
  ],
  [
    'redis',
    () => {
      // Two connections, as two nodes would have, under a prefix of this run.
      const keyPrefix = `t${randomBytes(3).toString('hex')}:`;
      return {
        a: new RedisRegistry({ url: redis.url, leaseTtl: LEASE_MS, keyPrefix }),
        b: new RedisRegistry({ url: redis.url, leaseTtl: LEASE_MS, keyPrefix }),
      };
    },
  ],
];

describe.each(kinds)('%s registry', (_kind, make) => {
  let a: SharedRegistry;
  let b: SharedRegistry;
  beforeAll(async () => {
    ({ a, b } = make());
    await a.init();
    await b.init();
  });
  afterAll(async () => {
    await a.close();
    if (b !== a) await b.close();
  });

  it('records an upload, its parts and its completion, and lists it by id', async () => {
    const id = randomBytes(16).toString('hex');
    await a.create(infoFor(id), { key: `k/${id}`, multipartId: 'mp-1' });
    await expect(a.create(infoFor(id), { key: 'x' })).rejects.toThrow(/exists/);
    const lease = await a.acquire(id, 'node-a');
    await a.addParts(lease, [
      { index: 2, hash: 0xffn, etag: '"e2"' },
      { index: 0, hash: 1n << 63n, etag: '"e0"' },
    ]);
    const entry = await b.get(id);
    expect({ ...entry?.info, createdAt: 0 }).toEqual({ ...infoFor(id), createdAt: 0 });
    // The info alone (what a secret check needs), without the parts.
    expect(await b.getInfo(id)).toEqual(entry?.info);
    expect(await b.getInfo(randomBytes(16).toString('hex'))).toBeUndefined();
    expect(entry?.location).toEqual({ key: `k/${id}`, multipartId: 'mp-1' });
    expect(entry?.parts).toEqual([
      { index: 0, hash: 1n << 63n, etag: '"e0"' },
      { index: 2, hash: 0xffn, etag: '"e2"' },
    ]);
    const listed = await b.list();
    expect(listed.find((s) => s.id === id)).toMatchObject({
      completed: false,
      fileSize: 30,
      client: 'address:1.2.3.4',
      empty: false,
    });
    expect((await b.list({ after: id })).some((s) => s.id === id)).toBe(false);
    expect((await b.list({ limit: 1 })).length).toBe(1);
    await a.complete(lease, { digest: '0123456789abcdef', location: 's3://b/k', completedAt: 1 });
    const done = await b.get(id);
    expect(done?.completion?.digest).toBe('0123456789abcdef');
    expect(done?.parts).toEqual([]);
    await b.delete(id);
    expect(await a.get(id)).toBeUndefined();
    expect(await codeOf(a.acquire(id, 'node-a'))).toBe(Errors.UPLOAD_GONE.code);
  });

  it('fences: after another node acquires, the old lease can neither record, renew nor complete', async () => {
    const id = randomBytes(16).toString('hex');
    await a.create(infoFor(id), { key: 'k', multipartId: 'mp' });
    const old = await a.acquire(id, 'node-a');
    const newer = await b.acquire(id, 'node-b');
    expect(newer.token).toBeGreaterThan(old.token);
    expect(await codeOf(a.addParts(old, [{ index: 0, hash: 1n, etag: '"x"' }]))).toBe(
      Errors.TAKEN_OVER.code,
    );
    expect(await codeOf(a.renew(old))).toBe(Errors.TAKEN_OVER.code);
    expect(
      await codeOf(a.complete(old, { digest: '0'.repeat(16), location: 'l', completedAt: 1 })),
    ).toBe(Errors.TAKEN_OVER.code);
    // Releasing the old lease does not release the new one.
    await a.release(old);
    expect((await a.list()).find((s) => s.id === id)?.leased).toBe(true);
    // The sweeper's removal leaves an upload someone holds.
    expect(await a.deleteUnlessLeased(id)).toBe(false);
    await b.addParts(newer, [{ index: 1, hash: 2n, etag: '"y"' }]);
    expect((await a.get(id))?.parts.map((p) => p.index)).toEqual([1]);
    await b.release(newer);
    expect((await a.list()).find((s) => s.id === id)?.leased).toBeUndefined();
    expect(await a.deleteUnlessLeased(id)).toBe(true);
    expect(await b.get(id)).toBeUndefined();
    expect((await b.list()).some((s) => s.id === id)).toBe(false);
    expect(await codeOf(b.acquire(id, 'node-b'))).toBe(Errors.UPLOAD_GONE.code);
    expect(await a.deleteUnlessLeased(id)).toBe(false);
  });

  it('a lease that runs out without renewal stops its writes (retryable), and renewal keeps it', async () => {
    const id = randomBytes(16).toString('hex');
    await a.create(infoFor(id), { key: 'k', multipartId: 'mp' });
    const kept = await a.acquire(id, 'node-a');
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, LEASE_MS / 3));
      await a.renew(kept);
    }
    await a.addParts(kept, [{ index: 0, hash: 1n, etag: '"x"' }]);
    expect((await b.list()).find((s) => s.id === id)?.leased).toBe(true);
    await new Promise((r) => setTimeout(r, LEASE_MS * 2));
    // Run out: no node holds it (the sweeper may judge it by its age again).
    expect((await b.list()).find((s) => s.id === id)?.leased).toBeUndefined();
    expect(await codeOf(a.addParts(kept, [{ index: 1, hash: 1n, etag: '"x"' }]))).toBe(
      Errors.STORAGE_ERROR.code,
    );
    expect((await a.get(id))?.parts.map((p) => p.index)).toEqual([0]);
  });

  it('counts quotas across nodes: one atomic check-and-reserve, given back once', async () => {
    const limits = {
      maxUnfinishedUploads: 1_000_000,
      maxUnfinishedUploadsPerClient: 2,
      maxCommittedBytes: Number.MAX_SAFE_INTEGER,
      maxCommittedBytesPerClient: 100,
    };
    const client = `subject:${randomBytes(4).toString('hex')}`;
    const [x, y, z] = [0, 1, 2].map(() => randomBytes(16).toString('hex')) as [
      string,
      string,
      string,
    ];
    await a.reserve(x, client, 40, limits);
    await b.reserve(y, client, 40, limits);
    expect(await codeOf(a.reserve(z, client, 1, limits))).toBe(Errors.TOO_MANY_UPLOADS.code);
    await b.unreserve(x);
    await b.unreserve(x); // idempotent: gives back once
    expect(await codeOf(a.reserve(z, client, 61, limits))).toBe(Errors.INSUFFICIENT_STORAGE.code);
    await a.reserve(z, client, 60, limits);
    expect(await codeOf(b.reserve(x, client, 1, limits))).toBe(Errors.TOO_MANY_UPLOADS.code);
    await a.unreserve(y);
    await a.unreserve(z);
    await b.reserve(x, client, 100, limits);
    await b.unreserve(x);
  });

  it('remembers delivered content for instant uploads: one ref per content and client, found by digest or size, in a scope or not', async () => {
    const size = 1000 + Math.floor(Math.random() * 1e6);
    const key = { fileSize: size, chunkSize: 65_536 };
    const ref = (n: number, client?: string) => ({
      id: n.toString(16).padStart(32, '0'),
      location: `s3://bucket/in/${n}/f.bin`,
      ...(client !== undefined ? { client } : {}),
    });
    const ids = (refs: readonly { id: string }[]) => refs.map((r) => r.id).sort();
    expect(await b.findContent(key)).toEqual([]);
    await a.addContent({ ...key, digest: '00000000000000aa' }, ref(1, 'subject:x'));
    await a.addContent({ ...key, digest: '00000000000000aa' }, ref(2));
    await a.addContent({ ...key, digest: '00000000000000bb' }, ref(3, 'subject:y'));
    expect(ids(await b.findContent({ ...key, digest: '00000000000000aa' }))).toEqual(
      ids([ref(1), ref(2)]),
    );
    // In a client's scope: that client's ref only, by digest and by size.
    expect(
      await b.findContent({ ...key, digest: '00000000000000aa', client: 'subject:x' }),
    ).toEqual([ref(1, 'subject:x')]);
    expect(
      await b.findContent({ ...key, digest: '00000000000000bb', client: 'subject:x' }),
    ).toEqual([]);
    expect(await b.findContent({ ...key, client: 'subject:y' })).toEqual([ref(3, 'subject:y')]);
    expect(await b.findContent({ ...key, client: 'subject:z' })).toEqual([]);
    expect(await b.findContent({ ...key, digest: '00000000000000cc' })).toEqual([]);
    expect(await b.findContent({ ...key, chunkSize: 131_072, digest: '00000000000000aa' })).toEqual(
      [],
    );
    expect(ids(await b.findContent(key))).toHaveLength(2); // one ref per digest by size alone
    // The same client delivering the same content again replaces its ref (the index does not grow).
    await a.addContent({ ...key, digest: '00000000000000aa' }, ref(4, 'subject:x'));
    expect(
      await b.findContent({ ...key, digest: '00000000000000aa', client: 'subject:x' }),
    ).toEqual([ref(4, 'subject:x')]);
    // Many clients of one content: at most CONTENT_REFS_PER_DIGEST come back.
    for (let n = 10; n < 10 + CONTENT_REFS_PER_DIGEST + 5; n++)
      await a.addContent({ ...key, digest: '00000000000000dd' }, ref(n, `subject:${n}`));
    expect(await b.findContent({ ...key, digest: '00000000000000dd' })).toHaveLength(
      CONTENT_REFS_PER_DIGEST,
    );
    // By size alone: at most CONTENT_LOOKUP_LIMIT, however many digests.
    for (let n = 100; n < 100 + CONTENT_LOOKUP_LIMIT + 5; n++)
      await a.addContent({ ...key, digest: n.toString(16).padStart(16, '0') }, ref(n));
    expect(await b.findContent(key)).toHaveLength(CONTENT_LOOKUP_LIMIT);
  });
});
