/**
 * fast-check generators for every bigup.1 message, shared by the codec property tests. Each one
 * produces only messages the encoder must accept, so a failure is a codec bug, not a bad input.
 */
import fc from 'fast-check';
import { Limits, MAX_U64_VALUE, type ByteRange, type Message } from '../../protocol/index.js';

export const u53 = fc.maxSafeNat();
export const u32 = fc.nat({ max: 0xffff_ffff });
export const hash64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });

/**
 * A string of at most `maxBytes` UTF-8 bytes: any code point except lone surrogates, which have no
 * UTF-8 form. Four bytes per code point is the worst case, so the count bound is maxBytes / 4.
 */
export function utf8String(maxBytes: number, minLength = 0): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: 'binary', minLength, maxLength: Math.floor(maxBytes / 4) }),
    fc.string({ unit: 'grapheme-ascii', minLength, maxLength: Math.min(maxBytes, 64) }),
  );
}

const metadataKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', '0', '10', 'a'),
  utf8String(Limits.MAX_METADATA_KEY_BYTES, 1),
);

/** Metadata small enough to stay under the 16 KiB total: at most 8 entries of at most 1 KiB + 255. */
export const metadata = fc
  .uniqueArray(fc.tuple(metadataKey, utf8String(1024)), { maxLength: 8, selector: ([k]) => k })
  .map((pairs) => {
    const record = Object.create(null) as Record<string, string>;
    for (const [k, v] of pairs) record[k] = v;
    return record;
  });

export const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
export const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** A valid range list: sorted, non-empty, disjoint, non-adjacent, all within [0, limit]. */
export function rangeList(maxCount: number, limit = MAX_U64_VALUE): fc.Arbitrary<ByteRange[]> {
  return fc
    .uniqueArray(
      fc.maxSafeNat().map((n) => n % (limit + 1)),
      { maxLength: maxCount * 2 },
    )
    .map((points) => {
      const sorted = points.sort((a, b) => a - b);
      const ranges: ByteRange[] = [];
      for (let i = 0; i + 1 < sorted.length; i += 2) {
        const start = sorted[i];
        const end = sorted[i + 1];
        const previous = ranges[ranges.length - 1];
        // Adjacent ranges must be merged on the wire; skip the one that would touch.
        if (previous !== undefined && start === previous.end) continue;
        ranges.push({ start, end });
      }
      return ranges;
    });
}

export const openMessage: fc.Arbitrary<Message> = fc
  .record({
    fileSize: u53,
    chunkSize: u32,
    digest: fc.option(hash64, { nil: undefined }),
    name: utf8String(Limits.MAX_NAME_BYTES, 1),
    contentType: utf8String(Limits.MAX_CONTENT_TYPE_BYTES),
    token: utf8String(Limits.MAX_TOKEN_BYTES),
    metadata,
  })
  .map(({ digest, ...rest }) =>
    digest === undefined
      ? { type: 'open' as const, ...rest }
      : { type: 'open' as const, digest, ...rest },
  );

export const resumeMessage: fc.Arbitrary<Message> = fc.record({
  type: fc.constant('resume' as const),
  uploadId: bytes16,
  secret: bytes32,
  token: utf8String(Limits.MAX_TOKEN_BYTES),
});

export const acceptMessage: fc.Arbitrary<Message> = fc
  .record({
    created: fc.boolean(),
    durable: fc.boolean(),
    uploadId: bytes16,
    secret: bytes32,
    fileSize: u53,
    chunkSize: fc.integer({ min: Limits.MIN_CHUNK_SIZE, max: Limits.MAX_CHUNK_SIZE }),
    window: u32,
    seedRanges: rangeList(20),
  })
  .map(({ created, secret, fileSize, seedRanges, chunkSize, ...rest }) => ({
    type: 'accept' as const,
    created,
    secret: created ? secret : new Uint8Array(32),
    fileSize,
    chunkSize,
    // ACCEPT ranges lie on the chunk grid (SPEC.md 6.3): shrink each seed range to whole chunks.
    ranges: seedRanges
      .map((r) => ({
        start: Math.ceil(r.start / chunkSize) * chunkSize,
        end: r.end >= fileSize ? fileSize : Math.floor(r.end / chunkSize) * chunkSize,
      }))
      .filter((r) => r.start < r.end && r.end <= fileSize),
    ...rest,
  }));

export const dataMessage: fc.Arbitrary<Message> = fc
  .record({ offset: u53, hash: hash64, payload: fc.uint8Array({ minLength: 1, maxLength: 300 }) })
  .map(({ offset, hash, payload }) => ({
    type: 'data' as const,
    offset: Math.min(offset, MAX_U64_VALUE - payload.byteLength),
    hash,
    payload,
  }));

export const ackMessage: fc.Arbitrary<Message> = rangeList(20)
  .filter((ranges) => ranges.length > 0)
  .map((ranges) => ({ type: 'ack' as const, ranges }));

export const windowMessage: fc.Arbitrary<Message> = u32.map((window) => ({
  type: 'window' as const,
  window,
}));

export const completeMessage: fc.Arbitrary<Message> = fc
  .option(hash64, { nil: undefined })
  .map((digest) =>
    digest === undefined ? { type: 'complete' as const } : { type: 'complete' as const, digest },
  );

export const resultMessage: fc.Arbitrary<Message> = fc.record({
  type: fc.constant('result' as const),
  uploadId: bytes16,
  fileSize: u53,
  digest: hash64,
});

export const errorMessage: fc.Arbitrary<Message> = fc.record({
  type: fc.constant('error' as const),
  code: fc.integer({ min: 1, max: 0xffff }),
  fatal: fc.boolean(),
  retryable: fc.boolean(),
  offset: u53,
  length: u32,
  message: utf8String(Limits.MAX_ERROR_MESSAGE_BYTES),
});

export const terminateMessage: fc.Arbitrary<Message> = fc.constant({ type: 'terminate' as const });
export const terminatedMessage: fc.Arbitrary<Message> = bytes16.map((uploadId) => ({
  type: 'terminated' as const,
  uploadId,
}));

export const messageByType: Record<Message['type'], fc.Arbitrary<Message>> = {
  open: openMessage,
  resume: resumeMessage,
  accept: acceptMessage,
  data: dataMessage,
  ack: ackMessage,
  window: windowMessage,
  complete: completeMessage,
  result: resultMessage,
  error: errorMessage,
  terminate: terminateMessage,
  terminated: terminatedMessage,
};

export const anyMessage: fc.Arbitrary<Message> = fc.oneof(...Object.values(messageByType));
