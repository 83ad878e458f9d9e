/** Where the disk store put a completed upload's file: the location its metadata records. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * files/<id>/<relative path>, or files/<batch>/<relative path> for a folder sent over one bigup.2
 * connection (server/store/delivered-files.ts): read from uploads/<id>.json, not guessed.
 */
export async function storedLocation(dataDir: string, uploadId: string): Promise<string> {
  const meta = JSON.parse(await readFile(join(dataDir, 'uploads', `${uploadId}.json`), 'utf8')) as {
    completion?: { location?: string };
  };
  const location = meta.completion?.location;
  if (typeof location !== 'string') throw new Error(`upload ${uploadId} is not completed`);
  return location;
}
