// What a TypeScript app sees of the package: every public entry, typed.
import Fastify from 'fastify';
import { bigUploader, type CompletedUpload } from 'big-uploader/server';
import { openUploader, type UploadOutcome } from 'big-uploader/client';
import { decodeServerMessage } from 'big-uploader/protocol';
import { BigUploaderElement } from 'big-uploader/component';

const app = Fastify();
await app.register(bigUploader, { dir: './uploads', onUploadComplete: (u: CompletedUpload) => void u.location });
const uploader = await openUploader({ file: './big.iso', endpoint: 'ws://127.0.0.1:3000/upload' });
const outcome: UploadOutcome = await uploader.start();
const element: typeof BigUploaderElement = BigUploaderElement;
export { app, outcome, element, decodeServerMessage };
