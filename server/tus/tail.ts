/**
 * The partial tail of a tus upload: bytes a PATCH wrote past the last whole chunk.
 *
 * The store records whole chunks only (an xxHash64 per chunk, SPEC.md 8), while a tus client may
 * stop anywhere: a cut connection, or a client whose PATCHes are smaller than our chunk. Those
 * bytes are written positionally into the upload's data like any other, and described by one
 * small record per upload, kept beside the store:
 *
 *   <dir>/tus/<id>.tail   JSON {"v":1,"chunk":k,"length":t,"hash":"<xxHash64 of the t bytes>",
 *                         "writes":w}: chunk k's first t bytes (0 < t < chunk length) are written,
 *                         by w PATCHes that ended inside chunk k (absent in older records: 1).
 *                         Replaced atomically (written to <id>.tail.tmp, renamed over; in
 *                         durable mode the data, the temp file and the directory are fsynced).
 *
 * Trust rule: a tail is only believed after its bytes are read back from the upload's data and
 * hash to the recorded value, and only when it starts where the upload's whole chunks end. So the
 * offset HEAD reports after a crash of any kind (kill -9, power loss in default mode, a torn record)
 * never covers a byte that is not in the data: a lost tail costs its bytes, never correctness.
 * A record is written only after its bytes were written (and flushed, in durable mode).
 */
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { hashFromHex, hashToHex, type Hasher } from '../../protocol/index.js';
import { fsyncDir } from '../store/directory-syncs.js';

/** A tail as recorded: chunk `chunk`'s first `length` bytes hash to `hash`. */
export interface TailRecord {
  readonly chunk: number;
  readonly length: number;
  readonly hash: bigint;
  /** How many PATCHes ended inside this chunk (tusPartialWritesPerChunk); absent: 1. */
  readonly writes?: number;
}

const ID = /^[0-9a-f]{32}$/;
const { O_WRONLY, O_CREAT, O_TRUNC, O_NOFOLLOW, O_RDONLY } = fsConstants;

function isTailJson(
  value: unknown,
): value is { v: 1; chunk: number; length: number; hash: string; writes?: number } {
  const v = value as Record<string, unknown> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    v.v === 1 &&
    Number.isSafeInteger(v.chunk) &&
    (v.chunk as number) >= 0 &&
    Number.isSafeInteger(v.length) &&
    (v.length as number) > 0 &&
    typeof v.hash === 'string' &&
    /^[0-9a-f]{16}$/.test(v.hash) &&
    (v.writes === undefined || (Number.isSafeInteger(v.writes) && (v.writes as number) >= 1))
  );
}

export class TailStore {
  readonly dir: string;
  /**
   * Ids that may have a record (or a temp file) here: found at init, added at each write. A
   * removal of any other id touches no file, so the removal that follows every completed upload
   * (tus or not, UploadRegistry.onGone) costs a small file nothing (issue 16).
   */
  private readonly present = new Set<string>();

  constructor(
    dataDir: string,
    private readonly mode = { file: 0o600, dir: 0o700 },
  ) {
    this.dir = join(dataDir, 'tus');
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: this.mode.dir });
    const names = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of names) {
      const id = name.slice(0, 32);
      if (ID.test(id) && (name.endsWith('.tail') || name.endsWith('.tail.tmp')))
        this.present.add(id);
    }
  }

  private path(id: string, suffix = ''): string {
    // Defense in depth: only hex ids ever become a path.
    if (!ID.test(id)) throw new Error(`not an upload id: ${JSON.stringify(id)}`);
    return join(this.dir, `${id}.tail${suffix}`);
  }

  /** The recorded tail, or undefined when there is none or it cannot be read (a torn record). */
  async read(id: string): Promise<TailRecord | undefined> {
    if (!this.present.has(id)) return undefined;
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.path(id), O_RDONLY | O_NOFOLLOW);
      const text = await handle.readFile('utf8');
      const json: unknown = JSON.parse(text);
      if (!isTailJson(json)) return undefined;
      return {
        chunk: json.chunk,
        length: json.length,
        hash: hashFromHex(json.hash),
        ...(json.writes === undefined ? {} : { writes: json.writes }),
      };
    } catch {
      return undefined;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /** Replace the record atomically; with `sync`, durably (file, then directory). */
  async write(id: string, tail: TailRecord, sync: boolean): Promise<void> {
    const temp = this.path(id, '.tmp');
    this.present.add(id);
    const handle = await open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, this.mode.file);
    try {
      await handle.writeFile(
        JSON.stringify({
          v: 1,
          chunk: tail.chunk,
          length: tail.length,
          hash: hashToHex(tail.hash),
          writes: tail.writes ?? 1,
        }),
      );
      if (sync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, this.path(id));
    // A removal that ran meanwhile dropped the id: the file it could not see is listed again.
    this.present.add(id);
    if (sync) await fsyncDir(this.dir);
  }

  async remove(id: string): Promise<void> {
    if (!this.present.has(id)) return;
    await rm(this.path(id), { force: true });
    await rm(this.path(id, '.tmp'), { force: true });
    this.present.delete(id);
  }

  /** Ids that have a record (for the clean-up at start). */
  async ids(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith('.tail'))
      .map((n) => n.slice(0, 32))
      .filter((id) => ID.test(id));
  }
}

/**
 * Check a recorded tail against the bytes: `read` returns what the data holds at the tail's place.
 * Returns the tail when every byte is there and hashes right, else undefined.
 */
export async function verifyTail(
  tail: TailRecord,
  chunkSize: number,
  hasher: Hasher,
  read: (length: number, position: number) => Promise<Uint8Array>,
): Promise<TailRecord | undefined> {
  if (tail.length >= chunkSize) return undefined;
  const bytes = await read(tail.length, tail.chunk * chunkSize);
  if (bytes.byteLength !== tail.length || hasher.h64(bytes) !== tail.hash) return undefined;
  return tail;
}
