import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_MESSAGE_TYPES,
  HeaderSize,
  ProtocolError,
  decodeClientMessage,
  decodeMessage,
  decodeServerMessage,
  encodeMessage,
  errorByCode,
  loadHasher,
  rangeOffGrid,
  wholeFileDigest,
  type Hasher,
  type Message,
} from '../../protocol/index.js';
import {
  MESSAGE_KINDS,
  buildExamples,
  buildVectors,
  dissect,
  exampleFileBytes,
  messageFromJson,
  messageToJson,
  type ExamplesFile,
  type InvalidVector,
  type VectorFile,
} from '../../protocol/vectors/build.js';

const dir = fileURLToPath(new URL('../../protocol/vectors/', import.meta.url));
const readJson = (name: string): unknown => JSON.parse(readFileSync(`${dir}${name}`, 'utf8'));
const vectorFiles = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'examples.json')
  .sort()
  .map((f) => ({ file: f, data: readJson(f) as VectorFile }));
const examples = readJson('examples.json') as ExamplesFile;

function fromHex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
}
function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
const kindOf = (file: VectorFile): Message['type'] => file.message.toLowerCase() as Message['type'];

/** Decode as the peer that receives this type would. */
function receive(type: number, bytes: Uint8Array): Message {
  return CLIENT_MESSAGE_TYPES.has(type) ? decodeClientMessage(bytes) : decodeServerMessage(bytes);
}
function decodeInvalid(vector: InvalidVector, bytes: Uint8Array): Message {
  const options =
    vector.maxDataMessage === undefined ? {} : { maxDataMessage: vector.maxDataMessage };
  if (vector.decoder === 'client') return decodeClientMessage(bytes, options);
  if (vector.decoder === 'server') return decodeServerMessage(bytes);
  return decodeMessage(bytes, options);
}
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

let hasher: Hasher;
beforeAll(async () => {
  hasher = await loadHasher();
});

describe('vector files', () => {
  it('exist for every message type plus common, each with valid and invalid vectors', () => {
    const names = vectorFiles.map((f) => f.file).sort();
    expect(names).toEqual([...MESSAGE_KINDS.map((k) => `${k}.json`), 'common.json'].sort());
    for (const { data } of vectorFiles) {
      expect(data.invalid.length).toBeGreaterThan(0);
      if (data.message === 'common') continue;
      expect(data.valid.length).toBeGreaterThan(0);
      const invalidNames = data.invalid.map((v) => v.name);
      expect(invalidNames).toContain('wrong-direction');
      expect(invalidNames).toContain('reserved-flag');
      expect(invalidNames.some((n) => n.startsWith('truncated') || n === 'header-only')).toBe(true);
    }
  });

  it('equal what the generator builds now (deterministic, and nobody edited them by hand)', () => {
    const fresh = buildVectors(hasher);
    for (const file of fresh) {
      const committed = vectorFiles.find((f) => f.data.message === file.message);
      expect(committed?.data, file.message).toEqual(JSON.parse(JSON.stringify(file)));
    }
    expect(examples).toEqual(JSON.parse(JSON.stringify(buildExamples(hasher))));
  });
});

for (const { file, data } of vectorFiles) {
  describe(file, () => {
    for (const vector of data.valid) {
      it(`valid ${vector.name}: decodes to its fields and encodes back to its bytes`, () => {
        const bytes = fromHex(vector.hex);
        expect(bytes[0]).toBe(data.type);
        const decoded = receive(data.type!, bytes);
        expect(decoded.type).toBe(kindOf(data));
        expect(messageToJson(decoded)).toEqual(vector.fields);
        expect(toHex(encodeMessage(messageFromJson(kindOf(data), vector.fields)))).toBe(vector.hex);
        // The spec's field layout (dissect) accounts for every byte the codec wrote.
        expect(dissect(bytes).reduce((n, f) => n + f.hex.length / 2, 0)).toBe(bytes.byteLength);
      });

      it(`valid ${vector.name}: every proper prefix is refused with a registry error`, () => {
        const bytes = fromHex(vector.hex);
        for (let length = 0; length < bytes.byteLength; length++) {
          const prefix = bytes.subarray(0, length);
          let decoded: Message | undefined;
          const error = thrown(() => {
            decoded = receive(data.type!, prefix);
          });
          if (decoded !== undefined) {
            // Only DATA has no length field: a cut DATA decodes, and the hash check catches it.
            expect(decoded.type, `prefix of ${length} bytes decoded`).toBe('data');
            expect(length).toBeGreaterThan(HeaderSize.DATA);
            if (decoded.type === 'data')
              expect(hasher.h64(decoded.payload)).not.toBe(
                hasher.h64(bytes.subarray(HeaderSize.DATA)),
              );
            continue;
          }
          expect(error, `prefix of ${length} bytes`).toBeInstanceOf(ProtocolError);
          const e = error as ProtocolError;
          expect(errorByCode(e.code)?.name).toBe(e.codeName);
          expect(
            ['MALFORMED', 'INVALID_FIELD'],
            `prefix of ${length} bytes: ${e.message}`,
          ).toContain(e.codeName);
        }
      });
    }

    for (const vector of data.invalid) {
      it(`invalid ${vector.name}: ${vector.error.name}`, () => {
        expect(errorByCode(vector.error.code)?.name).toBe(vector.error.name);
        const error = thrown(() => decodeInvalid(vector, fromHex(vector.hex)));
        expect(error).toBeInstanceOf(ProtocolError);
        expect((error as ProtocolError).codeName).toBe(vector.error.name);
        expect((error as ProtocolError).code).toBe(vector.error.code);
      });
    }
  });
}

describe('ACK chunk-grid checks (SPEC.md 6.5, ack.json gridChecks)', () => {
  const ack = vectorFiles.find((f) => f.file === 'ack.json')!.data;
  it('exist, with both verdicts', () => {
    expect(new Set(ack.gridChecks?.map((c) => c.verdict))).toEqual(
      new Set(['accept', 'violation']),
    );
  });
  for (const check of ack.gridChecks ?? []) {
    it(`${check.name}: ${check.verdict}`, () => {
      // The ranges are a well-formed ACK: the verdict is about the upload, not about decoding.
      const bytes = encodeMessage({ type: 'ack', ranges: check.ranges });
      expect(decodeServerMessage(bytes).type).toBe('ack');
      const offGrid = rangeOffGrid(check.ranges, check.fileSize, check.chunkSize);
      expect(offGrid === undefined ? 'accept' : 'violation').toBe(check.verdict);
    });
  }
});

describe('worked examples (SPEC.md Appendix A)', () => {
  it('the file, its chunk hashes and digest are what the rule gives', () => {
    const file = exampleFileBytes();
    expect(file.byteLength).toBe(examples.file.size);
    expect(file[1]).toBe(10); // (1 * 7 + 3) mod 256
    const chunk = examples.file.chunkSize;
    const hashes = [hasher.h64(file.subarray(0, chunk)), hasher.h64(file.subarray(chunk))];
    expect(hashes.map((h) => h.toString(16).padStart(16, '0'))).toEqual(examples.file.chunkHashes);
    expect(wholeFileDigest(hasher, hashes).toString(16).padStart(16, '0')).toBe(
      examples.file.digest,
    );
  });

  for (const example of examples.examples) {
    it(`${example.name}: every step decodes to its fields, in the right direction`, () => {
      const file = exampleFileBytes();
      for (const step of example.steps) {
        const bytes = fromHex(step.hex);
        const decoded =
          step.direction === 'c2s' ? decodeClientMessage(bytes) : decodeServerMessage(bytes);
        expect(decoded.type.toUpperCase()).toBe(step.message);
        const json = messageToJson(decoded);
        if (decoded.type === 'data') {
          delete json.payload;
          json.payloadLength = decoded.payload.byteLength;
          const truth = file.subarray(decoded.offset, decoded.offset + decoded.payload.byteLength);
          expect(decoded.hash).toBe(hasher.h64(truth));
          // SPEC.md 15: `corrupted` marks exactly the steps whose payload differs from the file.
          const differs = decoded.payload.some((b, i) => b !== truth[i]);
          expect(step.corrupted === true, `step "${step.note}"`).toBe(differs);
        }
        if (decoded.type === 'result')
          expect(decoded.digest.toString(16).padStart(16, '0')).toBe(examples.file.digest);
        expect(json).toEqual(step.fields);
      }
    });
  }
});
