/**
 * The s3rver process (started by s3rver.ts): s3rver's own command line, with its PutObject and
 * UploadPart made to answer only once the bytes are in place, as S3 does (strong read-after-write
 * consistency). s3rver 3.7.1 answers when its hashing stream ends, before its file stream has
 * flushed: a HeadObject right after a PutObject could see the object truncated (length 0), which
 * failed a CI run of test/scale/s3-store.test.ts on a loaded machine. An object is also replaced
 * by a rename, so a reader sees the old bytes or the new ones whole, never a truncated file. Its
 * metadata is still written after the rename, as s3rver does, so a HeadObject racing a PutObject
 * may pair new bytes with old metadata; S3 does not, and our tests read only after the answer.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** The part of s3rver's FilesystemStore this file replaces or calls. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(
    bucket: string,
    key: string,
    metadata: Record<string, string>,
    md5: string,
  ): Promise<void>;
  putObject(object: StoredObject): Promise<Written>;
  putPart(
    bucket: string,
    uploadId: string,
    partNumber: number,
    content: Readable,
  ): Promise<Written>;
}

interface StoredObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: Record<string, string>;
}

interface Written {
  size: number;
  md5: string;
}

/** Write `content` to a temp file beside `path`, then rename it there; its size and MD5. */
async function writeWhole(path: string, content: Buffer | Readable): Promise<Written> {
  await mkdir(dirname(path), { recursive: true });
  const md5 = createHash('md5');
  let size = 0;
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await pipeline(
      Buffer.isBuffer(content) ? Readable.from([content]) : content,
      new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk);
          size += chunk.byteLength;
          callback(null, chunk);
        },
      }),
      createWriteStream(temp),
    );
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return { size, md5: md5.digest('hex') };
}

const require = createRequire(import.meta.url);
const store = (require('s3rver/lib/stores/filesystem.js') as { prototype: FilesystemStore })
  .prototype;

store.putObject = async function putObject(this: FilesystemStore, object) {
  const path = this.getResourcePath(object.bucket, object.key, 'object');
  const written = await writeWhole(path, object.content);
  await this.putMetadata(object.bucket, object.key, object.metadata, written.md5);
  return written;
};

store.putPart = async function putPart(this: FilesystemStore, bucket, uploadId, number, content) {
  const path = join(this.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(number));
  const written = await writeWhole(path, content);
  await writeFile(`${path}.md5`, written.md5);
  return written;
};

// s3rver's command line reads process.argv as it is (this file takes its place).
require('s3rver/bin/s3rver.js');
