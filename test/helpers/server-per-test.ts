/**
 * One real server and one temp dir per test, both made on first use and gone after the test
 * (an afterEach of the calling file): the set-up every client integration test repeated.
 */
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { AppOptions } from '../../server/index.js';
import { startServer, type TestServer } from './server.js';
import { makeTempDir, type TempDir } from './tmp.js';

export interface ServerPerTest {
  /** The test's temp dir. */
  dir(): Promise<string>;
  /**
   * The test's server, started at its first call with `options`, its data in the temp dir (or in
   * `dataDir` under it); later calls in the same test return it.
   */
  server(options?: Omit<AppOptions, 'dir'>, dataDir?: string): Promise<TestServer>;
}

export function serverPerTest(prefix: string): ServerPerTest {
  let tmp: TempDir | undefined;
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await tmp?.cleanup();
    tmp = undefined;
  });
  const dir = async (): Promise<string> => {
    tmp ??= await makeTempDir(prefix);
    return tmp.path;
  };
  return {
    dir,
    server: async (options = {}, dataDir = '.') => {
      server ??= await startServer({ dir: join(await dir(), dataDir), ...options });
      return server;
    },
  };
}
