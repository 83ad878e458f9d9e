/**
 * DiskStore.create reserves space with util-linux `fallocate` in a child process while it sizes
 * the file and writes the metadata and the journal. These tests put a scripted `fallocate` first
 * on PATH (this file's process only) to check both outcomes: a refused reservation leaves no file
 * behind, even when the child finishes after everything else; a granted one gives a usable handle.
 */
import { chmod, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Errors, isProtocolError } from '../../protocol/index.js';
import { DiskStore, type UploadInfo } from '../../server/index.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const info = (id: string): UploadInfo => ({
  id,
  secretHash: '0'.repeat(64),
  fileSize: 1 << 20,
  chunkSize: 65_536,
  name: 'f.bin',
  contentType: '',
  metadata: {},
  createdAt: Date.now(),
});

describe('DiskStore.create with the reservation in a child process', () => {
  let tmp: TempDir;
  let savedPath: string | undefined;
  beforeEach(async () => {
    tmp = await makeTempDir();
    savedPath = process.env.PATH;
  });
  afterEach(async () => {
    process.env.PATH = savedPath;
    await tmp.cleanup();
  });

  /** A fake `fallocate` that sleeps, then (re)creates the file as the real one would, then answers. */
  async function fakeFallocate(outcome: 'nospace' | 'ok'): Promise<void> {
    const bin = join(tmp.path, 'bin');
    await import('node:fs/promises').then((fs) => fs.mkdir(bin));
    const script = outcome === 'nospace'
      ? '#!/bin/sh\nsleep 0.3\n: >> "$3"\necho "fallocate: fallocate failed: No space left on device" >&2\nexit 1\n'
      : '#!/bin/sh\nsleep 0.1\nexec truncate -s "$2" "$3"\n';
    await writeFile(join(bin, 'fallocate'), script);
    await chmod(join(bin, 'fallocate'), 0o755);
    process.env.PATH = `${bin}:${savedPath ?? ''}`;
  }

  it('refuses with INSUFFICIENT_STORAGE and leaves no file when the reservation fails last', async () => {
    await fakeFallocate('nospace');
    const store = new DiskStore({ dir: join(tmp.path, 'data') });
    await store.init();
    const error = await store.create(info('a'.repeat(32))).then(() => undefined, (e: unknown) => e);
    expect(isProtocolError(error) && error.code).toBe(Errors.INSUFFICIENT_STORAGE.code);
    expect(await listFiles(join(tmp.path, 'data'))).toEqual([]);
  });

  it('returns a writable handle when the reservation succeeds', async () => {
    await fakeFallocate('ok');
    const store = new DiskStore({ dir: join(tmp.path, 'data') });
    await store.init();
    const handle = await store.create(info('b'.repeat(32)));
    await handle.writeAt(new Uint8Array(65_536).fill(7), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    await handle.close();
    const part = await stat(join(tmp.path, 'data', 'uploads', `${'b'.repeat(32)}.part`));
    expect(part.size).toBe(1 << 20);
    const state = await store.readState('b'.repeat(32));
    expect(state?.chunks).toEqual([{ index: 0, hash: 1n }]);
  });
});
