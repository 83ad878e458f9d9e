/**
 * sanitizeName (issue 14, item 8): names that would mislead a reader or misbehave on Windows are
 * made plain; names that are fine stay byte for byte; the original is kept in the metadata.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskStore, sanitizeName, type UploadInfo } from '../../server/index.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { storedMeta } from '../helpers/stored.js';
import { MAX_FOLDER_PATH_BYTES, safeRelativePath } from '../../server/store/names.js';

describe('sanitizeName', () => {
  it('removes bidi overrides and other invisible format characters, so the extension shown is the real one', () => {
    expect(sanitizeName('invoice\u202Efdp.exe')).toBe('invoicefdp.exe');
    expect(sanitizeName('report\u2066.pdf\u2069.exe')).toBe('report.pdf.exe');
    expect(sanitizeName('a\u200Bb\u200Cc\u200Dd\uFEFFe\u00ADf\u2060g')).toBe('abcdefg');
    expect(sanitizeName('\u202Egnp.js')).toBe('gnp.js');
  });

  it('replaces other control characters (C0, C1, line separators)', () => {
    expect(sanitizeName('a\u0085b\u009bc\u2028d')).toBe('a_b_c_d');
  });

  it('prefixes Windows reserved device names, with or without an extension, in any case', () => {
    for (const name of [
      'CON',
      'con',
      'NUL.txt',
      'com1.log',
      'LPT9.tar.gz',
      'aux',
      'PRN.',
      'COM\u00b9.txt',
      'conin$',
      'NUL .txt',
    ]) {
      const clean = sanitizeName(name);
      expect(clean.startsWith('_'), `${name} -> ${clean}`).toBe(true);
    }
    expect(sanitizeName('NUL.txt')).toBe('_NUL.txt');
    // Not device names.
    for (const name of ['CONSOLE.txt', 'com10.log', 'nullable.ts', 'icon.png', 'LPT'])
      expect(sanitizeName(name)).toBe(name);
  });

  it('drops trailing dots and spaces (Windows would, changing the name or its extension)', () => {
    expect(sanitizeName('file.txt. . ')).toBe('file.txt');
    expect(sanitizeName('archive.zip...')).toBe('archive.zip');
    expect(sanitizeName('. . .')).toBe('file');
  });

  it('replaces characters drawn like a slash, so no name looks like a path', () => {
    expect(sanitizeName('etc\uFF0Fpasswd')).toBe('etc_passwd');
    expect(sanitizeName('a\u2215b\u2044c\uFF3Cd')).toBe('a_b_c_d');
  });

  it('keeps ordinary names byte for byte, Unicode included', () => {
    for (const name of [
      'photo 2026-12-03.jpg',
      'Résumé.pdf',
      '日本語のファイル.txt',
      'a-b_c (1).tar.gz',
      'emoji 🎉.png',
    ]) {
      expect(sanitizeName(name)).toBe(name.normalize('NFC'));
    }
  });

  it('never ends with a dot or space after the length cut', () => {
    const name = `${'x'.repeat(199)}. tail`;
    const clean = sanitizeName(name);
    expect(clean).toBe('x'.repeat(199));
    expect(new TextEncoder().encode(clean).byteLength).toBeLessThanOrEqual(200);
  });
});

describe('originalName in the metadata', () => {
  let tmp: TempDir;
  beforeEach(async () => {
    tmp = await makeTempDir();
  });
  afterEach(async () => {
    await tmp.cleanup();
  });

  it('is stored with the upload and survives a restart; the file gets the sanitized name', async () => {
    const store = new DiskStore({ dir: tmp.path });
    await store.init();
    const id = 'c'.repeat(32);
    const sent = 'invoice\u202Efdp.exe';
    const info: UploadInfo = {
      id,
      secretHash: '0'.repeat(64),
      fileSize: 3,
      chunkSize: 65_536,
      name: sanitizeName(sent),
      originalName: sent,
      contentType: '',
      metadata: {},
      createdAt: Date.now(),
    };
    const handle = await store.create(info);
    await handle.writeAt(new Uint8Array([1, 2, 3]), 0);
    await handle.recordChunks([{ index: 0, hash: 1n }], false);
    const done = await handle.finish('0'.repeat(16));
    expect(done.location).toBe(join(tmp.path, 'files', id, 'invoicefdp.exe'));
    const restarted = new DiskStore({ dir: tmp.path });
    await restarted.init();
    expect((await restarted.readState(id))?.info.originalName).toBe(sent);
    expect((await storedMeta(tmp.path, id)).info.originalName).toBe(sent);
  });
});

describe('safeRelativePath: bounded folders', () => {
  it(`keeps at most MAX_FOLDER_PATH_BYTES (${MAX_FOLDER_PATH_BYTES}) of folder names: the rest joins the name, so no stored path passes PATH_MAX`, () => {
    const long = 'd'.repeat(200);
    const parts = safeRelativePath('f.bin', `${Array(20).fill(long).join('/')}/f.bin`);
    const folders = parts.slice(0, -1);
    expect(folders.length).toBe(5); // 5 x 201 bytes fit in 1,024, a sixth does not
    expect(folders.reduce((n, f) => n + f.length + 1, 0)).toBeLessThanOrEqual(
      MAX_FOLDER_PATH_BYTES,
    );
    const name = parts[parts.length - 1] ?? '';
    expect(new TextEncoder().encode(name).byteLength).toBeLessThanOrEqual(200);
    expect(name.startsWith('ddd')).toBe(true);
    // The same input gives the same place (a retried COMPLETE lands where the first one would).
    expect(safeRelativePath('f.bin', `${Array(20).fill(long).join('/')}/f.bin`)).toEqual(parts);
    // Short folders are untouched up to MAX_PATH_DEPTH.
    expect(safeRelativePath('x', 'a/b/c/x')).toEqual(['a', 'b', 'c', 'x']);
  });
});
