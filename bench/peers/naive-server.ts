/**
 * Peer contender 6, server side: the recipe most tutorials give for "large file upload". Each
 * chunk is a multipart/form-data POST that multer saves as its own file; a final request merges
 * the chunk files, in order, into the finished file and deletes them. Written the way those
 * tutorials write it (streams, no tricks), because that is what it stands for.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import express from 'express';
import multer from 'multer';
import { emit, fail, stringOption } from './common.js';

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
const dir = stringOption(values.dir, 'dir');
const safe = (text: unknown): string => String(text).replace(/[^A-Za-z0-9_.-]/g, '_');

const storage = multer.diskStorage({
  destination: (req, _file, cb) => {
    const target = join(dir, 'chunks', safe(req.query.uploadId));
    mkdir(target, { recursive: true }).then(
      () => cb(null, target),
      (error: Error) => cb(error, target),
    );
  },
  filename: (req, _file, cb) => cb(null, safe(req.query.index)),
});
const upload = multer({ storage });
const app = express();

app.post('/upload', upload.single('chunk'), (_req, res) => {
  res.json({ ok: true });
});

app.post('/merge', express.json(), async (req, res) => {
  const { uploadId, name, total } = req.body as { uploadId: string; name: string; total: number };
  const chunkDir = join(dir, 'chunks', safe(uploadId));
  await mkdir(join(dir, 'files'), { recursive: true });
  const target = join(dir, 'files', safe(name));
  const out = createWriteStream(target);
  for (let i = 0; i < total; i++)
    await pipeline(createReadStream(join(chunkDir, String(i))), out, { end: false });
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );
  await rm(chunkDir, { recursive: true, force: true });
  res.json({ ok: true, path: target });
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address === null || typeof address === 'string') fail('no TCP address');
  emit({ event: 'listening', port: address.port });
});
