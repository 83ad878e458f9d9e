/**
 * Instant upload from the CLI (issue 18 B, SPEC.md 16.10): sending a file the server already holds
 * (the same client sent it before) completes without sending it, stored under a new id as a hard
 * link to the same bytes; `--no-instant` sends it; an edited file is sent.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runSend } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
type Report = Record<string, unknown>;

let tmp: TempDir;
let dataDir: string;
let server: TestServer;

beforeEach(async () => {
  tmp = await makeTempDir('bigup-instant-');
  dataDir = join(tmp.path, 'data');
  // `send` has no subject here: it shares its address's content (not the default).
  server = await startServer({ dir: dataDir, instantUpload: 'address' });
});

afterEach(async () => {
  await server.close();
  await tmp.cleanup();
});

async function sendWithLog(
  path: string,
  ...extra: string[]
): Promise<{ report: Report; stderr: string }> {
  const run = await runSend<Report>([path, '--url', server.wsUrl, '--json', ...extra], tmp.path)
    .done;
  expect(run.code, run.stderr).toBe(0);
  return { report: run.reports[0], stderr: run.stderr };
}

async function send(path: string, ...extra: string[]): Promise<Report> {
  return (await sendWithLog(path, ...extra)).report;
}

/** The CLI's info line when it hashes the whole file for a proof (SPEC.md 16.10). */
const HASHING_FOR_PROOF = /hashing it to prove the copy is ours/;

describe('send: instant upload', () => {
  it('a file the server holds completes without sending a byte, as a hard link under a new id', async () => {
    const path = join(tmp.path, 'video.bin');
    await writeFile(path, randomBytes(9 * MiB + 17));
    const fresh = await sendWithLog(path);
    const first = fresh.report;
    expect(first).toMatchObject({ bytesSent: 9 * MiB + 17, digestVerified: true });
    expect(first.instant).toBeUndefined();
    // Nothing of that size on the server: no CHALLENGE, so the file was not read an extra time.
    expect(fresh.stderr).not.toMatch(HASHING_FOR_PROOF);
    const repeat = await sendWithLog(path);
    expect(repeat.stderr).toMatch(HASHING_FOR_PROOF);
    const second = repeat.report;
    expect(second).toMatchObject({ bytesSent: 0, instant: true, digestVerified: true });
    expect(second.digest).toBe(first.digest);
    expect(second.id).not.toBe(first.id);
    const a = join(dataDir, 'files', first.id as string, 'video.bin');
    const b = join(dataDir, 'files', second.id as string, 'video.bin');
    expect((await stat(b)).ino).toBe((await stat(a)).ino);
    expect((await readFile(b)).equals(await readFile(path))).toBe(true);
  });

  it('--no-instant sends the file; an edited file is sent too', async () => {
    const path = join(tmp.path, 'doc.bin');
    const bytes = randomBytes(3 * MiB);
    await writeFile(path, bytes);
    await send(path);
    const again = await send(path, '--no-instant');
    expect(again.bytesSent).toBe(3 * MiB);
    expect(again.instant).toBeUndefined();
    bytes[MiB] ^= 0xff;
    await writeFile(path, bytes);
    const edited = await send(path);
    expect(edited.bytesSent).toBe(3 * MiB);
    expect(edited.instant).toBeUndefined();
    expect(
      (await readFile(join(dataDir, 'files', edited.id as string, 'doc.bin'))).equals(bytes),
    ).toBe(true);
  });
});
