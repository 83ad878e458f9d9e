/**
 * Issue 16, point 1: `big-uploader send DIR` uploads a tree (relative paths kept as metadata and
 * as folders under the upload's directory on the server), skips symbolic links unless --follow,
 * reports per-entry problems while the rest still uploads, and ends with a summary line.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { safeRelativePath } from '../../server/store/names.js';
import { runSend } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

interface Report {
  id: string;
  name: string;
  size: number;
  state: string;
}

let tmp: TempDir;
let server: TestServer;
let dataDir: string;

beforeEach(async () => {
  tmp = await makeTempDir('bigup-folders-');
  dataDir = join(tmp.path, 'data');
  server = await startServer({ dir: dataDir });
});
afterEach(async () => {
  await server.close();
  await tmp.cleanup();
});

/** Every stored file, by its path below files/<id or batch>/. */
async function storedTree(): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const root = join(dataDir, 'files');
  const walk = async (dir: string, base: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path, base);
      else out.set(relative(base, path), await readFile(path));
    }
  };
  for (const id of await readdir(root)) await walk(join(root, id), join(root, id));
  return out;
}

describe('send a folder', () => {
  it('uploads the tree with its relative paths; the server keeps the folders', async () => {
    const src = join(tmp.path, 'photos');
    const files: Record<string, Buffer> = {
      'a.jpg': randomBytes(1000),
      '2024/b.jpg': randomBytes(70_000),
      '2024/deep/er/c.txt': randomBytes(10),
      'empty.bin': Buffer.alloc(0),
    };
    for (const [rel, bytes] of Object.entries(files)) {
      await mkdir(join(src, rel, '..'), { recursive: true });
      await writeFile(join(src, rel), bytes);
    }
    const result = await runSend<Report>([src, '--url', server.wsUrl, '--json'], tmp.path).done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.reports.map((r) => r.name)).toEqual([
      'photos/2024/b.jpg',
      'photos/2024/deep/er/c.txt',
      'photos/a.jpg',
      'photos/empty.bin',
    ]);
    expect(result.stderr).toMatch(/4 files, .* files\/s, .* MB\/s, 0 failed/);
    const stored = await storedTree();
    for (const [rel, bytes] of Object.entries(files))
      expect(stored.get(join('photos', rel))?.equals(bytes), rel).toBe(true);
    // Sent over one bigup.2 connection: one batch, so the tree lands whole in one folder,
    // files/<batch>/photos/..., not one folder per file (issue 16).
    expect(await readdir(join(dataDir, 'files'))).toHaveLength(1);
  });

  it('skips symbolic links unless --follow (and walks a link cycle once)', async () => {
    const src = join(tmp.path, 'tree');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'real.txt'), 'real');
    await writeFile(join(tmp.path, 'outside.txt'), 'outside');
    await symlink(join(tmp.path, 'outside.txt'), join(src, 'link.txt'));
    await symlink(src, join(src, 'sub', 'loop'));
    const skipped = await runSend<Report>([src, '--url', server.wsUrl, '--json'], tmp.path).done;
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.reports.map((r) => r.name)).toEqual(['tree/real.txt']);
    expect(skipped.stderr).toMatch(/link\.txt: symbolic link skipped/);
    const followed = await runSend<Report>(
      [src, '--url', server.wsUrl, '--json', '--follow', '--no-resume'],
      tmp.path,
    ).done;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.reports.map((r) => r.name).sort()).toEqual(['tree/link.txt', 'tree/real.txt']);
  });

  it('an entry that is not a regular file fails alone; the rest still uploads and the exit code says so', async () => {
    // A named pipe stands for any entry that cannot be sent (the tests run as root, so a folder
    // without permission would still be readable).
    const src = join(tmp.path, 'mixed');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'ok.txt'), 'ok');
    execFileSync('mkfifo', [join(src, 'pipe')]);
    const result = await runSend<Report>([src, '--url', server.wsUrl, '--json'], tmp.path).done;
    expect(result.code).toBe(5);
    expect(result.reports.map((r) => r.name)).toEqual(['mixed/ok.txt']);
    expect(result.stderr).toMatch(/pipe: not a regular file/);
    expect(result.stderr).toMatch(/1 files, .*, 1 failed/);
    expect((await storedTree()).get(join('mixed', 'ok.txt'))?.toString()).toBe('ok');
  });

  it('relative paths are made safe component by component on the server', () => {
    expect(safeRelativePath('x', 'a/../../etc/passwd')).toEqual(['a', 'etc', 'passwd']);
    expect(safeRelativePath('x', '/abs/./b\\c.txt')).toEqual(['abs', 'b', 'c.txt']);
    expect(safeRelativePath('n.txt', undefined)).toEqual(['n.txt']);
    expect(safeRelativePath('n.txt', '..')).toEqual(['n.txt']);
    expect(safeRelativePath('x', 'CON/.hidden/evil\u202Etxt.exe')).toEqual([
      '_CON',
      'hidden',
      'eviltxt.exe',
    ]);
    expect(safeRelativePath('x', `${'d/'.repeat(40)}f`)).toHaveLength(33);
  });
});
