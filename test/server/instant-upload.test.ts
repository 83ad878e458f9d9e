/**
 * Instant upload with proof of possession on the server (SPEC.md 16.10): an OPEN is challenged
 * only when content of its size exists in the client's scope (always with the global scope);
 * content the same client completed before is adopted at once (RESULT, no ACCEPT) after a correct
 * PROOF; a wrong proof, unknown content of that size and a replayed proof all continue as an
 * ordinary upload (ACCEPT), indistinguishable on the wire; another subject's content is never
 * challenged for; misuse is UNEXPECTED_MESSAGE.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Capability,
  Errors,
  encodeProof,
  loadHasher,
  wholeFileDigest,
  type ChallengeMessage,
  type Hasher,
} from '../../protocol/index.js';
import { DiskStore } from '../../server/store/disk-store.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import type { AppOptions } from '../../server/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const CHUNK = 65_536;
/** How long a test waits for a RESULT (a wait, not a speed check). */
const COMPLETION_WAIT = 45_000;
const SIZE = 5 * CHUNK + 1234;
const INSTANT = [
  { id: Capability.MULTIPLEX, value: 4 },
  { id: Capability.PROOF_OF_POSSESSION, value: 0 },
];

describe('instant upload with proof of possession (SPEC.md 16.10)', () => {
  let tmp: TempDir;
  let server: TestServer;
  let hasher: Hasher;
  const file = new Uint8Array(randomBytes(SIZE));

  beforeEach(async () => {
    tmp = await makeTempDir();
    hasher = await loadHasher();
    server = await startServer({
      dir: tmp.path,
      maxUploadSize: 16 * 1024 * 1024,
      // An OPEN proposing 0 gets CHUNK: content is then held at a size other than the proposal.
      defaultChunkSize: CHUNK,
      adminToken: 'admin-secret',
      // The token names the subject (the dedupe scope); no token: the client address.
      authorizeUpload: ({ token }) => (token ? { subject: token } : true),
      instantUpload: 'address',
    });
  });

  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  /**
   * The server again with `options` over this suite's base (its data folder, sizes, and the token
   * as the subject), the instant-upload scope left to `options` (the default unless given).
   */
  async function restartWith(options: Omit<AppOptions, 'dir'> = {}): Promise<void> {
    await server.close();
    server = await startServer({
      dir: tmp.path,
      maxUploadSize: 16 * 1024 * 1024,
      defaultChunkSize: CHUNK,
      authorizeUpload: ({ token }) => (token ? { subject: token } : true),
      ...options,
    });
  }

  function digestOf(bytes: Uint8Array): bigint {
    const hashes: bigint[] = [];
    for (let at = 0; at < bytes.byteLength; at += CHUNK)
      hashes.push(hasher.h64(bytes.subarray(at, at + CHUNK)));
    return wholeFileDigest(hasher, hashes);
  }

  function proofFor(challenge: ChallengeMessage, bytes: Uint8Array): bigint[] {
    return challenge.ranges.map(({ offset, length }) => {
      const joined = new Uint8Array(challenge.nonce.byteLength + length);
      joined.set(challenge.nonce);
      joined.set(bytes.subarray(offset, offset + length), challenge.nonce.byteLength);
      return hasher.h64(joined);
    });
  }

  /** Upload `bytes` the ordinary way (no PoP offered); returns the upload id. */
  async function uploadOnce(bytes: Uint8Array, token = ''): Promise<string> {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    client.open(1, {
      fileSize: bytes.byteLength,
      chunkSize: CHUNK,
      name: 'original.bin',
      token,
      digest: digestOf(bytes),
    });
    await client.expect(1, 'accept');
    for (let at = 0; at < bytes.byteLength; at += CHUNK)
      client.data(1, at, bytes.subarray(at, at + CHUNK));
    client.complete(1, digestOf(bytes));
    // A completion waits for several fsyncs: on a loaded CI machine those took over 10 s.
    const result = await client.expect(1, 'result', COMPLETION_WAIT);
    client.close();
    return Buffer.from(result.uploadId).toString('hex');
  }

  /** OPEN on a PoP connection (no digest up front); answer the CHALLENGE with `answer`. */
  async function instant(
    answer: (challenge: ChallengeMessage) => bigint[],
    options: { token?: string; bytes?: Uint8Array; openDigest?: bigint; proofDigest?: bigint } = {},
  ) {
    const bytes = options.bytes ?? file;
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    client.open(1, {
      fileSize: bytes.byteLength,
      chunkSize: CHUNK,
      name: 'copy.bin',
      token: options.token ?? '',
      metadata: { note: 'mine' },
      ...(options.openDigest === undefined ? {} : { digest: options.openDigest }),
    });
    const challenge = await client.expect(1, 'challenge');
    const hashes = answer(challenge);
    client.send(encodeProof(1, options.proofDigest ?? digestOf(bytes), hashes));
    const answerFrame = await client.waitFor(
      (f) => f.stream === 1 && (f.message.type === 'result' || f.message.type === 'accept'),
      COMPLETION_WAIT,
    );
    return { client, challenge, hashes, answer: answerFrame.message };
  }

  it('completes at once with a correct proof: a new upload id, its own name, the same bytes (a hard link)', async () => {
    const firstId = await uploadOnce(file);
    const { client, challenge, answer } = await instant((c) => proofFor(c, file));
    expect(challenge.ranges.length).toBe(8);
    for (const r of challenge.ranges) expect(r.offset + r.length).toBeLessThanOrEqual(SIZE);
    expect(answer.type).toBe('result');
    if (answer.type !== 'result') return;
    // No INSTANT flag where OPEN_WITH_DATA was not granted: a peer that predates it reads the
    // flag as a reserved bit (SPEC.md 16.4, 16.11).
    expect(answer.instant).toBeUndefined();
    const id = Buffer.from(answer.uploadId).toString('hex');
    expect(id).not.toBe(firstId);
    expect(answer.digest).toBe(digestOf(file));
    expect(client.on(1).map((m) => m.type)).toEqual(['challenge', 'result']);
    const copy = join(tmp.path, 'files', id, 'copy.bin');
    expect(await readFile(copy)).toEqual(Buffer.from(file));
    const original = await stat(join(tmp.path, 'files', firstId, 'original.bin'));
    expect((await stat(copy)).ino).toBe(original.ino);
    // Visible like any completed upload (RESULT carries no secret: the operator's view).
    const status = await fetch(`${server.url}/uploads/${id}`, {
      headers: { authorization: 'Bearer admin-secret' },
    });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ state: 'completed', name: 'copy.bin' });
    client.close();
  });

  it('content sent again and again, instantly, keeps one index entry per client: the index cannot be grown for free', async () => {
    await uploadOnce(file, 'alice');
    for (let i = 0; i < 5; i++) {
      const { client, answer } = await instant((c) => proofFor(c, file), { token: 'alice' });
      expect(answer.type).toBe('result');
      client.close();
    }
    // Another client holding the same content adds one entry of its own (all/ holds the latest).
    await uploadOnce(file, 'bob');
    const entries = await listFiles(join(tmp.path, 'content'));
    expect(entries).toHaveLength(3);
    expect(entries.filter((path) => path.split('/').at(-2) === 'all')).toHaveLength(1);
    expect(new Set(entries.map((path) => path.split('/').pop()))).toEqual(
      new Set([digestOf(file).toString(16).padStart(16, '0')]),
    );
  });

  it('names the chunk size in the CHALLENGE when the OPEN gets another than it proposed, to a client that offered value 1 only', async () => {
    await uploadOnce(file);
    // Proposing 0 (the server's choice): the agreed CHUNK is not the proposal.
    const named = await RawClientV2.connect(server.wsUrl);
    named.hello([
      { id: Capability.MULTIPLEX, value: 4 },
      { id: Capability.PROOF_OF_POSSESSION, value: 1 },
    ]);
    named.open(1, { fileSize: SIZE, chunkSize: 0, name: 'named.bin' });
    const challenge = await named.expect(1, 'challenge');
    expect(challenge.chunkSize).toBe(CHUNK);
    named.send(encodeProof(1, digestOf(file), proofFor(challenge, file)));
    const answer = await named.waitFor(
      (f) => f.stream === 1 && (f.message.type === 'result' || f.message.type === 'accept'),
    );
    expect(answer.message).toMatchObject({ type: 'result', digest: digestOf(file) });
    named.close();
    // A client that offered 0 knows no named chunk size: no CHALLENGE, an ordinary upload.
    const plain = await RawClientV2.connect(server.wsUrl);
    plain.hello(INSTANT);
    plain.open(1, { fileSize: SIZE, chunkSize: 0, name: 'plain.bin' });
    await plain.expect(1, 'accept');
    expect(plain.on(1).map((m) => m.type)).toEqual(['accept']);
    plain.close();
  });

  it('a wrong proof continues as an ordinary upload (ACCEPT), like content the server does not have', async () => {
    await uploadOnce(file);
    const wrong = await instant((c) => proofFor(c, file).map((h) => h ^ 1n));
    expect(wrong.answer).toMatchObject({ type: 'accept', created: true });
    wrong.client.close();
    const other = new Uint8Array(randomBytes(SIZE));
    const unknown = await instant((c) => proofFor(c, other), { bytes: other });
    expect(unknown.answer).toMatchObject({ type: 'accept', created: true });
    // Both conversations have the same shape on the wire.
    expect(wrong.client.on(1).map((m) => m.type)).toEqual(unknown.client.on(1).map((m) => m.type));
    unknown.client.close();
  });

  it('without content of that size in the scope the OPEN is answered at once (ACCEPT, no CHALLENGE)', async () => {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    client.open(1, { fileSize: SIZE, chunkSize: CHUNK, name: 'fresh.bin' });
    await client.expect(1, 'accept');
    expect(client.on(1).map((m) => m.type)).toEqual(['accept']);
    client.close();
  });

  it("another subject's content is never challenged for nor found", async () => {
    await uploadOnce(file, 'alice');
    const mallory = await RawClientV2.connect(server.wsUrl);
    mallory.hello(INSTANT);
    mallory.open(1, { fileSize: SIZE, chunkSize: CHUNK, name: 'x', token: 'mallory' });
    await mallory.expect(1, 'accept');
    expect(mallory.on(1).map((m) => m.type)).toEqual(['accept']);
    mallory.close();
    const alice = await instant((c) => proofFor(c, file), { token: 'alice' });
    expect(alice.answer.type).toBe('result');
    alice.client.close();
  });

  it('a digest given in the OPEN binds: a PROOF naming other content is answered ACCEPT', async () => {
    await uploadOnce(file);
    const other = new Uint8Array(randomBytes(SIZE));
    const bound = await instant((c) => proofFor(c, file), { openDigest: digestOf(other) });
    expect(bound.answer).toMatchObject({ type: 'accept', created: true });
    bound.client.close();
    const agreeing = await instant((c) => proofFor(c, file), { openDigest: digestOf(file) });
    expect(agreeing.answer.type).toBe('result');
    agreeing.client.close();
  });

  it('a proof recorded for one challenge is worth nothing on another (fresh nonce)', async () => {
    await uploadOnce(file);
    const first = await instant((c) => proofFor(c, file));
    expect(first.answer.type).toBe('result');
    first.client.close();
    const replay = await instant(() => first.hashes);
    expect(replay.answer).toMatchObject({ type: 'accept', created: true });
    replay.client.close();
  });

  it('PROOF without a CHALLENGE, or with the wrong count, is UNEXPECTED_MESSAGE; without the capability no CHALLENGE is sent', async () => {
    await uploadOnce(file);
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    client.open(1, { fileSize: 10, name: 'x' });
    await client.expect(1, 'accept');
    client.send(encodeProof(1, 1n, [1n]));
    const error = await client.waitFor((f) => f.message.type === 'error');
    expect(error.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code, fatal: true });

    const short = await RawClientV2.connect(server.wsUrl);
    short.hello(INSTANT);
    short.open(1, { fileSize: SIZE, chunkSize: CHUNK, name: 'y' });
    await short.expect(1, 'challenge');
    short.send(encodeProof(1, digestOf(file), [1n]));
    const shortError = await short.waitFor((f) => f.message.type === 'error');
    expect(shortError.message).toMatchObject({ code: Errors.UNEXPECTED_MESSAGE.code });

    const plain = await RawClientV2.connect(server.wsUrl);
    plain.hello(); // MULTIPLEX only
    plain.open(1, { fileSize: SIZE, chunkSize: CHUNK, name: 'z', digest: digestOf(file) });
    await plain.expect(1, 'accept');
    expect(plain.on(1).map((m) => m.type)).toEqual(['accept']);
    plain.close();
  });

  it('by default (scope subject) only a client with a subject finds content: one address may be many users', async () => {
    await restartWith();
    // Stored twice from one address: once with no subject, once as alice.
    await uploadOnce(file);
    await uploadOnce(file, 'alice');
    // Without a subject no CHALLENGE, even for what this address stored: an ordinary upload.
    const anonymous = await RawClientV2.connect(server.wsUrl);
    anonymous.hello(INSTANT);
    anonymous.open(1, { fileSize: SIZE, chunkSize: CHUNK, name: 'a.bin', digest: digestOf(file) });
    await anonymous.expect(1, 'accept');
    expect(anonymous.on(1).map((m) => m.type)).toEqual(['accept']);
    anonymous.close();
    // alice finds hers.
    const alice = await instant((c) => proofFor(c, file), { token: 'alice' });
    expect(alice.answer.type).toBe('result');
    alice.client.close();
  });

  it('counts each wrong proof for content it holds as a refusal (maxRefusedMessages): reads for nothing are bounded', async () => {
    await restartWith({ maxRefusedMessages: 3 });
    await uploadOnce(file, 'alice');
    // Another client uploads a file of its own while the wrong proofs come.
    const bystander = uploadOnce(new Uint8Array(randomBytes(SIZE)), 'bob');
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    let accepted = 0;
    for (let stream = 1; stream <= 6; stream++) {
      client.open(stream, {
        fileSize: SIZE,
        chunkSize: CHUNK,
        name: `guess-${stream}.bin`,
        token: 'alice',
      });
      const challenge = await client.expect(stream, 'challenge');
      // The right digest, hashes of nothing: each makes the server read ranges of its copy.
      client.send(
        encodeProof(
          stream,
          digestOf(file),
          challenge.ranges.map(() => 0n),
        ),
      );
      const answer = await client.waitFor(
        (f) =>
          (f.stream === stream && f.message.type === 'accept') ||
          (f.stream === 0 && f.message.type === 'error'),
        COMPLETION_WAIT,
      );
      if (answer.message.type === 'error') break;
      accepted++;
    }
    expect(accepted).toBe(3);
    const error = client.on(0).find((m) => m.type === 'error');
    expect(error?.type === 'error' && error.code).toBe(Errors.LIMIT_EXCEEDED.code);
    client.destroy();
    expect(await bystander).toMatch(/^[0-9a-f]{32}$/);
  });

  it('does not count a right proof the server could not check (its copy unreadable) as a refusal', async () => {
    // The store finds the content but cannot read it (moved by the application, a failed read).
    class UnreadableCopies extends DiskStore {
      override readContent(): Promise<Uint8Array> {
        return Promise.reject(new Error('EIO'));
      }
    }
    await restartWith({ store: new UnreadableCopies({ dir: tmp.path }), maxRefusedMessages: 3 });
    await uploadOnce(file, 'alice');
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    for (let stream = 1; stream <= 5; stream++) {
      client.open(stream, {
        fileSize: SIZE,
        chunkSize: CHUNK,
        name: `r${stream}.bin`,
        token: 'alice',
      });
      const challenge = await client.expect(stream, 'challenge');
      client.send(encodeProof(stream, digestOf(file), proofFor(challenge, file)));
      await client.expect(stream, 'accept', COMPLETION_WAIT);
      client.terminate(stream);
      await client.expect(stream, 'terminated');
    }
    expect(client.on(0).filter((m) => m.type === 'error')).toEqual([]);
    client.close();
  });

  it("with the global scope every OPEN is challenged, found or not (a size is another tenant's information)", async () => {
    await restartWith({ instantUpload: 'global' });
    const nothing = new Uint8Array(randomBytes(SIZE + 1));
    const unknown = await instant((c) => proofFor(c, nothing), { bytes: nothing });
    expect(unknown.client.on(1).map((m) => m.type)).toEqual(['challenge', 'accept']);
    unknown.client.close();
    // Content one subject delivered is found for another in this scope.
    await uploadOnce(file, 'alice');
    const shared = await instant((c) => proofFor(c, file), { token: 'bob' });
    expect(shared.answer.type).toBe('result');
    shared.client.close();
  });

  it('is not granted when the server turns it off', async () => {
    await server.close();
    server = await startServer({ dir: tmp.path, instantUpload: false });
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    const welcome = await client.waitFor((f) => f.message.type === 'welcome');
    expect(welcome.message).toEqual({
      type: 'welcome',
      capabilities: [{ id: Capability.MULTIPLEX, value: 4 }],
    });
    client.close();
  });

  it('with instant upload off, delivered content is not remembered (the index would be written for nothing)', async () => {
    await server.close();
    server = await startServer({ dir: tmp.path, instantUpload: false });
    await uploadOnce(file);
    expect(await listFiles(join(tmp.path, 'content')).catch(() => [])).toEqual([]);
  });

  it('a CHALLENGE never answered: the connection ends with IDLE_TIMEOUT and its upload slot is freed', async () => {
    await server.close();
    server = await startServer({
      dir: tmp.path,
      idleTimeout: 400,
      heartbeatInterval: 60_000,
      instantUpload: 'address',
      // One slot: while the unanswered CHALLENGE held it, any other OPEN was refused.
      maxUploads: 1,
    });
    await uploadOnce(file);
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(INSTANT);
    client.open(1, { fileSize: file.byteLength, chunkSize: CHUNK, name: 'never-proved.bin' });
    await client.expect(1, 'challenge');
    // No PROOF. The deadline is idleTimeout plus the file read at 32 MiB/s (under 1 ms here).
    const refusal = await client.waitFor((f) => f.message.type === 'error', 10_000);
    if (refusal.message.type === 'error')
      expect(refusal.message.code).toBe(Errors.IDLE_TIMEOUT.code);
    client.destroy();
    // The slot is free for another upload.
    const next = await RawClientV2.connect(server.wsUrl);
    next.hello(INSTANT);
    next.open(1, { fileSize: 10, chunkSize: CHUNK, name: 'next.bin' });
    await next.expect(1, 'accept');
    next.close();
  });
});
