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
