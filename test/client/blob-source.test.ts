/**
 * client/browser/blob-source.ts over a Node Blob: a read of the whole file uses the Blob itself
 * (in Chromium every slice() of a File is a synchronous call to the browser process), a read of
 * part of it a slice, and both return exactly the bytes asked for.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { blobSource } from '../../client/browser/blob-source.js';

describe('blobSource', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('reads a whole file without slicing it, and a part through a slice', async () => {
    const bytes = new Uint8Array(randomBytes(10_000));
    const blob = new Blob([bytes]);
    const slice = vi.spyOn(Blob.prototype, 'slice');
    const source = blobSource(blob, 'f.bin');

    expect(Buffer.from(await source.read(0, bytes.byteLength)).equals(bytes)).toBe(true);
    expect(slice).not.toHaveBeenCalled();

    const part = await source.read(100, 2100, new Uint8Array(4096));
    expect(Buffer.from(part).equals(bytes.subarray(100, 2100))).toBe(true);
    expect(slice).toHaveBeenCalledWith(100, 2100);
  });
});

describe('blobSource: a BYOB read that never settles', () => {
  /**
   * A Blob whose stream is a byte stream that delivers nothing, ever (as a Chromium BYOB read of a
   * File slice did beside a PUT of bytes), while `arrayBuffer()` works.
   */
  function stallingBlob(bytes: Uint8Array<ArrayBuffer>): Blob {
    const real = new Blob([bytes]);
    const fake = {
      size: real.size,
      type: '',
      slice: (start?: number, end?: number) => {
        const part = stallingBlob(bytes.subarray(start ?? 0, end ?? bytes.byteLength));
        return part;
      },
      stream: () => new ReadableStream({ type: 'bytes', pull: () => new Promise<void>(() => {}) }),
      arrayBuffer: () => real.arrayBuffer(),
    };
    return fake as unknown as Blob;
  }

  it('gives the read up after the stall time and reads the slice with arrayBuffer() instead', async () => {
    vi.resetModules(); // a fresh module: the fallback is remembered for the rest of the page
    const { blobSource: freshBlobSource } = await import('../../client/browser/blob-source.js');
    const bytes = new Uint8Array(randomBytes(3 * 2 ** 20));
    // A stall time far above what a read of 2 MiB takes on a loaded machine (at 50 ms, a CI run's
    // second read took 49 ms and the test failed for it).
    const source = freshBlobSource(stallingBlob(bytes), 'f.bin', { byobStallMs: 500 });
    const started = Date.now();
    const target = new Uint8Array(2 ** 21);
    const part = await source.read(2 ** 20, 3 * 2 ** 20, target);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(Buffer.from(part).equals(bytes.subarray(2 ** 20, 3 * 2 ** 20))).toBe(true);
    // BYOB is not tried again: the next read does not wait for the stall time.
    const again = Date.now();
    const next = await source.read(0, 2 ** 21, target);
    expect(Date.now() - again).toBeLessThan(450);
    expect(Buffer.from(next).equals(bytes.subarray(0, 2 ** 21))).toBe(true);
  });
});

describe('blobSource: reads that must not hang', () => {
  /** A byte stream that delivers `bytes` in one pull, then never closes, and whose cancel never settles. */
  function neverCancellingBlob(bytes: Uint8Array<ArrayBuffer>): Blob {
    const fake = {
      size: bytes.byteLength,
      type: '',
      slice: (start?: number, end?: number) =>
        neverCancellingBlob(bytes.subarray(start ?? 0, end ?? bytes.byteLength)),
      stream: () => {
        let sent = 0;
        return new ReadableStream({
          type: 'bytes',
          pull(controller) {
            if (sent >= bytes.byteLength) return new Promise<void>(() => {});
            const request = controller.byobRequest;
            if (!request?.view) throw new Error('the test expects BYOB reads');
            const view = new Uint8Array(
              request.view.buffer,
              request.view.byteOffset,
              request.view.byteLength,
            );
            const n = Math.min(view.byteLength, bytes.byteLength - sent);
            view.set(bytes.subarray(sent, sent + n));
            sent += n;
            request.respond(n);
            return undefined;
          },
          cancel: () => new Promise<void>(() => {}),
        });
      },
      arrayBuffer: () => Promise.reject(new Error('the test expects BYOB reads')),
    };
    return fake as unknown as Blob;
  }

  it('returns a full BYOB read without waiting for a cancel that never settles', async () => {
    vi.resetModules(); // a fresh module: whether BYOB works is remembered for the page
    const { blobSource: freshBlobSource } = await import('../../client/browser/blob-source.js');
    const bytes = new Uint8Array(randomBytes(3 * 2 ** 20));
    const source = freshBlobSource(neverCancellingBlob(bytes), 'f.bin', { byobStallMs: 60_000 });
    const target = new Uint8Array(2 ** 21);
    const part = await Promise.race([
      source.read(2 ** 20, 3 * 2 ** 20, target),
      new Promise<'hung'>((resolve) => setTimeout(resolve, 5_000, 'hung')),
    ]);
    expect(part).not.toBe('hung');
    expect(Buffer.from(part as Uint8Array).equals(bytes.subarray(2 ** 20, 3 * 2 ** 20))).toBe(true);
  });

  it('fails an arrayBuffer() read that takes longer than readTimeoutMs, naming the bytes, and a late answer leaves the target alone', async () => {
    let deliver: ((buffer: ArrayBuffer) => void) | undefined;
    const hanging = {
      size: 4096,
      type: '',
      slice: () => hanging,
      arrayBuffer: () =>
        new Promise<ArrayBuffer>((resolve) => {
          deliver = resolve;
        }),
    };
    const source = blobSource(hanging as unknown as Blob, 'f.bin', { readTimeoutMs: 50 });
    const target = new Uint8Array(4096);
    const started = Date.now();
    await expect(source.read(0, 4096, target)).rejects.toThrow(
      /bytes 0-4096 .*more than 50 ms \(readTimeoutMs\)/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    await expect(source.read(0, 1000)).rejects.toThrow(/bytes 0-1000/);
    deliver?.(new Uint8Array(4096).fill(7).buffer);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(target.every((b) => b === 0)).toBe(true);
  });
});
