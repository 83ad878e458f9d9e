/**
 * Child process of tiny-fs.ts: runs inside a private mount namespace whose data directory is a
 * small tmpfs, starts the server there and prints "listening on URL". Options come as JSON in
 * BIGUP_TEST_SERVER_OPTIONS (plain values only; `dir` is set by the parent).
 */
import { buildApp, DiskStore } from '../../../server/index.js';

const { store: storeOptions, ...options } = JSON.parse(
  process.env.BIGUP_TEST_SERVER_OPTIONS ?? '{}',
) as Record<string, unknown> & { store?: Record<string, unknown> };
const dir = process.env.BIGUP_TEST_DIR!;
const store = new DiskStore({ dir, ...storeOptions });
const app = await buildApp({ logLevel: 'warn', ...options, store });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening on ${url}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
