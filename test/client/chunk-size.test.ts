/**
 * client/browser/chunk-size.ts: the chunk size a browser upload proposes when the caller names
 * none, for each transport choice and engine kind.
 */
import { describe, expect, it } from 'vitest';
import {
  BYTES_READ_CHUNK_SIZE,
  HTTP_CHUNK_SIZE,
  defaultChunkSize,
} from '../../client/browser/chunk-size.js';
import { HttpTransport } from '../../client/browser/http-transport.js';

describe('defaultChunkSize', () => {
  it('proposes HTTP_CHUNK_SIZE over the HTTP binding, whatever the file and engine', () => {
    for (const blob of [true, false])
      for (const bytesRead of [true, false])
        expect(defaultChunkSize('http', blob, bytesRead)).toBe(HTTP_CHUNK_SIZE);
  });

  it('proposes BYTES_READ_CHUNK_SIZE over a WebSocket sending the bytes read of a Blob', () => {
    for (const transport of [undefined, 'websocket', 'auto'] as const)
      expect(defaultChunkSize(transport, true, true)).toBe(BYTES_READ_CHUNK_SIZE);
  });

  it("leaves the core's default for Blob slices, other sources and Transport objects", () => {
    for (const transport of [undefined, 'websocket', 'auto'] as const) {
      expect(defaultChunkSize(transport, true, false)).toBeUndefined();
      expect(defaultChunkSize(transport, false, true)).toBeUndefined();
    }
    expect(defaultChunkSize(new HttpTransport(), true, true)).toBeUndefined();
  });
});
