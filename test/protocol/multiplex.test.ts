/**
 * bigup.2 codec (SPEC.md 16): the committed vectors equal a fresh build; every valid vector
 * decodes to its fields and encodes back to its bytes; every invalid one fails with exactly its
 * error; every proper prefix of a valid vector is refused. And the negotiation helpers.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  Capability,
  HeaderSizeV2,
  MessageType,
  ProtocolError,
  SUBPROTOCOL_V1,
  SUBPROTOCOL_V2,
  SUPPORTED_SUBPROTOCOLS,
  decodeClientFrame,
  decodeClientMessage,
  decodeFrame,
  decodeServerFrame,
  encodeComplete,
  encodeFrame,
  encodeHello,
  encodeOpen,
  inlineFileLimitOf,
  Limits,
  LimitsV2,
  loadHasher,
  multiplexOf,
  withStream,
  writeDataHeaderV2,
  type Hasher,
  type MessageV2,
} from '../../protocol/index.js';
import {
  buildFrameVectors,
  frameFromJson,
  frameToJson,
  type FrameVectorFile,
  type InvalidFrameVector,
} from '../../protocol/vectors/build-v2.js';

const file = JSON.parse(
  readFileSync(
    fileURLToPath(new URL('../../protocol/vectors/v2/bigup2.json', import.meta.url)),
    'utf8',
  ),
) as FrameVectorFile;
const fromHex = (text: string): Uint8Array =>
  Uint8Array.from(text.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
const toHex = (bytes: Uint8Array): string =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

function errorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw error;
  }
  throw new Error('decoded without error');
}

function decodeInvalid(vector: InvalidFrameVector): unknown {
  const bytes = fromHex(vector.hex);
  const options =
    vector.maxDataMessage === undefined ? {} : { maxDataMessage: vector.maxDataMessage };
  switch (vector.decoder) {
    case 'client':
      return decodeClientFrame(bytes, options);
    case 'server':
      return decodeServerFrame(bytes);
    case 'any':
      return decodeFrame(bytes, options);
    case 'v1-client':
      return decodeClientMessage(bytes, options);
  }
}

let hasher: Hasher;
beforeAll(async () => {
  hasher = await loadHasher();
});

describe('bigup.2 vectors', () => {
  it('the committed file is what the generator builds', () => {
    expect(JSON.parse(JSON.stringify(buildFrameVectors(hasher)))).toEqual(file);
  });

  for (const vector of file.valid) {
    it(`valid ${vector.name}: decodes to its fields and encodes back to its bytes`, () => {
      const bytes = fromHex(vector.hex);
      const frame = decodeFrame(bytes, { maxDataMessage: Number.MAX_SAFE_INTEGER });
      expect(frameToJson(frame.stream, frame.message)).toEqual(vector.fields);
      const type = vector.message.toLowerCase() as MessageV2['type'];
      const { stream, message } = frameFromJson(type, vector.fields);
      expect(toHex(encodeFrame(stream, message))).toBe(vector.hex);
    });

    it(`valid ${vector.name}: every proper prefix is refused`, () => {
      const bytes = fromHex(vector.hex);
      // A DATA prefix longer than its header is a shorter DATA (caught by length or hash, 7.4).
      const last = vector.message === 'DATA' ? HeaderSizeV2.DATA : bytes.byteLength - 1;
      for (let cut = 0; cut <= Math.min(last, bytes.byteLength - 1); cut++) {
        expect(() => decodeFrame(bytes.subarray(0, cut)), `${vector.name} cut at ${cut}`).toThrow(
          ProtocolError,
        );
      }
    });
  }

  for (const vector of file.invalid) {
    it(`invalid ${vector.name}: ${vector.error.name}`, () => {
      const error = errorOf(() => decodeInvalid(vector));
      expect(error.codeName).toBe(vector.error.name);
      expect(error.code).toBe(vector.error.code);
    });
  }
});

describe('bigup.2 framing', () => {
  it('is the bigup.1 body behind a stream id', () => {
    const v1 = encodeComplete(7n);
    const v2 = withStream(9, v1);
    expect(toHex(v2)).toBe(`${toHex(v1.subarray(0, 2))}00000009${toHex(v1.subarray(2))}`);
    expect(decodeClientFrame(v2)).toEqual({ stream: 9, message: { type: 'complete', digest: 7n } });
  });

  it('writes a DATA header in front of a payload already in the buffer (no copy)', () => {
    const payload = Uint8Array.of(1, 2, 3);
    const buffer = new Uint8Array(HeaderSizeV2.DATA + payload.byteLength);
    buffer.set(payload, HeaderSizeV2.DATA);
    writeDataHeaderV2(buffer, 3, 65_536, hasher.h64(payload));
    const frame = decodeClientFrame(buffer);
    expect(frame.stream).toBe(3);
    expect(frame.message).toMatchObject({
      type: 'data',
      offset: 65_536,
      hash: hasher.h64(payload),
    });
  });

  it('refuses to encode an upload message on stream 0', () => {
    expect(() => withStream(0, encodeComplete())).toThrow(ProtocolError);
    expect(() => writeDataHeaderV2(new Uint8Array(30), 0, 0, 0n)).toThrow(ProtocolError);
  });

  it('a bigup.1 decoder refuses a bigup.2 HELLO, so a mixed-up peer fails loudly', () => {
    expect(errorOf(() => decodeClientMessage(encodeHello([]))).codeName).toBe(
      'UNKNOWN_MESSAGE_TYPE',
    );
  });

  it('offers bigup.2 first and keeps bigup.1', () => {
    expect(SUPPORTED_SUBPROTOCOLS).toEqual([SUBPROTOCOL_V2, SUBPROTOCOL_V1]);
  });

  it('an OPEN with data may exceed the control limit by the inline limit, and no more (16.11)', () => {
    const open = (size: number, metadataBytes: number): Uint8Array =>
      withStream(
        1,
        encodeOpen({
          fileSize: size,
          chunkSize: 0,
          digest: 1n,
          name: 'x',
          contentType: '',
          token: '',
          metadata: { a: 'v'.repeat(metadataBytes) },
          data: new Uint8Array(size),
        }),
      );
    // The largest metadata value, the largest file: the largest OPEN with data there is.
    const largest = open(LimitsV2.MAX_INLINE_FILE_SIZE, Limits.MAX_METADATA_VALUE_BYTES);
    expect(decodeClientFrame(largest).message).toMatchObject({
      type: 'open',
      fileSize: LimitsV2.MAX_INLINE_FILE_SIZE,
    });
    // Padded past the limit (a hostile peer), it is refused on its size before it is read.
    const padded = new Uint8Array(Limits.MAX_CONTROL_MESSAGE + LimitsV2.MAX_INLINE_FILE_SIZE + 1);
    padded.set(largest);
    expect(errorOf(() => decodeClientFrame(padded)).codeName).toBe('MESSAGE_TOO_LARGE');
    // Without WITH_DATA, the control limit alone holds.
    const plain = new Uint8Array(Limits.MAX_CONTROL_MESSAGE + 1);
    plain.set(
      withStream(
        1,
        encodeOpen({
          fileSize: 1,
          chunkSize: 0,
          name: 'x',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    expect(errorOf(() => decodeClientFrame(plain)).codeName).toBe('MESSAGE_TOO_LARGE');
  });

  it('refuses to encode an OPEN with data that is not the whole file, or has no digest', () => {
    const base = { chunkSize: 0, name: 'x', contentType: '', token: '', metadata: {} };
    expect(() => encodeOpen({ ...base, fileSize: 3, digest: 1n, data: new Uint8Array(2) })).toThrow(
      ProtocolError,
    );
    expect(() => encodeOpen({ ...base, fileSize: 2, data: new Uint8Array(2) })).toThrow(
      ProtocolError,
    );
    const big = LimitsV2.MAX_INLINE_FILE_SIZE + 1;
    expect(() =>
      encodeOpen({ ...base, fileSize: big, digest: 1n, data: new Uint8Array(big) }),
    ).toThrow(ProtocolError);
  });

  it('OPEN_WITH_DATA absent means no file travels in its OPEN', () => {
    expect(inlineFileLimitOf([])).toBe(0);
    expect(inlineFileLimitOf([{ id: Capability.OPEN_WITH_DATA, value: 4096 }])).toBe(4096);
    expect(inlineFileLimitOf([{ id: Capability.OPEN_WITH_DATA, value: 1 << 30 }])).toBe(
      LimitsV2.MAX_INLINE_FILE_SIZE,
    );
  });

  it('MULTIPLEX absent means one upload at a time', () => {
    expect(multiplexOf([])).toBe(1);
    expect(multiplexOf([{ id: Capability.MULTIPLEX, value: 12 }])).toBe(12);
  });

  it('WINDOW carries no stream in bigup.2', () => {
    const frame = decodeServerFrame(Uint8Array.of(MessageType.WINDOW, 0, 0, 0, 1, 0));
    expect(frame).toEqual({ stream: 0, message: { type: 'window', window: 256 } });
  });
});
