// What a TypeScript app sees of the package: every public entry, typed.
import Fastify from 'fastify';
import {
  bigUploader,
  createRedisRegistry,
  createS3Store,
  type CompletedUpload,
  type S3Store,
  type SharedRegistry,
} from 'big-uploader/server';
import { openUploader, type UploadOutcome } from 'big-uploader/client';
import { decodeServerMessage } from 'big-uploader/protocol';
import { BigUploaderElement } from 'big-uploader/component';

const app = Fastify();
await app.register(bigUploader, { dir: './uploads', onUploadComplete: (u: CompletedUpload) => void u.location });
// Many nodes: S3-compatible bucket plus Redis (constructing connects nothing yet).
const registry: SharedRegistry = await createRedisRegistry({ url: 'redis://127.0.0.1:6379/0', leaseTtl: 30_000 });
const s3Store: S3Store = await createS3Store({ bucket: 'uploads', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, registry });
const scaled = Fastify();
await scaled.register(bigUploader, { store: s3Store, maxCommittedBytes: 2 ** 40 });
const uploader = await openUploader({ file: './big.iso', endpoint: 'ws://127.0.0.1:3000/upload' });
const outcome: UploadOutcome = await uploader.start();
const element: typeof BigUploaderElement = BigUploaderElement;
export { app, scaled, outcome, element, decodeServerMessage };
