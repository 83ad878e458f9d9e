/** readFile that refuses a symlink (ELOOP) instead of reading wherever it points. */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';

const { O_RDONLY, O_NOFOLLOW } = fsConstants;

export async function readNoFollow(path: string): Promise<Buffer>;
export async function readNoFollow(path: string, encoding: 'utf8'): Promise<string>;
export async function readNoFollow(path: string, encoding?: 'utf8'): Promise<Buffer | string> {
  const handle = await open(path, O_RDONLY | O_NOFOLLOW);
  try {
    return encoding ? await handle.readFile(encoding) : await handle.readFile();
  } finally {
    await handle.close();
  }
}
