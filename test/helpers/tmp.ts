/** Temporary directories for tests, removed afterwards. */
import { join } from 'node:path';

// The bench starts the same services (bench/services/) and owns the helper both use.
export { makeTempDir, type TempDir } from '../../bench/services/temp-dir.js';

/** Every file under `dir` (relative paths), for "nothing written outside" checks. */
export async function listFiles(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) =>
      join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(dir.length + 1),
    )
    .sort();
}
