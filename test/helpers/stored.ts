/** What the disk store recorded about an upload, read as an operator would. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompletionInfo, UploadInfo } from '../../server/index.js';

/**
 * uploads/<id>.json: JSON lines, the last whole record of that upload wins (a completion appends
 * one; the file of an upload stored from its OPEN is a ledger shared with other uploads' records,
 * server/store/completion-ledger.ts; see the header of server/store/disk-store.ts).
 */
export async function storedMeta(
  dataDir: string,
  uploadId: string,
): Promise<{ info: UploadInfo; completion?: CompletionInfo }> {
  const text = await readFile(join(dataDir, 'uploads', `${uploadId}.json`), 'utf8');
  const records = text
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as { info?: UploadInfo; completion?: CompletionInfo }];
      } catch {
        return []; // a torn line: an append whose commit never happened
      }
    })
    .filter(
      (record): record is { info: UploadInfo; completion?: CompletionInfo } =>
        record.info?.id === uploadId,
    );
  const last = records[records.length - 1];
  if (!last) throw new Error(`uploads/${uploadId}.json holds no record of that upload`);
  return last;
}

/**
 * Where a completed upload's file is: files/<id>/<relative path>, or files/<batch>/<relative path>
 * for a folder sent over one bigup.2 connection (server/store/delivered-files.ts). Read from its
 * metadata, not guessed.
 */
export async function storedLocation(dataDir: string, uploadId: string): Promise<string> {
  const location = (await storedMeta(dataDir, uploadId)).completion?.location;
  if (typeof location !== 'string') throw new Error(`upload ${uploadId} is not completed`);
  return location;
}
