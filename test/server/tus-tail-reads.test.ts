/**
 * What a tus PATCH that continues a partial chunk makes the disk store read back (the chunk's
 * kept bytes, to hash the whole chunk). An attack found against the old code: PATCHes of one byte
 * at a 4 MiB - 1 tail with a wrong Upload-Checksum, each answered 460 and storing nothing, made the
 * server read the 4 MiB tail back every time (300 bytes in, 4 MiB read and ~44 ms of CPU out, no
 * bound). Now the kept bytes are read only by a PATCH that stores something of the chunk, and at
 * most `tusPartialWritesPerChunk` PATCHes end inside one chunk on the disk store too (it bounded
 * only the object store's).
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, type UploadHandle, type UploadInfo } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tusRequest } from '../helpers/tus.js';

const MiB = 1024 * 1024;
const OCTETS = { 'Content-Type': 'application/offset+octet-stream' };

/** The real disk store, counting the bytes its upload handles read back from the data. */
class ReadCountingStore extends DiskStore {
  bytesRead = 0;

  private counted(handle: UploadHandle): UploadHandle {
    return new Proxy(handle, {
      get: (target, prop) => {
        const readAt = target.readAt?.bind(target);
        if (prop === 'readAt' && readAt)
          return async (length: number, position: number) => {
            const bytes = await readAt(length, position);
            this.bytesRead += bytes.byteLength;
            return bytes;
          };
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function'
          ? (value as (...a: unknown[]) => unknown).bind(target)
          : value;
      },
    });
  }

  override async create(
    info: UploadInfo,
    intent?: Parameters<DiskStore['create']>[1],
  ): Promise<UploadHandle> {
    return this.counted(await super.create(info, intent));
  }

  override async open(id: string): Promise<UploadHandle> {
    return this.counted(await super.open(id));
  }
}

describe('tus PATCH inside a chunk: what it reads back (disk store)', () => {
  let tmp: TempDir;
  let server: TestServer;
  let store: ReadCountingStore;
  const PARTIAL_WRITES = 8;

  /** A server over a fresh counting store on `tmp`. */
  async function start(): Promise<void> {
    store = new ReadCountingStore({ dir: tmp.path });
    server = await startServer({
      store,
      defaultChunkSize: MiB,
      maxUploadSize: 64 * MiB,
      tusPartialWritesPerChunk: PARTIAL_WRITES,
    });
  }

  beforeEach(async () => {
    tmp = await makeTempDir();
    await start();
  });
  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  async function create(data: Buffer): Promise<string> {
    const created = await tusRequest(`${server.url}/files/`, 'POST', {
      'Upload-Length': String(data.byteLength),
      'Upload-Metadata': `filename ${Buffer.from('t.bin').toString('base64')}`,
    });
    expect(created.status).toBe(201);
    return new URL(created.headers.get('location') ?? '', server.url).pathname;
  }

  const patch = (path: string, data: Buffer, from: number, to: number, checksum?: string) =>
    tusRequest(
      `${server.url}${path}`,
      'PATCH',
      {
        ...OCTETS,
        'Upload-Offset': String(from),
        ...(checksum ? { 'Upload-Checksum': checksum } : {}),
      },
      data.subarray(from, to),
    );

  const offset = async (path: string) =>
    (await tusRequest(`${server.url}${path}`, 'HEAD')).headers.get('upload-offset');

  it('a PATCH that stores nothing (wrong checksum, empty body) reads none of the kept bytes back', async () => {
    const data = randomBytes(2 * MiB);
    const path = await create(data);
    const tail = MiB - 1;
    expect((await patch(path, data, 0, tail)).status).toBe(204);
    expect(await offset(path)).toBe(String(tail));
    const before = store.bytesRead;
    const wrong = `sha1 ${createHash('sha1').update('not these bytes').digest('base64')}`;
    for (let i = 0; i < 20; i++) {
      const refused = await patch(path, data, tail, tail + 1, wrong);
      expect(refused.status).toBe(460);
    }
    expect((await patch(path, data, tail, tail)).status).toBe(204);
    // Before: 20 x (1 MiB - 1) read back for 20 bytes received.
    expect(store.bytesRead - before).toBe(0);
    expect(await offset(path)).toBe(String(tail));
    // The right checksum: the chunk completes, its kept bytes read back once.
    const right = `sha1 ${createHash('sha1')
      .update(data.subarray(tail, tail + 1))
      .digest('base64')}`;
    expect((await patch(path, data, tail, tail + 1, right)).status).toBe(204);
    expect(store.bytesRead - before).toBe(tail);
    expect((await patch(path, data, MiB, 2 * MiB)).status).toBe(204);
    expect(await offset(path)).toBe(String(2 * MiB));
  });

  it(`at most tusPartialWritesPerChunk (${PARTIAL_WRITES}) PATCHes end inside one chunk: the next gets 400 and reads nothing back; one to the chunk's end still goes`, async () => {
    const data = randomBytes(MiB + 1000);
    const path = await create(data);
    for (let i = 0; i < PARTIAL_WRITES; i++)
      expect((await patch(path, data, i, i + 1)).status).toBe(204);
    expect(await offset(path)).toBe(String(PARTIAL_WRITES));
    const before = store.bytesRead;
    const refused = await patch(path, data, PARTIAL_WRITES, PARTIAL_WRITES + 1);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('TUS_PATCH_TOO_SMALL');
    expect(store.bytesRead - before).toBe(0);
    expect(await offset(path)).toBe(String(PARTIAL_WRITES));
    // To the chunk's end: a whole chunk, nothing kept apart; the next chunk starts its own count.
    expect((await patch(path, data, PARTIAL_WRITES, MiB)).status).toBe(204);
    expect(store.bytesRead - before).toBe(PARTIAL_WRITES);
    expect((await patch(path, data, MiB, MiB + 10)).status).toBe(204);
    expect((await patch(path, data, MiB + 10, data.byteLength)).status).toBe(204);
    expect(await offset(path)).toBe(String(data.byteLength));
  });

  it('the count survives a restart (it is in the tail record)', async () => {
    const data = randomBytes(MiB + 10);
    const path = await create(data);
    for (let i = 0; i < PARTIAL_WRITES; i++)
      expect((await patch(path, data, i, i + 1)).status).toBe(204);
    await server.close();
    await start();
    const refused = await patch(path, data, PARTIAL_WRITES, PARTIAL_WRITES + 1);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain('TUS_PATCH_TOO_SMALL');
    expect((await patch(path, data, PARTIAL_WRITES, data.byteLength)).status).toBe(204);
    expect(await offset(path)).toBe(String(data.byteLength));
  });
});
