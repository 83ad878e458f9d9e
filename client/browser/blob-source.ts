/** FileSource over a Blob or File: slices are read only when the core needs them. */
import type { FileSource } from '../core/types.js';

export function blobSource(blob: Blob, name?: string): FileSource {
  const file = blob as Partial<File>;
  const size = blob.size;
  return {
    name: name ?? file.name ?? 'blob',
    size,
    type: blob.type,
    lastModified: file.lastModified ?? 0,
    async read(start: number, end: number, target?: Uint8Array): Promise<Uint8Array> {
      const bytes = new Uint8Array(await blob.slice(start, end).arrayBuffer());
      if (bytes.byteLength !== end - start)
        throw new Error(
          `read ${bytes.byteLength} bytes at ${start}, expected ${end - start} (file changed?)`,
        );
      if (!target) return bytes;
      target.set(bytes);
      return target.subarray(0, bytes.byteLength);
    },
  };
}
