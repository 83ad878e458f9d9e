/**
 * Races around a completion: the stream that sent COMPLETE goes away while the store finishes
 * (its connection closed, a takeover), a second COMPLETE arrives meanwhile, a reader of the
 * upload's state meets the completion between its record and its move, two PUTs of one chunk
 * are pending on an HTTP lease. Each store call that matters is held on a gate the test opens, so
 * the interleaving is the one named, every run.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Errors,
  bytesToHex,
  decodeServerMessage,
  encodeComplete,
  encodeOpen,
  hashToHex,
  loadHasher,
  type AcceptMessage,
  type ServerMessage,
} from '../../protocol/index.js';
import type { AppOptions, CompletedUpload } from '../../server/index.js';
import { DiskStore } from '../../server/store/disk-store.js';
import type { UploadHandle, UploadInfo, UploadStore } from '../../server/store/types.js';
import { RawClient, chunksOf, digestOf, sendChunks } from '../helpers/protocol-client.js';
import type { TestServer } from '../helpers/server.js';
import { serverPerTest } from '../helpers/server-per-test.js';

const CHUNK = 65_536;

/** A promise the test resolves, and one that says the gated call arrived. */
function gate(): { arrived: Promise<void>; wait(): Promise<void>; open(): void } {
  let arrive!: () => void;
  let release!: () => void;
  const arrived = new Promise<void>((resolve) => (arrive = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    arrived,
    wait: () => {
      arrive();
      return released;
    },
    open: () => release(),
  };
}

/** The disk store, with `finish` of every handle held on `finishGate` while it is set. */
function gatedStore(
  disk: DiskStore,
  hold: { finish?: ReturnType<typeof gate>; writeAt?: ReturnType<typeof gate> },
): UploadStore {
  const wrap = (handle: UploadHandle): UploadHandle =>
    Object.assign(Object.create(handle) as UploadHandle, {
      finish: async (digest: string, remember?: boolean) => {
        const held = hold.finish;
        hold.finish = undefined;
        if (held) await held.wait();
        return handle.finish(digest, remember);
      },
      writeAt: async (bytes: Uint8Array, position: number) => {
        const held = hold.writeAt;
        hold.writeAt = undefined;
        if (held) await held.wait();
        return handle.writeAt(bytes, position);
      },
    });
  return Object.assign(Object.create(disk) as DiskStore, {
    init: () => disk.init(),
    create: async (info: UploadInfo, intent?: Parameters<DiskStore['create']>[1]) =>
      wrap(await disk.create(info, intent)),
    open: async (id: string) => wrap(await disk.open(id)),
  });
}

/** An upload opened over the HTTP binding: its lease, id, and a PUT of one chunk's bytes. */
async function openOverHttp(
  server: TestServer,
  fileSize: number,
): Promise<{
  lease: string;
  id: string;
  put(index: number, bytes: Uint8Array): Promise<{ status: number; message: ServerMessage }>;
}> {
  const hasher = await loadHasher();
  const opened = await fetch(`${server.url}/upload`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: new Uint8Array(
      encodeOpen({
        fileSize,
        chunkSize: CHUNK,
        name: 'h.bin',
        contentType: '',
        token: '',
        metadata: {},
      }),
    ),
  });
  expect(opened.status).toBe(200);
  const lease = opened.headers.get('bigup-lease') ?? '';
  const accept = decodeServerMessage(new Uint8Array(await opened.arrayBuffer())) as AcceptMessage;
  const id = bytesToHex(accept.uploadId);
  const put = async (index: number, bytes: Uint8Array) => {
    const response = await fetch(`${server.url}/upload/${id}/chunks/${index}`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/octet-stream',
        'bigup-lease': lease,
        'bigup-hash': hashToHex(hasher.h64(bytes)),
      },
      body: new Uint8Array(bytes),
    });
    return {
      status: response.status,
      message: decodeServerMessage(new Uint8Array(await response.arrayBuffer())),
    };
  };
  return { lease, id, put };
}

describe('races around a completion', () => {
  const fixture = serverPerTest('bigup-race-');

  /** A server whose next finish waits on `held`, recording every completion it reports. */
  async function serveWithFinishHeld(options: Omit<AppOptions, 'dir'> = {}): Promise<{
    server: TestServer;
    held: ReturnType<typeof gate>;
    completed: CompletedUpload[];
  }> {
    const held = gate();
    const completed: CompletedUpload[] = [];
    const dir = await fixture.dir();
    const server = await fixture.server({
      ...options,
      store: gatedStore(new DiskStore({ dir }), { finish: held }),
      onUploadComplete: (upload) => {
        completed.push(upload);
      },
    });
    return { server, held, completed };
  }

  async function uploaded(
    data: Uint8Array,
  ): Promise<{ client: RawClient; accept: AcceptMessage; digest: bigint }> {
    const client = await RawClient.connect((await fixture.server()).wsUrl);
    client.open({ fileSize: data.byteLength, chunkSize: CHUNK, name: 'r.bin' });
    const accept = await client.expect('accept');
    const { errors } = await sendChunks(client, accept, data, chunksOf(data.byteLength, CHUNK));
    expect(errors).toEqual([]);
    const hasher = await loadHasher();
    return { client, accept, digest: digestOf(hasher, data, CHUNK) };
  }

  it('counts a completion whose connection closed during the finish: the event fires and the client limit is freed', async () => {
    const { server, held, completed } = await serveWithFinishHeld({
      maxUnfinishedUploadsPerClient: 1,
    });
    const data = randomBytes(4 * CHUNK);
    const { client, accept, digest } = await uploaded(data);
    client.complete(digest);
    await held.arrived;
    client.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    held.open();
    await expect.poll(() => completed.length, { timeout: 5000 }).toBe(1);
    expect(completed[0].id).toBe(bytesToHex(accept.uploadId));
    expect((await readFile(completed[0].location)).equals(data)).toBe(true);
    // The client's one unfinished upload is no longer counted: a new OPEN is accepted.
    const next = await RawClient.connect(server.wsUrl);
    next.open({ fileSize: CHUNK, chunkSize: CHUNK });
    await next.expect('accept');
    next.close();
    // A later COMPLETE of the same upload answers RESULT again, and is not counted twice.
    const again = await RawClient.connect(server.wsUrl);
    again.resume(accept.uploadId, accept.secret);
    await again.expect('accept');
    again.complete(digest);
    const result = await again.expect('result');
    expect(result.digest).toBe(digest);
    again.close();
    expect(completed).toHaveLength(1);
  });

  it('answers the COMPLETE of a takeover during another COMPLETE with RESULT, finishing the file once', async () => {
    const { server, held, completed } = await serveWithFinishHeld();
    const data = randomBytes(3 * CHUNK + 17);
    const { client: first, accept, digest } = await uploaded(data);
    first.complete(digest);
    await held.arrived;
    const second = await RawClient.connect(server.wsUrl);
    second.resume(accept.uploadId, accept.secret);
    await second.expect('accept');
    second.complete(digest);
    await new Promise((resolve) => setTimeout(resolve, 100));
    held.open();
    const result = await second.expect('result');
    expect(result.digest).toBe(digest);
    await first.expectError(Errors.TAKEN_OVER.code);
    await expect.poll(() => completed.length, { timeout: 5000 }).toBe(1);
    expect((await readFile(completed[0].location)).equals(data)).toBe(true);
    second.close();
  });

  it('leaves a completion in progress to itself when the upload state is read between its record and its move', async () => {
    const disk = new DiskStore({ dir: await fixture.dir() });
    // The folder step of every completion reads the upload's state first, as the sweeper, a
    // HEAD or a RESUME may at that moment: the completed record is there, the file not moved yet.
    const delivered = (disk as unknown as { delivered: { moveIn: DeliveredMoveIn } }).delivered;
    const moveIn = delivered.moveIn.bind(delivered);
    const states: unknown[] = [];
    let reading: string | undefined;
    delivered.moveIn = async (from, place) => {
      if (reading) states.push(await disk.readState(reading));
      return moveIn(from, place);
    };
    await fixture.server({ store: disk });
    const data = randomBytes(2 * CHUNK + 5);
    const { client, accept, digest } = await uploaded(data);
    reading = bytesToHex(accept.uploadId);
    client.complete(digest);
    const result = await client.expect('result');
    expect(result.digest).toBe(digest);
    expect(states).toHaveLength(1);
    const stored = await disk.readState(reading);
    expect(stored?.completion).toBeDefined();
    expect((await readFile(stored!.completion!.location)).equals(data)).toBe(true);
    client.close();
  });

  it('refuses a second PUT of a chunk pending on the same HTTP lease with CONFLICT, and answers the first one its own ACK', async () => {
    const hold: { writeAt?: ReturnType<typeof gate> } = {};
    const dir = await fixture.dir();
    const server = await fixture.server({
      store: gatedStore(new DiskStore({ dir }), hold),
    });
    const { id, put } = await openOverHttp(server, 2 * CHUNK);
    const a = randomBytes(CHUNK);
    const b = randomBytes(CHUNK);
    hold.writeAt = gate();
    const held = hold.writeAt;
    const first = put(0, a);
    await held.arrived;
    const second = await put(0, b);
    expect(second.status).toBe(409);
    expect(second.message.type === 'error' && second.message.code).toBe(Errors.CONFLICT.code);
    held.open();
    const answered = await first;
    expect(answered.status).toBe(200);
    expect(answered.message.type).toBe('ack');
    // Chunk 0 holds the first PUT's bytes.
    const part = await readFile(join(dir, 'uploads', `${id}.part`));
    expect(part.subarray(0, CHUNK).equals(a)).toBe(true);
  });

  it("refuses a PUT while the lease's COMPLETE is pending (409 CONFLICT, not fatal), and the COMPLETE still gets its RESULT", async () => {
    const { server, held, completed } = await serveWithFinishHeld();
    const hasher = await loadHasher();
    const data = randomBytes(2 * CHUNK);
    const { lease, id, put: putBytes } = await openOverHttp(server, data.byteLength);
    const put = (index: number) =>
      putBytes(index, data.subarray(index * CHUNK, (index + 1) * CHUNK));
    for (const index of [0, 1]) expect((await put(index)).status).toBe(200);
    const completing = fetch(`${server.url}/upload/${id}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'bigup-lease': lease },
      body: new Uint8Array(encodeComplete(digestOf(hasher, data, CHUNK))),
    });
    await held.arrived;
    const late = await put(1);
    expect(late.status).toBe(409);
    expect(late.message.type === 'error' && late.message.code).toBe(Errors.CONFLICT.code);
    expect(late.message.type === 'error' && late.message.fatal).toBe(false);
    held.open();
    const result = await completing;
    expect(result.status).toBe(200);
    expect(decodeServerMessage(new Uint8Array(await result.arrayBuffer())).type).toBe('result');
    expect(completed.map((upload) => upload.id)).toEqual([id]);
  });
});

type DeliveredMoveIn = (from: string, place: { location: string }) => Promise<boolean>;
