import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backoffDelay, resolveBackoff } from '../../client/core/backoff.js';
import { defaultFingerprint, endpointKey } from '../../client/core/fingerprint.js';
import { RateMeter, TokenBucket } from '../../client/core/rate.js';
import { openFileSource } from '../../client/node/file-source.js';
import { JsonFileResumeStore, defaultStatePath } from '../../client/node/state-store.js';
import type { ResumeRecord } from '../../client/core/types.js';
import { memorySource, randomBytes } from './fakes.js';

describe('backoff', () => {
  it('grows by factor, caps at max, and jitters downwards only', () => {
    const b = resolveBackoff({ initial: 100, factor: 2, max: 1000, jitter: 0.5 });
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(b, n, () => 0))).toEqual([
      100, 200, 400, 800, 1000, 1000,
    ]);
    expect(backoffDelay(b, 3, () => 1)).toBe(200);
    expect(backoffDelay(b, 3, () => 0.999999)).toBeGreaterThanOrEqual(200);
  });

  it('refuses nonsense at construction', () => {
    expect(() => resolveBackoff({ factor: 0.5 })).toThrow(/factor/);
    expect(() => resolveBackoff({ jitter: 2 })).toThrow(/jitter/);
    expect(() => resolveBackoff({ initial: 10, max: 5 })).toThrow(/max/);
  });
});

describe('TokenBucket', () => {
  it('holds the long-run rate and lets one chunk go into debt', () => {
    const bucket = new TokenBucket(1000, 0, 0.25);
    expect(bucket.delay(0)).toBe(0);
    bucket.take(500, 0);
    expect(bucket.delay(0)).toBe(500); // 500 bytes of debt at 1000 B/s
    expect(bucket.delay(250)).toBe(250);
    expect(bucket.delay(500)).toBe(0);
    // Idle time accrues at most the burst allowance (250 bytes).
    expect(bucket.delay(10_000)).toBe(0);
    bucket.take(1250, 10_000);
    expect(bucket.delay(10_000)).toBe(1000);
  });
});

describe('RateMeter', () => {
  it('converges on a steady rate and ignores sub-interval bursts', () => {
    const meter = new RateMeter(1000, 100);
    meter.add(0, 0);
    for (let t = 10; t <= 5000; t += 10) meter.add(10_000, t); // 1 MB/s
    expect(meter.bytesPerSecond).toBeGreaterThan(0.95e6);
    expect(meter.bytesPerSecond).toBeLessThan(1.05e6);
  });
});

describe('fingerprint', () => {
  it('depends on name, size, mtime and content, never on the token', async () => {
    const bytes = randomBytes(300_000);
    const a = await defaultFingerprint(memorySource(bytes), 'ws://h/upload?token=secret');
    expect(a).not.toContain('secret');
    expect(a).toBe(await defaultFingerprint(memorySource(bytes), 'ws://h/upload'));
    const changed = bytes.slice();
    changed[150_000] ^= 1; // inside the middle sample
    expect(await defaultFingerprint(memorySource(changed), 'ws://h/upload')).not.toBe(a);
    expect(await defaultFingerprint(memorySource(bytes, 'other.bin'), 'ws://h/upload')).not.toBe(a);
    expect(endpointKey('ws://h/u?x=1')).toBe('ws://h/u');
  });
});

describe('Node file source', () => {
  it('reads ranges into the target lazily and notices a file that shrank', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bigup-fs-'));
    try {
      const path = join(dir, 'f.bin');
      const bytes = randomBytes(100_000);
      await writeFile(path, bytes);
      const source = await openFileSource(path);
      expect(source).toMatchObject({ name: 'f.bin', size: 100_000 });
      const target = new Uint8Array(20 + 1000);
      const view = await source.read(5000, 6000, target.subarray(20));
      expect(view.buffer).toBe(target.buffer);
      expect(view.byteOffset).toBe(20);
      expect(Buffer.from(view).equals(Buffer.from(bytes.subarray(5000, 6000)))).toBe(true);
      await truncate(path, 50_000);
      await expect(source.read(60_000, 70_000)).rejects.toThrow(/changed/);
      await source.close?.();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('JSON state store', () => {
  const record: ResumeRecord = {
    version: 1,
    endpoint: 'ws://h/upload',
    uploadId: 'ab'.repeat(16),
    secret: 'cd'.repeat(32),
    name: 'f',
    size: 1,
    lastModified: 2,
    chunkSize: 65536,
    createdAt: 3,
  };

  it('stores, reads back and removes records in a 0600 file, surviving a damaged file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bigup-state-'));
    try {
      const path = join(dir, 'nested', 'state.json');
      const store = new JsonFileResumeStore(path);
      expect(await store.get('k')).toBeUndefined();
      await Promise.all([store.set('k', record), store.set('k2', { ...record, size: 2 })]);
      expect(await store.get('k')).toEqual(record);
      expect((await store.get('k2'))?.size).toBe(2);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      await store.remove('k');
      expect(await store.entries()).toEqual([['k2', { ...record, size: 2 }]]);
      expect(await new JsonFileResumeStore(path).entries()).toEqual([
        ['k2', { ...record, size: 2 }],
      ]);
      await writeFile(path, '{not json');
      expect(await store.get('k2')).toBeUndefined();
      await store.set('k3', record);
      expect(await store.get('k3')).toEqual(record);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('appends one line per edit instead of rewriting the file, and other processes see it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bigup-state-'));
    try {
      const path = join(dir, 'state.json');
      const store = new JsonFileResumeStore(path);
      await store.set('k0', record);
      const before = await stat(path);
      const other = new JsonFileResumeStore(path);
      expect(await other.get('k0')).toEqual(record);
      // 200 edits, 50 at a time: the file is appended to (same inode), one line per edit.
      for (let round = 0; round < 4; round++)
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.set(`k${round * 50 + i + 1}`, record)),
        );
      const after = await stat(path);
      expect(after.ino).toBe(before.ino);
      const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
      expect(lines[0]).toBe('{"bigUploaderState":2}');
      expect(lines).toHaveLength(202);
      expect(JSON.parse(lines[201] ?? '')).toEqual({ set: 'k200', record });
      // The other instance catches up by reading the new tail.
      expect((await other.entries()).length).toBe(201);
      await other.remove('k7');
      expect(await store.get('k7')).toBeUndefined();
      // A torn last line (a crash mid-append) is skipped; the lines before it hold.
      await writeFile(path, '{"set":"torn","rec', { flag: 'a' });
      const fresh = new JsonFileResumeStore(path);
      expect((await fresh.entries()).length).toBe(200);
      expect(await fresh.get('torn')).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('compacts a log of mostly dead lines, and takes over a state file of the earlier format', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bigup-state-'));
    try {
      const path = join(dir, 'state.json');
      await writeFile(
        path,
        JSON.stringify({ version: 1, records: { old: record } }, null, 2) + '\n',
      );
      const store = new JsonFileResumeStore(path);
      expect(await store.get('old')).toEqual(record);
      expect((await readFile(path, 'utf8')).split('\n')[0]).toBe('{"bigUploaderState":2}');
      // A folder's worth of files each set and removed: the log does not grow without bound.
      for (let i = 0; i < 3000; i += 100)
        await Promise.all(
          Array.from({ length: 100 }, async (_, j) => {
            await store.set(`f${i + j}`, record);
            await store.remove(`f${i + j}`);
          }),
        );
      const lines = (await readFile(path, 'utf8')).trimEnd().split('\n');
      expect(lines.length).toBeLessThan(1100);
      expect(await new JsonFileResumeStore(path).entries()).toEqual([['old', record]]);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('documents its default location', () => {
    expect(defaultStatePath({ BIG_UPLOADER_STATE: '/x/s.json' })).toBe('/x/s.json');
    expect(defaultStatePath({ XDG_STATE_HOME: '/st' })).toBe('/st/big-uploader/state.json');
    expect(defaultStatePath({ HOME: '/home/u' })).toMatch(/\.big-uploader\/state\.json$/);
  });
});
