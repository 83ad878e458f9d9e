/**
 * s3rver (npm) as a real child process on a random port with its data in a temp dir, for the
 * object-store tests. What it cannot do (tried here): ListParts and AbortMultipartUpload answer
 * MethodNotAllowed. The backend needs neither for correctness (test/scale/README.md). Its
 * PutObject and UploadPart answer before the bytes are written; s3rver-main.ts mends that.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { makeTempDir, type TempDir } from './temp-dir.js';

const MAIN = fileURLToPath(new URL('./s3rver-main.ts', import.meta.url));

/** s3rver's built-in key pair. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3rverProcess {
  readonly endpoint: string;
  readonly bucket: string;
  readonly process: ChildProcess;
  /** A client for reading back what the server stored. */
  readonly client: S3Client;
  stop(): Promise<void>;
}

export async function startS3rver(bucket = 'bigup-test'): Promise<S3rverProcess> {
  const dir: TempDir = await makeTempDir('bigup-s3rver-');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      MAIN,
      '-d',
      dir.path,
      '-a',
      '127.0.0.1',
      '-p',
      '0',
      '--configure-bucket',
      bucket,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let output = '';
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start:\n${output}`)), 20_000);
    const onData = (d: Buffer): void => {
      output += d.toString();
      const match = /listening on ([\d.]+:\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(`http://${match[1]}`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => reject(new Error(`s3rver exited:\n${output}`)));
  });
  const client = s3ClientFor(endpoint);
  return {
    endpoint,
    bucket,
    process: child,
    client,
    async stop() {
      client.destroy();
      child.kill('SIGKILL');
      await exited;
      await dir.cleanup();
    },
  };
}

export function s3ClientFor(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The object's bytes, read back through the S3 API. */
export async function readObject(client: S3Client, bucket: string, key: string): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}
