/**
 * Small files whole in their OPEN (SPEC.md 16.11) on the server: granted in WELCOME up to
 * `maxInlineFileSize`, answered by RESULT alone (no ACCEPT, ACK or journal), stored byte-identical
 * and durably where the metadata says; a wrong digest stores nothing; a file above the granted
 * size, or any without the grant, is LIMIT_EXCEEDED; bytes equal to content the client already
 * stored are adopted (RESULT with INSTANT, no byte stored); the message size bound follows the
 * grant; a hostile client holds at most MULTIPLEX such OPENs while another still uploads.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Capability,
  LimitsV2,
  encodeOpen,
  inlineFileLimitOf,
  wholeFileDigest,
  withStream,
  type CapabilityEntry,
} from '../../protocol/index.js';
import { DiskStore } from '../../server/index.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { storedLocation } from '../helpers/stored.js';
import { listFiles, makeTempDir, type TempDir } from '../helpers/tmp.js';

const ADMIN = 'admin-secret';
/** How long a test waits for a RESULT (a wait, not a speed check). */
const COMPLETION_WAIT = 45_000;
const INLINE: CapabilityEntry[] = [
  { id: Capability.MULTIPLEX, value: 4 },
  { id: Capability.OPEN_WITH_DATA, value: LimitsV2.MAX_INLINE_FILE_SIZE },
];

describe('OPEN with data (SPEC.md 16.11)', () => {
  let tmp: TempDir;
  let server: TestServer;

  async function start(options: Parameters<typeof startServer>[0] = { dir: '' }): Promise<void> {
    // Clients here have no subject: they share their address's content (not the default).
    server = await startServer({
      adminToken: ADMIN,
      metrics: true,
      instantUpload: 'address',
      ...options,
      dir: tmp.path,
    });
  }

  beforeEach(async () => {
    tmp = await makeTempDir();
  });

  afterEach(async () => {
    await server?.close();
    await tmp.cleanup();
  });

  async function connect(capabilities = INLINE): Promise<RawClientV2> {
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello(capabilities);
    await client.waitFor((f) => f.message.type === 'welcome');
    return client;
  }

  function digestOf(client: RawClientV2, bytes: Uint8Array): bigint {
    return wholeFileDigest(client.hasher, bytes.byteLength > 0 ? [client.hasher.h64(bytes)] : []);
  }

  function openWithData(
    client: RawClientV2,
    stream: number,
    bytes: Uint8Array,
    fields: { digest?: bigint; name?: string; metadata?: Record<string, string> } = {},
  ): void {
    client.open(stream, {
      fileSize: bytes.byteLength,
      chunkSize: 4 * 1024 * 1024,
      name: fields.name ?? `f${stream}.bin`,
      metadata: fields.metadata ?? {},
      digest: fields.digest ?? digestOf(client, bytes),
      data: bytes,
    });
  }

  async function bytesReceived(): Promise<number> {
    const text = await (
      await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).text();
    const match = /^bigup_bytes_received_total(?:\{[^}]*\})? (\d+)$/m.exec(text);
    return match ? Number(match[1]) : 0;
  }

  it('is granted up to maxInlineFileSize, and only when offered', async () => {
    await start({ dir: '', maxInlineFileSize: 4096 });
    const asked = await connect();
    const welcome = asked.inbox.find((f) => f.message.type === 'welcome')?.message;
    expect(welcome?.type === 'welcome' && inlineFileLimitOf(welcome.capabilities)).toBe(4096);
    asked.close();
    const notAsked = await connect([{ id: Capability.MULTIPLEX, value: 4 }]);
    const plain = notAsked.inbox.find((f) => f.message.type === 'welcome')?.message;
    expect(plain?.type === 'welcome' && inlineFileLimitOf(plain.capabilities)).toBe(0);
    notAsked.close();
    await server.close();
    await start({ dir: '', maxInlineFileSize: 0 });
    const off = await connect();
    const none = off.inbox.find((f) => f.message.type === 'welcome')?.message;
    expect(none?.type === 'welcome' && none.capabilities.map((c) => c.id)).not.toContain(
      Capability.OPEN_WITH_DATA,
    );
    off.close();
  });

  it('in durable mode the data is flushed once, by the completion: nothing is acked before it', async () => {
    await start({ dir: '', durable: true });
    const client = await connect();
    const bytes = new Uint8Array(randomBytes(20_000));
    // Every fdatasync of a file handle in this process while the one upload is stored.
    const probe = await open(join(tmp.path, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const original = proto.datasync;
    const flushed: number[] = [];
    proto.datasync = async function (this: { fd: number }): Promise<void> {
      flushed.push(this.fd);
      return original.call(this);
    };
    try {
      openWithData(client, 1, bytes);
      const result = await client.expect(1, 'result', COMPLETION_WAIT);
      const location = await storedLocation(tmp.path, Buffer.from(result.uploadId).toString('hex'));
      expect(Buffer.from(await readFile(location)).equals(Buffer.from(bytes))).toBe(true);
    } finally {
      proto.datasync = original;
    }
    // The data file once, the ledger once (directories are fsynced, not fdatasynced).
    expect(flushed).toHaveLength(2);
    expect(new Set(flushed).size).toBe(2);
    client.close();
  });

  it('stores the file and answers RESULT alone: no ACCEPT, no ACK, the bytes where the metadata says', async () => {
    await start();
    const client = await connect();
    const files = [
      new Uint8Array(randomBytes(1)),
      new Uint8Array(randomBytes(16_384)),
      new Uint8Array(randomBytes(LimitsV2.MAX_INLINE_FILE_SIZE)),
      new Uint8Array(0),
    ];
    files.forEach((bytes, i) =>
      openWithData(client, i + 1, bytes, { metadata: { relativePath: `tree/f${i}.bin` } }),
    );
    const ids: string[] = [];
    for (const [i, bytes] of files.entries()) {
      const result = await client.expect(i + 1, 'result', COMPLETION_WAIT);
      expect(result.fileSize).toBe(bytes.byteLength);
      expect(result.digest).toBe(digestOf(client, bytes));
      expect(result.instant).toBeUndefined();
      expect(client.on(i + 1).map((m) => m.type)).toEqual(['result']);
      const id = Buffer.from(result.uploadId).toString('hex');
      ids.push(id);
      const location = await storedLocation(tmp.path, id);
      expect(Buffer.from(await readFile(location)).equals(Buffer.from(bytes))).toBe(true);
    }
    // Each file landed under the connection's batch folder, by its relative path.
    const stored = (await listFiles(join(tmp.path, 'files'))).sort();
    expect(stored.filter((p) => p.includes('/tree/')).length).toBe(4);
    // Nothing of the uploads is left but their metadata: no .part, no journal. The four records
    // are lines of one ledger (completion-ledger.ts), each upload's <id>.json a link to it: no
    // file made per upload.
    const left = await readdir(join(tmp.path, 'uploads'));
    expect(left.filter((n) => n.endsWith('.part') || n.endsWith('.journal'))).toEqual([]);
    const metadata = left.filter((n) => n.endsWith('.json'));
    expect(metadata).toHaveLength(4);
    const inodes = await Promise.all(
      metadata.map(async (n) => (await stat(join(tmp.path, 'uploads', n))).ino),
    );
    expect(new Set(inodes).size).toBe(1);
    expect(left.filter((n) => n.endsWith('.ledger'))).toHaveLength(1);
    expect(await bytesReceived()).toBe(1 + 16_384 + LimitsV2.MAX_INLINE_FILE_SIZE);
    client.close();
    // Closing the server closes the ledger: its name goes, the records stay readable.
    await server.close();
    const after = await readdir(join(tmp.path, 'uploads'));
    expect(after.filter((n) => n.endsWith('.ledger'))).toEqual([]);
    for (const [i, bytes] of files.entries()) {
      const location = await storedLocation(tmp.path, ids[i]);
      expect(Buffer.from(await readFile(location)).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it('a digest that does not match the data stores nothing, ends the stream, and the connection goes on', async () => {
    await start();
    const client = await connect();
    const bytes = new Uint8Array(randomBytes(1000));
    openWithData(client, 1, bytes, { digest: digestOf(client, bytes) ^ 1n });
    const error = await client.expect(1, 'error', COMPLETION_WAIT);
    expect(error.code).toBe(0x0107); // DIGEST_MISMATCH
    // The stream is over (a message for it is dropped); the connection takes the next file.
    openWithData(client, 2, bytes);
    await client.expect(2, 'result', COMPLETION_WAIT);
    expect(client.on(1).map((m) => m.type)).toEqual(['error']);
    const metas = (await readdir(join(tmp.path, 'uploads'))).filter((n) => n.endsWith('.json'));
    expect(metas.length).toBe(1);
    client.close();
  });

  it('a file above the granted size, or any file without the grant, is LIMIT_EXCEEDED (1008)', async () => {
    await start({ dir: '', maxInlineFileSize: 1000 });
    const over = await connect();
    openWithData(over, 1, new Uint8Array(1001));
    expect((await over.expect(0, 'error')).code).toBe(0x0008);
    expect((await over.closed).code).toBe(1008);
    // Not even an empty file goes in an OPEN without the grant.
    const ungranted = await connect([{ id: Capability.MULTIPLEX, value: 4 }]);
    openWithData(ungranted, 1, new Uint8Array(0));
    expect((await ungranted.expect(0, 'error')).code).toBe(0x0008);
    expect((await ungranted.closed).code).toBe(1008);
    expect(await listFiles(join(tmp.path, 'files')).catch(() => [])).toEqual([]);
  });

  it('the message bound follows the grant: the largest OPEN with data passes, one byte more is refused at its header (1009)', async () => {
    await start();
    const client = await connect();
    const big = new Uint8Array(randomBytes(LimitsV2.MAX_INLINE_FILE_SIZE));
    openWithData(client, 1, big, { metadata: { note: 'n'.repeat(4096) } });
    await client.expect(1, 'result', COMPLETION_WAIT);
    client.close();
    // Without the grant the bound is an OPEN's: the same message is refused before it is read.
    const plain = await connect([{ id: Capability.MULTIPLEX, value: 4 }]);
    plain.send(
      withStream(
        1,
        encodeOpen({
          fileSize: big.byteLength,
          chunkSize: 0,
          name: 'x',
          contentType: '',
          token: '',
          metadata: {},
          digest: digestOf(plain, big),
          data: big,
        }),
      ),
    );
    expect((await plain.closed).code).toBe(1009);
  });

  it('bytes equal to content the client stored before are adopted: RESULT with INSTANT, no byte stored', async () => {
    await start({ dir: '', instantUploadMinSize: 1 });
    const bytes = new Uint8Array(randomBytes(20_000));
    const first = await connect();
    openWithData(first, 1, bytes);
    const original = await first.expect(1, 'result', COMPLETION_WAIT);
    first.close();
    const before = await bytesReceived();
    const again = await connect([
      ...INLINE.slice(0, 1),
      { id: Capability.PROOF_OF_POSSESSION, value: 1 },
      INLINE[1],
    ]);
    openWithData(again, 1, bytes, { name: 'copy.bin' });
    const copy = await again.expect(1, 'result', COMPLETION_WAIT);
    expect(copy.instant).toBe(true);
    expect(copy.digest).toBe(original.digest);
    expect(Buffer.from(copy.uploadId).equals(Buffer.from(original.uploadId))).toBe(false);
    expect(await bytesReceived()).toBe(before);
    const location = await storedLocation(tmp.path, Buffer.from(copy.uploadId).toString('hex'));
    expect(Buffer.from(await readFile(location)).equals(Buffer.from(bytes))).toBe(true);
    // Different bytes of the same size are stored, not adopted.
    const other = new Uint8Array(randomBytes(20_000));
    openWithData(again, 2, other);
    expect((await again.expect(2, 'result', COMPLETION_WAIT)).instant).toBeUndefined();
    expect(await bytesReceived()).toBe(before + 20_000);
    again.close();
  });

  it('below instantUploadMinSize (default 64 KiB) content is neither remembered nor adopted; at it, it is', async () => {
    await start();
    const small = new Uint8Array(randomBytes(LimitsV2.MAX_INLINE_FILE_SIZE - 1));
    const large = new Uint8Array(randomBytes(LimitsV2.MAX_INLINE_FILE_SIZE));
    const withProof = [
      ...INLINE.slice(0, 1),
      { id: Capability.PROOF_OF_POSSESSION, value: 1 },
      INLINE[1],
    ];
    const first = await connect(withProof);
    openWithData(first, 1, small);
    openWithData(first, 2, large);
    expect((await first.expect(1, 'result', COMPLETION_WAIT)).instant).toBeUndefined();
    expect((await first.expect(2, 'result', COMPLETION_WAIT)).instant).toBeUndefined();
    first.close();
    // Only the large file's size has an index folder.
    const sizes = await readdir(join(tmp.path, 'content'));
    expect(sizes.map((name) => name.split('-')[0])).toEqual([String(large.byteLength)]);
    const before = await bytesReceived();
    const again = await connect(withProof);
    openWithData(again, 1, small, { name: 'small-again.bin' });
    openWithData(again, 2, large, { name: 'large-again.bin' });
    expect((await again.expect(1, 'result', COMPLETION_WAIT)).instant).toBeUndefined();
    expect((await again.expect(2, 'result', COMPLETION_WAIT)).instant).toBe(true);
    expect(await bytesReceived()).toBe(before + small.byteLength);
    again.close();
  });

  /** Replace a DiskStore method for the test's duration (restored by the returned function). */
  function patchStore(
    name: string,
    wrap: (
      original: (...args: unknown[]) => Promise<unknown>,
    ) => (...args: unknown[]) => Promise<unknown>,
  ): () => void {
    const proto = DiskStore.prototype as unknown as Record<string, unknown>;
    const original = proto[name] as (...args: unknown[]) => Promise<unknown>;
    proto[name] = wrap(original);
    return () => {
      proto[name] = original;
    };
  }

  it('a failure after the completion was committed keeps the metadata of the delivered file', async () => {
    // The move into place succeeds, then the step after it fails (EIO) once: the completed record
    // is committed, so the upload must not be discarded like one that never completed.
    let failed = false;
    const restore = patchStore(
      'moveInto',
      (original) =>
        async function (this: unknown, ...args: unknown[]) {
          const moved = await original.apply(this, args);
          if (!failed) {
            failed = true;
            throw Object.assign(new Error('EIO: fsync of the folder'), { code: 'EIO' });
          }
          return moved;
        },
    );
    try {
      await start();
      const client = await connect();
      openWithData(client, 1, new Uint8Array(randomBytes(1000)));
      const answer = await client.waitFor(
        (f) => f.message.type === 'error' || f.message.type === 'result',
        COMPLETION_WAIT,
      );
      expect(answer.message.type).toBe('error');
      await client.closed;
      const delivered = await listFiles(join(tmp.path, 'files'));
      expect(delivered.length).toBe(1);
      const metas = (await readdir(join(tmp.path, 'uploads'))).filter((n) => n.endsWith('.json'));
      expect(metas.length).toBe(1);
      const id = metas[0].slice(0, -'.json'.length);
      expect(await storedLocation(tmp.path, id)).toBe(join(tmp.path, 'files', delivered[0]));
    } finally {
      restore();
    }
  });

  it('a connection cut before the completion stores nothing: the client opens the file again', async () => {
    // Creating the upload is slow; the client goes away meanwhile.
    const restore = patchStore(
      'create',
      (original) =>
        async function (this: unknown, ...args: unknown[]) {
          await new Promise((resolve) => setTimeout(resolve, 300));
          return original.apply(this, args);
        },
    );
    try {
      await start();
      const client = await connect();
      openWithData(client, 1, new Uint8Array(randomBytes(1000)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      client.destroy();
      await expect
        .poll(async () => (await readdir(join(tmp.path, 'uploads'))).length, { timeout: 10_000 })
        .toBe(0);
      expect(await listFiles(join(tmp.path, 'files')).catch(() => [])).toEqual([]);
    } finally {
      restore();
    }
  });

  it('a hostile client holds at most MULTIPLEX OPENs with data: one more closes the connection (1008), and another client still uploads meanwhile', async () => {
    // The authorization hook holds the hostile client's OPENs (token "hold"), so none can finish
    // and free its stream; everyone else's pass.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    await start({
      dir: '',
      maxStreamsPerConnection: 4,
      authorizeUpload: async ({ token }) => {
        if (token === 'hold') await held;
        return true;
      },
    });
    const hostile = await connect([
      { id: Capability.MULTIPLEX, value: 64 },
      { id: Capability.OPEN_WITH_DATA, value: LimitsV2.MAX_INLINE_FILE_SIZE },
    ]);
    const bytes = new Uint8Array(LimitsV2.MAX_INLINE_FILE_SIZE);
    const holding = (stream: number): void =>
      hostile.open(stream, {
        fileSize: bytes.byteLength,
        chunkSize: 0,
        name: `h${stream}.bin`,
        token: 'hold',
        digest: digestOf(hostile, bytes),
        data: bytes,
      });
    for (let stream = 1; stream <= 4; stream++) holding(stream);
    // Four OPENs held: a well-behaved client on its own connection is not held up by them.
    const good = await connect();
    const mine = new Uint8Array(randomBytes(3000));
    openWithData(good, 1, mine);
    const result = await good.expect(1, 'result', COMPLETION_WAIT);
    const location = await storedLocation(tmp.path, Buffer.from(result.uploadId).toString('hex'));
    expect(Buffer.from(await readFile(location)).equals(Buffer.from(mine))).toBe(true);
    good.close();
    // The fifth is past the granted number of streams.
    holding(5);
    expect((await hostile.expect(0, 'error')).code).toBe(0x0008);
    expect((await hostile.closed).code).toBe(1008);
    // Released after their connection is gone, the held OPENs store nothing.
    release();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const metas = (await readdir(join(tmp.path, 'uploads'))).filter((n) => n.endsWith('.json'));
    expect(metas).toEqual([`${Buffer.from(result.uploadId).toString('hex')}.json`]);
  });
});
