/**
 * Hashing throughput of the client's per-chunk xxHash64 (xxhash-wasm), at the chunk sizes we
 * consider. Run: npx tsx test/client/measure/hash.ts. Prints GB/s; not a test (speed is never asserted).
 */
import { randomFillSync } from 'node:crypto';
import { loadHasher } from '../../../protocol/index.js';

const hasher = await loadHasher();
for (const size of [64 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024]) {
  const buf = randomFillSync(new Uint8Array(size));
  const total = 2 * 1024 ** 3;
  const rounds = Math.max(1, Math.floor(total / size));
  for (let i = 0; i < 16; i++) hasher.h64(buf); // warm up
  const results: number[] = [];
  for (let run = 0; run < 3; run++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) hasher.h64(buf);
    const ns = Number(process.hrtime.bigint() - t0);
    results.push((rounds * size) / ns);
  }
  results.sort((a, b) => a - b);
  console.log(
    `${(size / 1024).toString().padStart(6)} KiB chunks: ${results[1].toFixed(2)} GB/s (min ${results[0].toFixed(2)}, max ${results[2].toFixed(2)})`,
  );
}

// Cache-cold: walk a 512 MiB buffer so each chunk comes from RAM, as freshly read file data does.
{
  const big = randomFillSync(new Uint8Array(512 * 1024 * 1024));
  for (const size of [1024 * 1024, 4 * 1024 * 1024]) {
    const results: number[] = [];
    for (let run = 0; run < 3; run++) {
      const t0 = process.hrtime.bigint();
      for (let off = 0; off + size <= big.byteLength; off += size)
        hasher.h64(big.subarray(off, off + size));
      results.push(big.byteLength / Number(process.hrtime.bigint() - t0));
    }
    results.sort((a, b) => a - b);
    console.log(
      `cold ${(size / 1024).toString().padStart(5)} KiB chunks: ${results[1].toFixed(2)} GB/s (min ${results[0].toFixed(2)}, max ${results[2].toFixed(2)})`,
    );
  }
}
