/**
 * Issue 14, points 1 and 2: `big-uploader send` never reports success for a file whose bytes
 * differ from what the server stored. A file edited between two runs (mtime put back with
 * utimes, so the resume fingerprint still matches) is uploaded afresh and stored byte-identical;
 * a file changed while it is being sent (appended, or overwritten in a part already sent) ends
 * with exit 5 and nothing stored as done. Plus a seeded property test mixing edits, truncations,
 * appends and kills: every run ends byte-identical or non-zero naming the change.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, open, readFile, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JsonFileResumeStore } from '../../client/node/state-store.js';
import { atLeast, runSend } from '../helpers/cli.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { seeded, suiteSeed } from '../reliability/lib/rng.js';

const MiB = 1024 * 1024;

type Report = Record<string, unknown>;

/** `send ... --json`: the one file's report as `report`. */
function send(args: string[], home: string) {
  const run = runSend<Report>([...args, '--json'], home);
  return { ...run, done: run.done.then((r) => ({ ...r, report: r.reports[0] })) };
}

/** Overwrite `bytes` at `offset` and put the mtime back with `touch -r` (exact to the nanosecond). */
async function editKeepingMtime(path: string, offset: number, bytes: Buffer): Promise<void> {
  const reference = `${path}.mtime`;
  execFileSync('touch', ['-r', path, reference]);
  const handle = await open(path, 'r+');
  await handle.write(bytes, 0, bytes.byteLength, offset);
  await handle.close();
  execFileSync('touch', ['-r', reference, path]);
}

/** Every completed file on the server, by upload id. */
async function storedFiles(dataDir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const root = join(dataDir, 'files');
  for (const id of await readdir(root).catch(() => [] as string[])) {
    for (const name of await readdir(join(root, id)))
      out.set(id, await readFile(join(root, id, name)));
  }
  return out;
}

async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}

let tmp: TempDir;
let dataDir: string;
let server: TestServer | undefined;

beforeEach(async () => {
  tmp = await makeTempDir('bigup-integrity-');
  dataDir = join(tmp.path, 'data');
  server = await startServer({ dir: dataDir });
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  await tmp.cleanup();
});

describe('send: a modified file is never stored as done', () => {
  it('a file edited between runs with its mtime restored: only the changed chunk is sent again (REPLACE_CHUNK), stored byte-identical', async () => {
    const path = join(tmp.path, 'edited.bin');
    await writeFile(path, randomBytes(16 * MiB));
    const args = [path, '--url', server!.wsUrl, '--chunk-size', '1MiB', '--window', '2MiB'];
    const first = send([...args, '--limit-rate', '8MiB'], tmp.path);
    await first.waitFor(atLeast(50));
    first.kill('SIGINT');
    expect((await first.done).code).toBe(130);
    const state = await readFile(join(tmp.path, 'state', 'big-uploader', 'state.json'), 'utf8');
    // 3,400 bytes rewritten at 1 MiB, inside the part the server already holds.
    await editKeepingMtime(path, 1 * MiB, randomBytes(3400));
    const second = await send(args, tmp.path).done;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/1 chunk\(s\) \(1048576 bytes\) changed since they were sent/);
    expect(second.report).toMatchObject({ state: 'done', digestVerified: true });
    // The same upload went on: what the server had and did not change was not sent again.
    expect(state).toContain(second.report.id as string);
    // At least half was acked before the cut: a fresh upload would send all 16 MiB again.
    expect(second.report.bytesSent as number).toBeLessThan(12 * MiB);
    const files = await storedFiles(dataDir);
    expect(files.size).toBe(1);
    expect(files.get(second.report.id as string)!.equals(await readFile(path))).toBe(true);
  });

  it('with --no-replace-changed (bigup.1) the same edit is uploaded afresh and stored byte-identical', async () => {
    const path = join(tmp.path, 'edited.bin');
    await writeFile(path, randomBytes(16 * MiB));
    const args = [
      path,
      '--url',
      server!.wsUrl,
      '--chunk-size',
      '1MiB',
      '--window',
      '2MiB',
      '--no-replace-changed',
    ];
    const first = send([...args, '--limit-rate', '8MiB'], tmp.path);
    await first.waitFor(atLeast(50));
    first.kill('SIGINT');
    expect((await first.done).code).toBe(130);
    // 3,400 bytes rewritten at 1 MiB, inside the part the server already holds.
    await editKeepingMtime(path, 1 * MiB, randomBytes(3400));
    const second = await send(args, tmp.path).done;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/changed since the earlier session/);
    expect(second.report).toMatchObject({ state: 'done', digestVerified: true });
    const files = await storedFiles(dataDir);
    expect(files.size).toBe(1);
    expect(files.get(second.report.id as string)!.equals(await readFile(path))).toBe(true);
  });

  it('a file appended to during the upload ends with exit 5 and nothing stored', async () => {
    const path = join(tmp.path, 'grows.bin');
    await writeFile(path, randomBytes(8 * MiB));
    // Slow enough (2 s) that the change lands well before the check that precedes COMPLETE.
    const run = send(
      [path, '--url', server!.wsUrl, '--chunk-size', '1MiB', '--limit-rate', '4MiB'],
      tmp.path,
    );
    await run.waitFor(atLeast(20));
    await appendFile(path, randomBytes(1 * MiB));
    const result = await run.done;
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr).toMatch(/changed during the upload/);
    expect((await storedFiles(dataDir)).size).toBe(0);
  });

  it('a file overwritten in a part already sent ends with exit 5 and nothing stored', async () => {
    const path = join(tmp.path, 'overwritten.bin');
    await writeFile(path, randomBytes(8 * MiB));
    const run = send(
      [path, '--url', server!.wsUrl, '--chunk-size', '1MiB', '--limit-rate', '4MiB'],
      tmp.path,
    );
    await run.waitFor(atLeast(40));
    const handle = await open(path, 'r+');
    await handle.write(randomBytes(4096), 0, 4096, 0);
    await handle.close();
    const result = await run.done;
    expect(result.code, result.stderr).toBe(5);
    expect((await storedFiles(dataDir)).size).toBe(0);
  });

  it('a file truncated during the upload ends with exit 5 and its server upload terminated (no debris)', async () => {
    const path = join(tmp.path, 'shrinks.bin');
    await writeFile(path, randomBytes(8 * MiB));
    const run = send(
      [path, '--url', server!.wsUrl, '--chunk-size', '1MiB', '--limit-rate', '4MiB'],
      tmp.path,
    );
    await run.waitFor(atLeast(20));
    await truncate(path, 1 * MiB);
    const result = await run.done;
    expect(result.code, result.stderr).toBe(5);
    // TERMINATE removed the partial upload: nothing waits for a TTL on the server.
    expect(
      await until(async () => (await readdir(join(dataDir, 'uploads'))).length === 0, 5000),
    ).toBe(true);
    expect((await storedFiles(dataDir)).size).toBe(0);
  });

  it('a changed file starts a new upload; the old partial is terminated and pruned from the state file', async () => {
    const path = join(tmp.path, 'versions.bin');
    await writeFile(path, randomBytes(6 * MiB));
    const args = [path, '--url', server!.wsUrl, '--chunk-size', '1MiB'];
    const first = send([...args, '--limit-rate', '4MiB'], tmp.path);
    await first.waitFor(atLeast(30));
    first.kill('SIGINT');
    expect((await first.done).code).toBe(130);
    const stateFile = join(tmp.path, 'state', 'big-uploader', 'state.json');
    const before = await new JsonFileResumeStore(stateFile).entries();
    expect(before).toHaveLength(1);
    const oldRecord = before[0][1];
    // A new version of the file: other size and mtime, so another fingerprint.
    await appendFile(path, randomBytes(1000));
    const second = await send([...args, '--limit-rate', '4MiB'], tmp.path).done;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/earlier upload of this file .* terminated on the server/);
    expect(second.report.id).not.toBe(oldRecord.uploadId);
    expect(await new JsonFileResumeStore(stateFile).entries()).toEqual([]);
    // The old partial is gone from the server (only the new upload's completion record remains).
    expect(
      (await readdir(join(dataDir, 'uploads'))).filter((f) => f.startsWith(oldRecord.uploadId)),
    ).toEqual([]);
    expect(
      (await storedFiles(dataDir)).get(second.report.id as string)!.equals(await readFile(path)),
    ).toBe(true);
  });

  it('property: edits, truncations, appends and kills between and during runs end identical or non-zero', async () => {
    const seed = suiteSeed(14);
    const rng = seeded(seed);
    const path = join(tmp.path, 'prop.bin');
    const outcomes: string[] = [];
    for (let round = 0; round < 6; round++) {
      // Sent at 1 MiB/s, so a change "during" a run (at 10-50%) lands long before its end.
      await writeFile(path, randomBytes(rng.int(1, 3) * MiB + rng.int(0, 4096)));
      const args = [path, '--url', server!.wsUrl, '--chunk-size', '256KiB', '--window', '1MiB'];
      let final:
        | { code: number | string; stderr: string; report: Record<string, unknown> | undefined }
        | undefined;
      for (let step = 0; step < 4 && final === undefined; step++) {
        const run = send([...args, '--limit-rate', '1MiB'], tmp.path);
        const action = rng.pick([
          'none',
          'kill',
          'edit-between',
          'truncate-between',
          'append-between',
          'edit-during',
          'append-during',
        ] as const);
        if (action !== 'none') {
          await run.waitFor(atLeast(rng.pick([10, 30, 50])), 20_000).catch(() => undefined);
          if (action === 'edit-during')
            await editKeepingMtime(path, rng.int(0, 512 * 1024), randomBytes(rng.int(1, 5000)));
          else if (action === 'append-during')
            await appendFile(path, randomBytes(rng.int(1, 70_000)));
          else run.kill(rng.chance(0.5) ? 'SIGKILL' : 'SIGINT');
        }
        const result = await run.done;
        if (action === 'edit-between')
          await editKeepingMtime(path, rng.int(0, 512 * 1024), randomBytes(rng.int(1, 5000)));
        if (action === 'truncate-between')
          await truncate(path, Math.max(1, (await stat(path)).size - rng.int(1, 200_000)));
        if (action === 'append-between') await appendFile(path, randomBytes(rng.int(1, 70_000)));
        outcomes.push(`${round}.${step}:${action}:${String(result.code)}`);
        if (result.code === 0 || result.code === 5) final = result;
      }
      if (final === undefined) final = await send(args, tmp.path).done;
      if (final.code === 0) {
        // Success means the stored file is exactly the file as it is now.
        const stored = (await storedFiles(dataDir)).get(final.report!.id as string);
        expect(stored?.equals(await readFile(path)), `seed ${seed} ${outcomes.join(' ')}`).toBe(
          true,
        );
      } else {
        expect(final.code, `seed ${seed} ${outcomes.join(' ')}\n${final.stderr}`).toBe(5);
        expect(final.stderr).toMatch(/changed|cannot read/);
      }
      outcomes.push(`=> ${String(final.code)}`);
    }
    console.log(`[integrity] seed ${seed}: ${outcomes.join(' ')}`);
  }, 180_000);
});
