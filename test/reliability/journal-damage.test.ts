/**
 * Journal damage (layout in server/store/journal.ts and disk-store.ts): a garbage tail, a torn
 * tail, truncation at random bytes, a stale temp file, a deleted journal, a damaged committed
 * record, a damaged metadata file. Every time the server must start cleanly and never claim a byte
 * it does not hold; a torn tail that was never acked is dropped; damage to a committed record must
 * deactivate the upload with UPLOAD_DAMAGED rather than silently shrink it (SPEC.md 7.2).
 */
import { randomBytes } from 'node:crypto';
import { appendFile, cp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Errors, bytesToHex, type AcceptMessage } from '../../protocol/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { recordFigures } from './lib/figures.js';
import {
  AckLog,
  chunksIn,
  finishUpload,
  mismatchedRanges,
  openOrResume,
  pump,
} from './lib/pump.js';
import { seeded, suiteSeed } from './lib/rng.js';

const CHUNK = 64 * 1024;
const FILE = 32 * CHUNK;
const ACKED = 20;
const RECORD = 32;

let base: TempDir;
let data: Buffer;
let upload: { id: Uint8Array; secret: Uint8Array };
let idHex: string;
const figures = {
  damagedCopies: 0,
  serverStarts: 0,
  uploadsCompleted: 0,
  bytesVerified: 0,
  claimsOfUnwrittenBytes: 0,
  truncationsTried: 0,
  crashes: 0,
};

/** A fresh copy of the baseline data directory (20 of 32 chunks acked, server stopped). */
async function copy(): Promise<TempDir> {
  const tmp = await makeTempDir('bigup-rel-journal-');
  await cp(base.path, tmp.path, { recursive: true });
  figures.damagedCopies++;
  return tmp;
}

const journalOf = (dir: string) => join(dir, 'uploads', `${idHex}.journal`);

/** Start a server on `dir`, RESUME, and return what the server said. Checks claims against the source. */
async function restartAndResume(dir: string): Promise<{
  accept?: AcceptMessage;
  errorCode?: number;
  close: () => Promise<void>;
  client: RawClient;
  url: string;
}> {
  const server = await startServer({ dir, logLevel: false });
  figures.serverStarts++;
  const health = await fetch(`${server.url}/healthz`);
  expect(health.status).toBe(200);
  const client = await RawClient.connect(server.wsUrl);
  client.resume(upload.id, upload.secret);
  const message = await client.next();
  const close = async () => {
    client.destroy();
    await server.close();
  };
  if (message.type === 'error')
    return { errorCode: message.code, close, client, url: server.wsUrl };
  expect(message.type).toBe('accept');
  const accept = message as AcceptMessage;
  // Whatever the damage: never a claim of bytes the server does not hold.
  const bad = await mismatchedRanges(join(dir, 'uploads', `${idHex}.part`), data, accept.ranges);
  figures.claimsOfUnwrittenBytes += bad.length;
  expect(bad).toEqual([]);
  // And never more than was acked before the damage.
  const claimed = chunksIn(accept.ranges, CHUNK, FILE);
  expect([...claimed].filter((i) => i >= ACKED)).toEqual([]);
  return { accept, close, client, url: server.wsUrl };
}

/** Send what is missing on the resumed connection and check the delivered file. */
async function finish(dir: string, client: RawClient, accept: AcceptMessage): Promise<void> {
  await finishUpload({ client, accept }, data);
  const stored = await readFile(join(dir, 'files', idHex, 'damage.bin'));
  expect(stored.equals(data)).toBe(true);
  figures.uploadsCompleted++;
  figures.bytesVerified += FILE;
}

function chunkRecordOffsets(journal: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + RECORD <= journal.byteLength; at += RECORD)
    if (journal[at] === 1) out.push(at);
  return out;
}

describe('journal damage', () => {
  beforeAll(async () => {
    base = await makeTempDir('bigup-rel-journal-base-');
    data = randomBytes(FILE);
    const server = await startServer({ dir: base.path, logLevel: false });
    const { client, accept, wireStart } = await openOrResume(server.wsUrl, undefined, {
      fileSize: FILE,
      chunkSize: CHUNK,
      name: 'damage.bin',
    });
    upload = { id: accept.uploadId, secret: accept.secret };
    idHex = bytesToHex(upload.id);
    const result = await pump(
      client,
      accept,
      data,
      [...Array(ACKED).keys()],
      new AckLog(CHUNK, FILE),
      { wireStart },
    );
    expect(result.ackedHere.length).toBe(ACKED);
    client.close();
    await client.closed;
    await server.close();
  });
  afterAll(async () => {
    await base.cleanup();
    recordFigures('journal-damage', figures);
  });

  it('garbage tail: dropped, every acked range kept', async () => {
    const tmp = await copy();
    try {
      await appendFile(journalOf(tmp.path), randomBytes(77));
      const r = await restartAndResume(tmp.path);
      expect(r.errorCode).toBeUndefined();
      expect(r.accept!.ranges).toEqual([{ start: 0, end: ACKED * CHUNK }]);
      await finish(tmp.path, r.client, r.accept!);
      await r.close();
    } finally {
      await tmp.cleanup();
    }
  });

  it('torn tail (a half-written record of a never-acked chunk): dropped, every acked range kept', async () => {
    const tmp = await copy();
    try {
      const journal = await readFile(journalOf(tmp.path));
      // The first 19 bytes of a CHUNK record, as a crash in the middle of an append leaves it.
      const torn = Buffer.from(
        journal.subarray(chunkRecordOffsets(journal)[0], chunkRecordOffsets(journal)[0] + 19),
      );
      torn.writeUInt32BE(25, 12);
      await appendFile(journalOf(tmp.path), torn);
      const r = await restartAndResume(tmp.path);
      expect(r.accept!.ranges).toEqual([{ start: 0, end: ACKED * CHUNK }]);
      await finish(tmp.path, r.client, r.accept!);
      await r.close();
    } finally {
      await tmp.cleanup();
    }
  });

  it('truncated at random bytes: starts cleanly, claims only a subset of what was acked, finishes identical', async () => {
    const rng = seeded(suiteSeed(0x6a726e6c));
    const size = (await readFile(journalOf(base.path))).byteLength;
    for (let n = 0; n < 8; n++) {
      const tmp = await copy();
      try {
        await truncate(journalOf(tmp.path), rng.int(0, size - 1));
        figures.truncationsTried++;
        const r = await restartAndResume(tmp.path);
        if (r.accept) await finish(tmp.path, r.client, r.accept);
        else expect(r.errorCode).toBe(Errors.UPLOAD_DAMAGED.code);
        await r.close();
      } finally {
        await tmp.cleanup();
      }
    }
  }, 30_000);

  it('stale temp files (metadata .json.tmp, also of an unknown id): ignored, every acked range kept', async () => {
    const tmp = await copy();
    try {
      await writeFile(
        join(tmp.path, 'uploads', `${idHex}.json.tmp`),
        '{"version":1,"info":{"id":"trunc',
      );
      await writeFile(join(tmp.path, 'uploads', `${'ab'.repeat(16)}.json.tmp`), randomBytes(100));
      const r = await restartAndResume(tmp.path);
      expect(r.accept!.ranges).toEqual([{ start: 0, end: ACKED * CHUNK }]);
      await finish(tmp.path, r.client, r.accept!);
      await r.close();
    } finally {
      await tmp.cleanup();
    }
  });

  it('journal deleted: starts cleanly, claims nothing it cannot prove, finishes identical', async () => {
    const tmp = await copy();
    try {
      await rm(journalOf(tmp.path));
      const r = await restartAndResume(tmp.path);
      if (r.accept) {
        // Records are the only proof of what was written: with them gone, nothing may be claimed.
        expect(r.accept.ranges).toEqual([]);
        await finish(tmp.path, r.client, r.accept);
      } else {
        expect(r.errorCode).toBe(Errors.UPLOAD_DAMAGED.code);
      }
      await r.close();
    } finally {
      await tmp.cleanup();
    }
  });

  // SPEC.md 7.2: "An upload whose records the server found damaged: UPLOAD_DAMAGED (fatal)". Once a
  // known bug: the journal reader stopped at the first bad record and truncated the file there, so
  // a bit flip in record 5 silently forgot the 15 acked chunks after it.
  it('damaged committed record (valid records after it): UPLOAD_DAMAGED, never a silent shrink', async () => {
    const tmp = await copy();
    try {
      const journal = await readFile(journalOf(tmp.path));
      const victim = chunkRecordOffsets(journal)[5];
      journal[victim + 20] ^= 0x40;
      await writeFile(journalOf(tmp.path), journal);
      const r = await restartAndResume(tmp.path);
      const shrunk = r.accept ? chunksIn(r.accept.ranges, CHUNK, FILE).size : undefined;
      // The upload is deactivated, not hidden: GET says so and claims nothing (SPEC.md 12)...
      const http = r.url.replace(/^ws/, 'http').replace(/\/upload$/, '');
      const state = await fetch(`${http}/uploads/${idHex}`, {
        headers: { 'Bigup-Secret': bytesToHex(upload.secret) },
      });
      const body =
        state.status === 200 ? ((await state.json()) as Record<string, unknown>) : undefined;
      // ...and the server keeps serving other uploads.
      const other = await RawClient.connect(r.url);
      other.open({ fileSize: CHUNK, chunkSize: CHUNK, name: 'other.bin' });
      const otherAnswer = (await other.next()).type;
      other.destroy();
      await r.close();
      expect(
        shrunk,
        `the upload silently shrank to ${shrunk} of ${ACKED} acked chunks`,
      ).toBeUndefined();
      expect(r.errorCode).toBe(Errors.UPLOAD_DAMAGED.code);
      expect(body).toMatchObject({ state: 'damaged', ackedBytes: 0, ranges: [] });
      expect(otherAnswer).toBe('accept');
      // The evidence stays for the operator: the journal is not cut.
      expect((await readFile(journalOf(tmp.path))).byteLength).toBe(journal.byteLength);
    } finally {
      await tmp.cleanup();
    }
  });

  // Same rule for the metadata file. Once a known bug: a garbled <id>.json answered INTERNAL_ERROR,
  // which the registry marks retryable, so a client retried forever instead of starting over.
  it('damaged metadata file: UPLOAD_DAMAGED (not a retryable INTERNAL_ERROR)', async () => {
    const tmp = await copy();
    try {
      const path = join(tmp.path, 'uploads', `${idHex}.json`);
      const meta = await readFile(path);
      await writeFile(path, meta.subarray(0, Math.floor(meta.byteLength / 2)));
      const r = await restartAndResume(tmp.path);
      await r.close();
      expect(r.errorCode).toBe(Errors.UPLOAD_DAMAGED.code);
    } finally {
      await tmp.cleanup();
    }
  });

  // The journal is created only after the metadata is durable and removal deletes the metadata
  // last, so a journal without metadata is damage (a lone .part is an OPEN never answered).
  it('metadata deleted while its journal exists: UPLOAD_DAMAGED', async () => {
    const tmp = await copy();
    try {
      await rm(join(tmp.path, 'uploads', `${idHex}.json`));
      const r = await restartAndResume(tmp.path);
      await r.close();
      expect(r.errorCode).toBe(Errors.UPLOAD_DAMAGED.code);
    } finally {
      await tmp.cleanup();
    }
  });
});
