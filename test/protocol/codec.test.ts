import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Errors,
  HeaderSize,
  Limits,
  MAX_U64_VALUE,
  MessageType,
  ProtocolError,
  decodeClientMessage,
  decodeMessage,
  decodeServerMessage,
  encodeAccept,
  encodeAck,
  encodeComplete,
  encodeData,
  encodeDataHeader,
  encodeError,
  encodeMessage,
  encodeOpen,
  encodeProtocolError,
  encodeResult,
  encodeResume,
  encodeTerminate,
  encodeTerminated,
  encodeWindow,
  errorByCode,
  writeDataHeader,
  type ErrorName,
  type Message,
} from '../../protocol/index.js';
import { messageToJson } from '../../protocol/vectors/build.js';
import { anyMessage, messageByType } from './arbitraries.js';

function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Run `fn` and return the ProtocolError it throws; fails the test on no throw or any other error. */
function protocolErrorOf(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw new Error(`expected a ProtocolError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a ProtocolError, nothing was thrown');
}
function expectCode(fn: () => unknown, name: ErrorName): void {
  const error = protocolErrorOf(fn);
  expect(error.codeName).toBe(name);
  expect(error.code).toBe(Errors[name].code);
}

const ID = hex('000102030405060708090a0b0c0d0e0f');
const SECRET = hex('a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf');

describe('encoders produce the layout of SPEC.md section 6', () => {
  it('OPEN', () => {
    const bytes = encodeOpen({
      fileSize: 0x1_0000_0002,
      chunkSize: 0x10000,
      digest: 0x0102030405060708n,
      name: 'ab',
      contentType: 'x',
      token: '',
      metadata: { k: 'v' },
    });
    expect(toHex(bytes)).toBe(
      '01' +
        '01' +
        '0000000100000002' +
        '00010000' +
        '0102030405060708' +
        '00026162' +
        '000178' +
        '0000' +
        '0001' +
        '00016b' +
        '000176',
    );
  });
  it('OPEN without digest has HAS_DIGEST clear and a zero digest field', () => {
    const bytes = encodeOpen({
      fileSize: 1,
      chunkSize: 0,
      name: 'a',
      contentType: '',
      token: '',
      metadata: {},
    });
    expect(toHex(bytes)).toBe(
      '0100' +
        '0000000000000001' +
        '00000000' +
        '0000000000000000' +
        '000161' +
        '0000' +
        '0000' +
        '0000',
    );
  });
  it('RESUME', () => {
    expect(toHex(encodeResume({ uploadId: ID, secret: SECRET, token: 't' }))).toBe(
      `0200${toHex(ID)}${toHex(SECRET)}000174`,
    );
  });
  it('ACCEPT', () => {
    const bytes = encodeAccept({
      created: false,
      durable: true,
      uploadId: ID,
      secret: new Uint8Array(32),
      fileSize: 300_000,
      chunkSize: 65_536,
      window: 1_048_576,
      ranges: [
        { start: 0, end: 65_536 },
        { start: 131_072, end: 300_000 },
      ],
    });
    expect(toHex(bytes)).toBe(
      `0302${toHex(ID)}${'00'.repeat(32)}00000000000493e0` +
        '00010000' +
        '00100000' +
        '00000002' +
        '0000000000000000' +
        '0000000000010000' +
        '0000000000020000' +
        '00000000000493e0',
    );
  });
  it('DATA header and payload come back separately, the payload untouched', () => {
    const payload = hex('deadbeef');
    const { header, payload: out } = encodeData(0x1234, 0xffeeddccbbaa9988n, payload);
    expect(out).toBe(payload);
    expect(toHex(header)).toBe('1000' + '0000000000001234' + 'ffeeddccbbaa9988');
  });
  it('ACK, WINDOW, COMPLETE, RESULT, ERROR, TERMINATE, TERMINATED', () => {
    expect(toHex(encodeAck([{ start: 1, end: 2 }]))).toBe(
      '1100' + '0001' + '0000000000000001' + '0000000000000002',
    );
    expect(toHex(encodeWindow(0xfffffffe))).toBe('1200fffffffe');
    expect(toHex(encodeComplete())).toBe('2000' + '0000000000000000');
    expect(toHex(encodeComplete(0n))).toBe('2001' + '0000000000000000');
    expect(toHex(encodeResult({ uploadId: ID, fileSize: 5, digest: 0xef46db3751d8e999n }))).toBe(
      `2100${toHex(ID)}0000000000000005ef46db3751d8e999`,
    );
    expect(toHex(encodeError({ code: 0x0201, offset: 65_536, length: 100, message: 'h' }))).toBe(
      '3002' + '0201' + '0000000000010000' + '00000064' + '000168',
    );
    expect(toHex(encodeTerminate())).toBe('4000');
    expect(toHex(encodeTerminated(ID))).toBe(`4100${toHex(ID)}`);
  });
  it('fixed sizes agree with HeaderSize', () => {
    expect(encodeDataHeader(0, 0n).byteLength).toBe(HeaderSize.DATA);
    expect(encodeWindow(0).byteLength).toBe(HeaderSize.WINDOW);
    expect(encodeComplete().byteLength).toBe(HeaderSize.COMPLETE);
    expect(encodeResult({ uploadId: ID, fileSize: 0, digest: 0n }).byteLength).toBe(
      HeaderSize.RESULT,
    );
    expect(encodeTerminate().byteLength).toBe(HeaderSize.TERMINATE);
    expect(encodeTerminated(ID).byteLength).toBe(HeaderSize.TERMINATED);
    expect(encodeAck([{ start: 0, end: 1 }]).byteLength).toBe(
      HeaderSize.ACK_FIXED + HeaderSize.RANGE,
    );
    expect(encodeResume({ uploadId: ID, secret: SECRET, token: '' }).byteLength).toBe(
      HeaderSize.RESUME_FIXED + 2,
    );
    expect(encodeError({ code: 1, message: '' }).byteLength).toBe(HeaderSize.ERROR_FIXED + 2);
  });
});

describe('decoding', () => {
  it('DATA payload is a view into the received bytes, not a copy', () => {
    const message = hex('1000 0000000000000000 0000000000000001 616263');
    const decoded = decodeClientMessage(message);
    if (decoded.type !== 'data') throw new Error('not DATA');
    expect(decoded.payload.buffer).toBe(message.buffer);
    expect(decoded.payload.byteOffset).toBe(18);
    expect(decoded.hash).toBe(1n);
  });
  it('decodes from a view that does not start at the buffer start', () => {
    const backing = new Uint8Array(64).fill(0xee);
    backing.set(encodeWindow(77), 10);
    expect(decodeServerMessage(backing.subarray(10, 16))).toEqual({ type: 'window', window: 77 });
  });
  it('ids and secrets are copies, so the receive buffer can be reused', () => {
    const bytes = encodeTerminated(ID);
    const decoded = decodeServerMessage(bytes);
    bytes.fill(0);
    expect(decoded).toEqual({ type: 'terminated', uploadId: ID });
  });
  it('metadata is a null-prototype record; __proto__ is a plain key', () => {
    const metadata = Object.create(null) as Record<string, string>;
    metadata['__proto__'] = 'x';
    const decoded = decodeClientMessage(
      encodeOpen({ fileSize: 1, chunkSize: 0, name: 'n', contentType: '', token: '', metadata }),
    );
    if (decoded.type !== 'open') throw new Error('not OPEN');
    expect(Object.getPrototypeOf(decoded.metadata)).toBeNull();
    expect(Object.keys(decoded.metadata)).toEqual(['__proto__']);
    expect(decoded.metadata['__proto__']).toBe('x');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
  it('a leading byte order mark is kept, not stripped', () => {
    const decoded = decodeClientMessage(
      encodeOpen({
        fileSize: 1,
        chunkSize: 0,
        name: '\ufeffa',
        contentType: '',
        token: '',
        metadata: {},
      }),
    );
    expect(decoded.type === 'open' && decoded.name).toBe('\ufeffa');
  });
  it('the DATA size limit is checked before anything else in the body', () => {
    // Reserved flag AND too large: the size is what is reported (SPEC.md 4.4 order).
    const message = new Uint8Array(HeaderSize.DATA + 11);
    message[0] = MessageType.DATA;
    message[1] = 0xff;
    expectCode(
      () => decodeClientMessage(message, { maxDataMessage: HeaderSize.DATA + 10 }),
      'MESSAGE_TOO_LARGE',
    );
    expect(
      decodeClientMessage(
        message.subarray(0, HeaderSize.DATA + 10).map((b, i) => (i === 1 ? 0 : b)),
        { maxDataMessage: HeaderSize.DATA + 10 },
      ).type,
    ).toBe('data');
  });
  it('the control message limit applies to client messages, not to a large ACCEPT', () => {
    const chunk = 65_536;
    const ranges = Array.from({ length: 5000 }, (_, i) => ({
      start: 2 * i * chunk,
      end: (2 * i + 1) * chunk,
    }));
    const accept = encodeAccept({
      created: false,
      durable: false,
      uploadId: ID,
      secret: new Uint8Array(32),
      fileSize: 10_000 * chunk,
      chunkSize: chunk,
      window: 1,
      ranges,
    });
    expect(accept.byteLength).toBeGreaterThan(Limits.MAX_CONTROL_MESSAGE);
    expect(decodeServerMessage(accept).type).toBe('accept');
  });
  it('2^53-1 is accepted and 2^53 refused in every u53 position of RESULT', () => {
    const ok = encodeResult({ uploadId: ID, fileSize: MAX_U64_VALUE, digest: 0n });
    expect(decodeServerMessage(ok)).toMatchObject({ fileSize: MAX_U64_VALUE });
    const bad = ok.slice();
    new DataView(bad.buffer).setBigUint64(18, 2n ** 53n);
    expectCode(() => decodeServerMessage(bad), 'INTEGER_TOO_LARGE');
  });
});

describe('encoders refuse what a decoder would refuse', () => {
  const base = { fileSize: 1, chunkSize: 0, name: 'a', contentType: '', token: '', metadata: {} };
  it('OPEN fields', () => {
    expectCode(() => encodeOpen({ ...base, name: '' }), 'INVALID_FIELD');
    expectCode(
      () => encodeOpen({ ...base, name: 'n'.repeat(Limits.MAX_NAME_BYTES + 1) }),
      'LIMIT_EXCEEDED',
    );
    expectCode(() => encodeOpen({ ...base, name: '\u00e9'.repeat(513) }), 'LIMIT_EXCEEDED'); // 1026 bytes, 513 chars
    expectCode(() => encodeOpen({ ...base, contentType: 'c'.repeat(256) }), 'LIMIT_EXCEEDED');
    expectCode(() => encodeOpen({ ...base, token: 't'.repeat(4097) }), 'LIMIT_EXCEEDED');
    expectCode(() => encodeOpen({ ...base, fileSize: 2 ** 53 }), 'INTEGER_TOO_LARGE');
    expectCode(() => encodeOpen({ ...base, fileSize: -1 }), 'INVALID_FIELD');
    expectCode(() => encodeOpen({ ...base, fileSize: 1.5 }), 'INVALID_FIELD');
    expectCode(() => encodeOpen({ ...base, chunkSize: 2 ** 32 }), 'INVALID_FIELD');
    expectCode(() => encodeOpen({ ...base, digest: 1n << 64n }), 'INVALID_FIELD');
    expectCode(() => encodeOpen({ ...base, digest: -1n }), 'INVALID_FIELD');
    expectCode(() => encodeOpen({ ...base, metadata: { '': 'v' } }), 'INVALID_FIELD');
    expectCode(
      () =>
        encodeOpen({
          ...base,
          metadata: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, ''])),
        }),
      'LIMIT_EXCEEDED',
    );
    expectCode(
      () =>
        encodeOpen({
          ...base,
          metadata: Object.fromEntries(
            Array.from({ length: 5 }, (_, i) => [`k${i}`, 'v'.repeat(4096)]),
          ),
        }),
      'LIMIT_EXCEEDED',
    );
  });
  it('lone surrogates are INVALID_UTF8, never silently replaced (they could collide into duplicate keys)', () => {
    expectCode(() => encodeOpen({ ...base, name: 'a\ud800' }), 'INVALID_UTF8');
    expectCode(() => encodeOpen({ ...base, name: '\udc00b' }), 'INVALID_UTF8');
    expectCode(
      () => encodeOpen({ ...base, metadata: { '\ud800': '1', '\ud801': '2' } }),
      'INVALID_UTF8',
    );
    expectCode(
      () => encodeResume({ uploadId: ID, secret: SECRET, token: '\udfff' }),
      'INVALID_UTF8',
    );
    // A proper pair is fine.
    expect(decodeClientMessage(encodeOpen({ ...base, name: '\ud83d\ude00' }))).toMatchObject({
      name: '\ud83d\ude00',
    });
  });
  it('RESUME, ACCEPT, ACK, RESULT, TERMINATED fields', () => {
    expectCode(
      () => encodeResume({ uploadId: ID.subarray(1), secret: SECRET, token: '' }),
      'INVALID_FIELD',
    );
    expectCode(
      () => encodeResume({ uploadId: ID, secret: SECRET.subarray(1), token: '' }),
      'INVALID_FIELD',
    );
    const accept = {
      created: true,
      durable: false,
      uploadId: ID,
      secret: SECRET,
      fileSize: 100,
      chunkSize: 65_536,
      window: 1,
      ranges: [],
    };
    expectCode(() => encodeAccept({ ...accept, created: false }), 'INVALID_FIELD');
    expectCode(() => encodeAccept({ ...accept, chunkSize: 65_535 }), 'INVALID_FIELD');
    expectCode(
      () => encodeAccept({ ...accept, chunkSize: Limits.MAX_CHUNK_SIZE + 1 }),
      'INVALID_FIELD',
    );
    expectCode(() => encodeAccept({ ...accept, window: -1 }), 'INVALID_FIELD');
    expectCode(
      () => encodeAccept({ ...accept, ranges: [{ start: 0, end: 101 }] }),
      'INVALID_FIELD',
    );
    expectCode(() => encodeAck([]), 'INVALID_FIELD');
    expectCode(() => encodeAck([{ start: 0, end: 0 }]), 'INVALID_FIELD');
    expectCode(() => encodeAck([{ start: 5, end: 1 }]), 'INVALID_FIELD');
    expectCode(
      () =>
        encodeAck([
          { start: 0, end: 5 },
          { start: 5, end: 6 },
        ]),
      'INVALID_FIELD',
    );
    expectCode(
      () =>
        encodeAck([
          { start: 0, end: 5 },
          { start: 3, end: 9 },
        ]),
      'INVALID_FIELD',
    );
    expectCode(() => encodeAck([{ start: 0, end: 2 ** 53 }]), 'INTEGER_TOO_LARGE');
    expectCode(
      () =>
        encodeAck(
          Array.from({ length: Limits.MAX_ACK_RANGES + 1 }, (_, i) => ({
            start: i * 2,
            end: i * 2 + 1,
          })),
        ),
      'LIMIT_EXCEEDED',
    );
    expectCode(
      () => encodeResult({ uploadId: ID, fileSize: 2 ** 53, digest: 0n }),
      'INTEGER_TOO_LARGE',
    );
    expectCode(() => encodeTerminated(SECRET), 'INVALID_FIELD');
    expectCode(() => encodeWindow(2 ** 32), 'INVALID_FIELD');
  });
  it('DATA: empty payload, end past 2^53-1, header target too small', () => {
    expectCode(() => encodeData(0, 0n, new Uint8Array(0)), 'INVALID_FIELD');
    expectCode(() => encodeData(MAX_U64_VALUE, 0n, new Uint8Array(1)), 'INTEGER_TOO_LARGE');
    expectCode(() => encodeDataHeader(-1, 0n), 'INVALID_FIELD');
    expectCode(() => writeDataHeader(new Uint8Array(20), 0, 0n, 3), 'INVALID_FIELD');
    expectCode(() => writeDataHeader(new Uint8Array(20), 0, 0n, -1), 'INVALID_FIELD');
  });
  it('writeDataHeader writes in place in front of a payload already in the buffer', () => {
    const buffer = new Uint8Array(4 + HeaderSize.DATA + 3);
    buffer.set([7, 8, 9], 4 + HeaderSize.DATA);
    writeDataHeader(buffer.subarray(4), 65_536, 0xabn);
    const decoded = decodeClientMessage(buffer.subarray(4));
    expect(decoded).toMatchObject({ type: 'data', offset: 65_536, hash: 0xabn });
    expect(decoded.type === 'data' && Array.from(decoded.payload)).toEqual([7, 8, 9]);
    expect(Array.from(buffer.subarray(0, 4))).toEqual([0, 0, 0, 0]);
  });
  it('ERROR: code bounds, registry flags by default, text cut at a character boundary', () => {
    expectCode(() => encodeError({ code: 0 }), 'INVALID_FIELD');
    expectCode(() => encodeError({ code: 0x10000 }), 'INVALID_FIELD');
    const known = decodeServerMessage(encodeError({ code: Errors.HASH_MISMATCH.code }));
    expect(known).toMatchObject({
      fatal: false,
      retryable: true,
      message: Errors.HASH_MISMATCH.meaning,
    });
    const unknown = decodeServerMessage(encodeError({ code: 0x7777 }));
    expect(unknown).toMatchObject({ fatal: true, retryable: false, message: '' });
    const long = '\u20ac'.repeat(400); // 1200 bytes; the cut must not split a 3-byte character
    const decoded = decodeServerMessage(encodeError({ code: 1, message: long }));
    if (decoded.type !== 'error') throw new Error('not ERROR');
    expect(decoded.message).toBe('\u20ac'.repeat(341));
    const fromError = decodeServerMessage(
      encodeProtocolError(
        new ProtocolError(Errors.OUT_OF_RANGE, 'bad', { offset: 10, length: 20 }),
      ),
    );
    expect(fromError).toEqual({
      type: 'error',
      code: Errors.OUT_OF_RANGE.code,
      fatal: false,
      retryable: false,
      offset: 10,
      length: 20,
      message: 'bad',
    });
  });
});

/** Decode with the decoder of the side that receives this message. */
function decodeAsReceiver(message: Message, bytes: Uint8Array): Message {
  const fromClient = ['open', 'resume', 'data', 'complete', 'terminate'].includes(message.type);
  return fromClient ? decodeClientMessage(bytes) : decodeServerMessage(bytes);
}

describe('properties', () => {
  for (const [type, arbitrary] of Object.entries(messageByType)) {
    it(`${type}: decode(encode(m)) == m and encode(decode(bytes)) == bytes`, () => {
      fc.assert(
        fc.property(arbitrary, (message) => {
          const bytes = encodeMessage(message);
          const decoded = decodeAsReceiver(message, bytes);
          expect(messageToJson(decoded)).toEqual(messageToJson(message));
          expect(decoded.type).toBe(message.type);
          expect(toHex(encodeMessage(decoded))).toBe(toHex(bytes));
          // The direction-free decoder agrees.
          expect(messageToJson(decodeMessage(bytes))).toEqual(messageToJson(message));
        }),
        { numRuns: 150, seed: 20261125 },
      );
    });
  }

  /** Decode with all three decoders; anything other than success or a registry ProtocolError fails. */
  function decodeAll(bytes: Uint8Array): void {
    for (const decode of [
      () => decodeClientMessage(bytes),
      () => decodeClientMessage(bytes, { maxDataMessage: 64 }),
      () => decodeServerMessage(bytes),
      () => decodeMessage(bytes),
    ]) {
      let decoded: Message;
      try {
        decoded = decode();
      } catch (error) {
        expect(error).toBeInstanceOf(ProtocolError);
        const e = error as ProtocolError;
        expect(errorByCode(e.code)?.name).toBe(e.codeName);
        continue;
      }
      // Whatever decodes must re-encode to something that decodes to the same message.
      const again = decodeMessage(encodeMessage(decoded), {
        maxDataMessage: Number.MAX_SAFE_INTEGER,
      });
      expect(messageToJson(again)).toEqual(messageToJson(decoded));
    }
  }

  it('random bytes never throw anything but a registry ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => decodeAll(bytes)),
      { numRuns: 3000, seed: 1 },
    );
  });

  it('random bodies behind every known type byte never throw anything but a registry ProtocolError', () => {
    const types = Object.values(MessageType);
    fc.assert(
      fc.property(
        fc.constantFrom(...types),
        fc.constantFrom(0, 0, 0, 1, 2, 0x80),
        fc.uint8Array({ maxLength: 120 }),
        (type, flags, body) => {
          decodeAll(Uint8Array.of(type, flags, ...body));
        },
      ),
      { numRuns: 3000, seed: 2 },
    );
  });

  it('mutated valid messages never throw anything but a registry ProtocolError', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        value: fc.nat({ max: 255 }),
      }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('append' as const),
        value: fc.uint8Array({ minLength: 1, maxLength: 20 }),
      }),
    );
    fc.assert(
      fc.property(
        anyMessage,
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (message, mutations) => {
          let bytes = Array.from(encodeMessage(message));
          for (const m of mutations) {
            const at = 'at' in m ? m.at % (bytes.length + 1) : 0;
            if (m.kind === 'flip' && at < bytes.length) bytes[at] ^= 1 << m.bit;
            else if (m.kind === 'set' && at < bytes.length) bytes[at] = m.value;
            else if (m.kind === 'insert') bytes.splice(at, 0, m.value);
            else if (m.kind === 'delete') bytes.splice(at, 1);
            else if (m.kind === 'truncate') bytes = bytes.slice(0, at);
            else if (m.kind === 'append') bytes.push(...m.value);
          }
          decodeAll(Uint8Array.from(bytes));
        },
      ),
      { numRuns: 2000, seed: 3 },
    );
  });

  it('a bad u53 anywhere is INTEGER_TOO_LARGE, whatever its other bits', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }), (value) => {
        const data = new Uint8Array(HeaderSize.DATA + 1);
        data[0] = MessageType.DATA;
        new DataView(data.buffer).setBigUint64(2, value);
        expectCode(() => decodeClientMessage(data), 'INTEGER_TOO_LARGE');
      }),
      { numRuns: 300, seed: 4 },
    );
  });
});

describe('withoutLoneSurrogates', () => {
  it('replaces only lone surrogates, keeping pairs, so the result always encodes', async () => {
    const { withoutLoneSurrogates, encodeOpen } = await import('../../protocol/index.js');
    expect(withoutLoneSurrogates('a\uD800b')).toBe('a\uFFFDb');
    expect(withoutLoneSurrogates('\uDC00x\uD83D\uDE00')).toBe('\uFFFDx\uD83D\uDE00');
    expect(withoutLoneSurrogates('plain')).toBe('plain');
    const name = withoutLoneSurrogates('x\uDBFF');
    expect(() =>
      encodeOpen({ fileSize: 1, chunkSize: 0, name, contentType: '', token: '', metadata: {} }),
    ).not.toThrow();
  });
});
