/**
 * An HTTP proxy in front of s3rver that injects the object store's failures: 500 InternalError,
 * 503 SlowDown, or no answer at all (the client's request timeout fires). Faults are queued per
 * S3 operation and used one per request; everything else is forwarded unchanged (Host included,
 * so SigV4 signatures stay valid). It also answers AbortMultipartUpload itself (204) and records
 * it, since s3rver cannot: that is how the tests see that terminate and expiry abort, with which
 * UploadId (test/scale/README.md).
 */
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';

export type S3Fault = 'error500' | 'slowdown' | 'hang';
export type S3Operation =
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'CreateMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'other';

export interface S3FaultProxy {
  readonly endpoint: string;
  /** Requests seen, by operation. */
  readonly seen: Map<S3Operation, number>;
  /** AbortMultipartUpload requests answered: key and UploadId. */
  readonly aborts: Array<{ key: string; uploadId: string }>;
  /** Queue `fault` for the next `times` requests of `operation`. */
  inject(operation: S3Operation, fault: S3Fault, times?: number): void;
  close(): Promise<void>;
}

function operationOf(req: IncomingMessage): S3Operation {
  const url = new URL(req.url ?? '/', 'http://x');
  const q = url.searchParams;
  if (req.method === 'PUT' && q.has('uploadId') && q.has('partNumber')) return 'UploadPart';
  if (req.method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (req.method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (req.method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
  if (req.method === 'GET' && q.has('uploadId')) return 'ListParts';
  return 'other';
}

function s3Error(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'Content-Type': 'application/xml' });
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test</Message><RequestId>test</RequestId></Error>`,
  );
}

export interface S3ProxyOptions {
  /**
   * Answer ListParts from the parts this proxy saw succeed (number, ETag, size), since s3rver
   * cannot: the bench needs it for @tus/s3-store, which lists the parts on every PATCH. Off for the
   * tests, which check that our store never lists.
   */
  answerListParts?: boolean;
}

interface SeenPart {
  etag: string;
  size: number;
}

function listPartsXml(key: string, uploadId: string, parts: Map<number, SeenPart>): string {
  const sorted = [...parts.entries()].sort((a, b) => a[0] - b[0]);
  const items = sorted
    .map(
      ([n, p]) =>
        `<Part><PartNumber>${n}</PartNumber><ETag>${p.etag.replace(/"/g, '&quot;')}</ETag><Size>${p.size}</Size></Part>`,
    )
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?><ListPartsResult><Key>${key}</Key><UploadId>${uploadId}</UploadId><MaxParts>10000</MaxParts><IsTruncated>false</IsTruncated>${items}</ListPartsResult>`;
}

export async function startS3FaultProxy(
  upstream: string,
  options: S3ProxyOptions = {},
): Promise<S3FaultProxy> {
  const partsByUpload = new Map<string, Map<number, SeenPart>>();
  const target = new URL(upstream);
  const queues = new Map<S3Operation, S3Fault[]>();
  const seen = new Map<S3Operation, number>();
  const aborts: Array<{ key: string; uploadId: string }> = [];
  const held = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const operation = operationOf(req);
    seen.set(operation, (seen.get(operation) ?? 0) + 1);
    const fault = queues.get(operation)?.shift();
    if (fault === 'hang') {
      held.add(res);
      req.resume();
      return;
    }
    if (fault) {
      req.resume();
      req.on('end', () =>
        s3Error(
          res,
          fault === 'slowdown' ? 503 : 500,
          fault === 'slowdown' ? 'SlowDown' : 'InternalError',
        ),
      );
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const uploadId = url.searchParams.get('uploadId') ?? '';
    if (operation === 'ListParts' && options.answerListParts) {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/xml' });
        res.end(
          listPartsXml(
            decodeURIComponent(url.pathname).replace(/^\/[^/]+\//, ''),
            uploadId,
            partsByUpload.get(uploadId) ?? new Map<number, SeenPart>(),
          ),
        );
      });
      return;
    }
    if (operation === 'AbortMultipartUpload') {
      partsByUpload.delete(uploadId);
      aborts.push({
        key: decodeURIComponent(url.pathname),
        uploadId: url.searchParams.get('uploadId') ?? '',
      });
      req.resume();
      req.on('end', () => {
        res.writeHead(204);
        res.end();
      });
      return;
    }
    let bodyBytes = 0;
    if (options.answerListParts && operation === 'UploadPart')
      req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    const forward = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        const status = answer.statusCode ?? 502;
        if (options.answerListParts && status === 200) {
          if (operation === 'UploadPart') {
            const parts = partsByUpload.get(uploadId) ?? new Map<number, SeenPart>();
            parts.set(Number(url.searchParams.get('partNumber')), {
              etag: String(answer.headers.etag ?? ''),
              size: bodyBytes,
            });
            partsByUpload.set(uploadId, parts);
          } else if (operation === 'CompleteMultipartUpload') partsByUpload.delete(uploadId);
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    aborts,
    inject(operation, fault, times = 1) {
      const queue = queues.get(operation) ?? [];
      for (let i = 0; i < times; i++) queue.push(fault);
      queues.set(operation, queue);
    },
    close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
