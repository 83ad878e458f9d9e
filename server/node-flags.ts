/**
 * Node flags the server should run with. Every DATA message arrives in a fresh buffer from the
 * WebSocket layer; the ones still waiting for their write get promoted to V8's old space, and with
 * V8's small default old-space start size that triggers a full mark-compact every ~16 MiB
 * received (measured: ~60 per GiB, about a third of the server's CPU). Starting the old space at
 * 64 MiB cuts that to ~10 per GiB for ~25 MiB more peak RSS.
 *
 * `npm start`, the `big-uploader` bin (its shebang) and the bench start the server with these;
 * an application that registers the plugin in its own process should pass them to node too.
 * test/server/node-flags.test.ts keeps those places in step with this list.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/**
 * glibc malloc settings for the server process (environment variables, read once at exec).
 * The WebSocket layer gives every DATA message a fresh buffer of the chunk's size (4 MiB by
 * default). glibc serves such sizes with mmap and hands them back with munmap, so every message
 * lands on pages the kernel must fault in and zero again (~1,000 faults per 4 MiB), and on this VM
 * fresh pages are slow. Served from the heap and not trimmed back, the same pages are reused.
 * Measured in the bench at 256 MiB, two A/B pairs: server CPU 1.40 / 1.52 -> 1.28 / 1.44 s per GiB,
 * big-uploader / limit 0.73 / 0.72 -> 0.83 / 0.76 (with MALLOC_TOP_PAD_=64 MiB as well, which two
 * later A/B pairs showed made no difference: 0.79 / 0.73 with it, 0.77 / 0.82 without; dropped to
 * keep the bin's shebang under the 127 bytes older kernels read). Memory the server freed stays in
 * its RSS up to the trim threshold, so peak RSS, which the window bounds, is what to plan for.
 * Other C libraries ignore these variables.
 */
export const SERVER_NODE_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(64 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(512 * 2 ** 20),
};
