/**
 * Issue 17 bench, peer server: @tus/server with @tus/s3-store on an S3-compatible endpoint, as its
 * documentation sets it up (default 8 MiB parts, buffered in the OS temp dir before each
 * UploadPart). Credentials from the standard AWS environment variables.
 */
import { parseArgs } from 'node:util';
import { S3Store } from '@tus/s3-store';
import { Server } from '@tus/server';
import { serveAndReport, stringOption } from './common.js';

const { values } = parseArgs({
  options: { endpoint: { type: 'string' }, bucket: { type: 'string' } },
});
const datastore = new S3Store({
  s3ClientConfig: {
    bucket: stringOption(values.bucket, 'bucket'),
    endpoint: stringOption(values.endpoint, 'endpoint'),
    region: 'us-east-1',
    forcePathStyle: true,
    // As our store's S3 client (server/store/s3/config.ts): with the SDK's default (a CRC32 on every
    // upload) stream bodies go out aws-chunked, which s3rver stores framing and all.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: {
      accessKeyId: stringOption(process.env.AWS_ACCESS_KEY_ID, 'AWS_ACCESS_KEY_ID'),
      secretAccessKey: stringOption(process.env.AWS_SECRET_ACCESS_KEY, 'AWS_SECRET_ACCESS_KEY'),
    },
  },
});
const tus = new Server({ path: '/files', datastore });
serveAndReport((req, res) => tus.handle(req, res));
