/**
 * The files of one batch (a folder sent over one bigup.2 connection, UploadInfo.batch) land in one
 * folder, files/<batch>/<relative path> (server/store/delivered-files.ts, issue 16), and no
 * upload's file ever replaces another's: a place that is taken sends the file to its own folder,
 * files/<id>/, and the metadata says where it went. Real files in a temp dir; the DiskStore is
 * driven directly, as the session drives it.
 */
import {
  link,
  lstat,
  mkdir,
  readFile,
  readdir,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { DirectorySyncs } from '../../server/store/directory-syncs.js';
import { DeliveredFiles } from '../../server/store/delivered-files.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { uploadInfo } from '../helpers/upload-info.js';
import { storedMeta } from '../helpers/stored.js';

const CHUNK = 65_536;
const BATCH = 'ba'.repeat(16);
let nextId = 0;

function info(relativePath: string | undefined, batch: string | null = BATCH): UploadInfo {
  const id = (++nextId).toString(16).padStart(32, '0');
  return uploadInfo({
    id,
    fileSize: CHUNK,
    chunkSize: CHUNK,
    name: relativePath?.split('/').pop() ?? 'f.bin',
    metadata: relativePath === undefined ? {} : { relativePath },
    ...(batch !== null ? { batch } : {}),
  });
}

/** Create, write one chunk of `fill`, finish: the completion's location. */
async function deliver(store: DiskStore, upload: UploadInfo, fill: number): Promise<string> {
  const handle = await store.create(upload);
  await handle.writeAt(new Uint8Array(CHUNK).fill(fill), 0);
  await handle.recordChunks([{ index: 0, hash: BigInt(fill) }], false);
  const completion = await handle.finish('0'.repeat(16));
  await handle.close();
  return completion.location;
}

async function filledWith(path: string, fill: number): Promise<boolean> {
  const bytes = await readFile(path);
  return bytes.byteLength === CHUNK && bytes.every((b) => b === fill);
}

describe('batch folders (disk store)', () => {
  let tmp: TempDir;
  let files: string;
  let store: DiskStore;
  beforeEach(async () => {
    tmp = await makeTempDir();
    files = join(tmp.path, 'files');
    store = new DiskStore({ dir: tmp.path });
    await store.init();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('lands the files of one batch in files/<batch>/<relative path>, one folder for all', async () => {
    const a = await deliver(store, info('album/a.jpg'), 1);
    const b = await deliver(store, info('album/sub/b.jpg'), 2);
    const c = await deliver(store, info('album/c.jpg'), 3);
    expect([a, b, c]).toEqual([
      join(files, BATCH, 'album', 'a.jpg'),
      join(files, BATCH, 'album', 'sub', 'b.jpg'),
      join(files, BATCH, 'album', 'c.jpg'),
    ]);
    expect(await filledWith(a, 1)).toBe(true);
    expect(await filledWith(b, 2)).toBe(true);
    expect(await filledWith(c, 3)).toBe(true);
    expect(await readdir(files)).toEqual([BATCH]);
  });

  it('without a batch (tus, bigup.1, no relative path) an upload keeps its own folder', async () => {
    const own = info('album/a.jpg', null);
    expect(await deliver(store, own, 4)).toBe(join(files, own.id, 'album', 'a.jpg'));
  });

  it('a taken place (same path, names equal after sanitizing, a file where a folder is needed) sends the file to files/<id>/, replacing nothing', async () => {
    const first = await deliver(store, info('album/a.jpg'), 1);
    const again = info('album/a.jpg');
    const sanitizedTwin = info('album/x:y.txt');
    const sanitizedFirst = await deliver(store, info('album/x_y.txt'), 2);
    const fileThere = info('album/a.jpg/inner.txt');
    expect(await deliver(store, again, 3)).toBe(join(files, again.id, 'album', 'a.jpg'));
    expect(await deliver(store, sanitizedTwin, 4)).toBe(
      join(files, sanitizedTwin.id, 'album', 'x_y.txt'),
    );
    expect(await deliver(store, fileThere, 5)).toBe(
      join(files, fileThere.id, 'album', 'a.jpg', 'inner.txt'),
    );
    expect(await filledWith(first, 1)).toBe(true);
    expect(await filledWith(sanitizedFirst, 2)).toBe(true);
    expect(await filledWith(join(files, again.id, 'album', 'a.jpg'), 3)).toBe(true);
    // Whatever the metadata says is where the file is.
    expect((await store.readState(again.id))?.completion?.location).toBe(
      join(files, again.id, 'album', 'a.jpg'),
    );
  });

  it('completions racing for one place: exactly one gets it, each file intact where its metadata says', async () => {
    const uploads = Array.from({ length: 8 }, () => info('same/name.bin'));
    const locations = await Promise.all(uploads.map((u, i) => deliver(store, u, 10 + i)));
    const shared = join(files, BATCH, 'same', 'name.bin');
    expect(locations.filter((l) => l === shared)).toHaveLength(1);
    for (const [i, u] of uploads.entries()) {
      expect(await filledWith(locations[i], 10 + i), locations[i]).toBe(true);
      expect((await store.readState(u.id))?.completion?.location).toBe(locations[i]);
    }
  });

  it('a completion a crash cut before the move, whose place another upload took since: repaired into files/<id>/, the other file untouched', async () => {
    const interrupted = info('album/a.jpg');
    const place = await deliver(store, interrupted, 1);
    // The state a crash between the metadata's rename and the move leaves: completed metadata,
    // the data still at uploads/<id>.part.
    await rename(place, join(tmp.path, 'uploads', `${interrupted.id}.part`));
    // Another upload takes the place before the restart (a restart's start-up reads every upload
    // with a data file in uploads/, and so repairs this one before any new upload could).
    const taker = info('album/a.jpg');
    expect(await deliver(store, taker, 2)).toBe(place);
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    const state = await restarted.readState(interrupted.id);
    const own = join(files, interrupted.id, 'album', 'a.jpg');
    expect(state?.completion?.location).toBe(own);
    expect(await filledWith(own, 1)).toBe(true);
    expect(await filledWith(place, 2)).toBe(true);
    await expect(lstat(join(tmp.path, 'uploads', `${interrupted.id}.part`))).rejects.toMatchObject({
      code: 'ENOENT',
    });
    // Read again (a fresh store): the relocation was recorded, not only returned.
    const again = new DiskStore({ dir: tmp.path });
    await again.init();
    expect((await again.readState(interrupted.id))?.completion?.location).toBe(own);
  });

  it('a completion a crash cut after the link: both names one file, the old one dropped', async () => {
    const upload = info('album/a.jpg');
    const place = await deliver(store, upload, 6);
    await link(place, join(tmp.path, 'uploads', `${upload.id}.part`));
    expect((await store.readState(upload.id))?.completion?.location).toBe(place);
    await expect(lstat(join(tmp.path, 'uploads', `${upload.id}.part`))).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(await filledWith(place, 6)).toBe(true);
  });

  it('a symlink planted at files/<batch> is replaced by a real folder; one planted inside sends the file to its own folder', async () => {
    const outside = join(tmp.path, 'outside');
    await mkdir(outside);
    await symlink(outside, join(files, BATCH));
    const a = await deliver(store, info('album/a.jpg'), 1);
    expect(a).toBe(join(files, BATCH, 'album', 'a.jpg'));
    expect((await lstat(join(files, BATCH))).isDirectory()).toBe(true);
    await symlink(outside, join(files, BATCH, 'evil'));
    const inside = info('evil/b.jpg');
    expect(await deliver(store, inside, 2)).toBe(join(files, inside.id, 'evil', 'b.jpg'));
    expect(await readdir(outside)).toEqual([]);
  });

  it('the batch folder removed by hand between two files: the next file makes it again', async () => {
    await deliver(store, info('album/a.jpg'), 1);
    await rm(join(files, BATCH), { recursive: true });
    const b = await deliver(store, info('album/b.jpg'), 2);
    expect(b).toBe(join(files, BATCH, 'album', 'b.jpg'));
    expect(await filledWith(b, 2)).toBe(true);
  });

  it('metadata naming a batch that is not 32 hex digits is not trusted: the upload is unknown, never a path', async () => {
    const upload = info('album/a.jpg');
    await deliver(store, upload, 1);
    const metaPath = join(tmp.path, 'uploads', `${upload.id}.json`);
    const meta = await storedMeta(tmp.path, upload.id);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(metaPath, JSON.stringify({ ...meta, info: { ...meta.info, batch: '../..' } }));
    // Unreadable metadata without a journal that trusts a chunk: unknown (disk-store.ts header).
    expect(await store.readState(upload.id)).toBeUndefined();
  });

  it('two repairs of one interrupted completion at once (sweeper and RESUME after a restart): one place, recorded', async () => {
    const upload = info('album/a.jpg');
    const place = await deliver(store, upload, 7);
    await rename(place, join(tmp.path, 'uploads', `${upload.id}.part`));
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    const [a, b] = await Promise.all([
      restarted.readState(upload.id),
      restarted.readState(upload.id),
    ]);
    expect(a?.completion?.location).toBe(place);
    expect(b?.completion?.location).toBe(place);
    const fresh = new DiskStore({ dir: tmp.path });
    await fresh.init();
    expect((await fresh.readState(upload.id))?.completion?.location).toBe(place);
    expect(await filledWith(place, 7)).toBe(true);
  });

  it('a remembered batch folder replaced by a symlink since: the next file goes to its own folder, nothing outside', async () => {
    const outside = join(tmp.path, 'outside');
    await mkdir(outside);
    await deliver(store, info('album/a.jpg'), 1);
    await rm(join(files, BATCH, 'album'), { recursive: true });
    await symlink(outside, join(files, BATCH, 'album'));
    const next = info('album/b.jpg');
    const location = await deliver(store, next, 2);
    expect(location).toBe(join(files, next.id, 'album', 'b.jpg'));
    expect(await filledWith(location, 2)).toBe(true);
    expect((await store.readState(next.id))?.completion?.location).toBe(location);
    expect(await readdir(outside)).toEqual([]);
  });
});

describe('DeliveredFiles', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('files landing in one folder at once share the check that it is still in place', async () => {
    const files = join(tmp.path, 'files');
    const uploads = join(tmp.path, 'uploads');
    await mkdir(files);
    await mkdir(uploads);
    const delivered = new DeliveredFiles(tmp.path, files, 0o700, new DirectorySyncs());
    const uploadsOf = Array.from({ length: 12 }, (_, i) => info(`album/p${i}.jpg`));
    await Promise.all(
      uploadsOf.map(async (upload, i) => {
        const from = join(uploads, `${upload.id}.part`);
        await writeFile(from, String(i));
        const place = await delivered.claim(upload);
        try {
          await delivered.makeFolders(place);
          expect(await delivered.moveIn(from, place)).toBe(true);
        } finally {
          place.release();
        }
      }),
    );
    for (const i of uploadsOf.keys())
      expect(await readFile(join(files, BATCH, 'album', `p${i}.jpg`), 'utf8')).toBe(String(i));
    expect(await readdir(uploads)).toEqual([]);
    expect(delivered.checksIssued).toBeGreaterThan(0);
    expect(delivered.checksIssued).toBeLessThan(uploadsOf.length);
    // A symlink swapped in afterwards is still seen by the next file's check.
    await rename(join(files, BATCH, 'album'), join(tmp.path, 'moved'));
    await symlink(join(tmp.path, 'moved'), join(files, BATCH, 'album'));
    const late = info('album/late.jpg');
    await writeFile(join(uploads, `${late.id}.part`), 'late');
    const place = await delivered.claim(late);
    await delivered.makeFolders(place);
    expect(await delivered.moveIn(join(uploads, `${late.id}.part`), place)).toBe(false);
    place.release();
  });
});
