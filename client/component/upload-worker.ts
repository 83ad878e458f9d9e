/**
 * The upload worker: hosts one client-core Uploader per file (browser entry: IndexedDB resume
 * records, Blob file source) and relays their events to the page. Runs as a module worker. Small
 * files (route 'batch') get an uploader that shares one bigup.2 connection with the other small
 * files (client/browser/batch.ts).
 *
 * Its transport (WebSocket or the HTTP binding, `transport` of the element) sends chunk payloads
 * as slices of the file Blob (`dataFrom`), or, over WebSocket in Chromium, as the bytes read for
 * their hash (client/browser/transports.ts `sendsBytesRead`).
 */
import { createBatchFileUploader } from '../browser/batch.js';
import { createUploader } from '../browser/index.js';
import { UPLOADER_EVENTS, type Uploader } from '../core/types.js';
import { batchedPost } from './batched-post.js';
import type { FromWorker, Snapshot, ToWorker } from './worker-protocol.js';

interface WorkerScope {
  postMessage(messages: FromWorker[]): void;
  onmessage: ((event: MessageEvent<ToWorker[]>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;
const post = batchedPost<FromWorker>((messages) => scope.postMessage(messages));

const uploaders = new Map<number, Uploader>();
/**
 * Last snapshot of uploaders that finished (done or cancelled): the uploader itself is dropped,
 * since it keeps its chunk buffers (megabytes) and a folder may hold 100k files; a late
 * pause/cancel from the page is still answered from this small record.
 */
const finished = new Map<number, Snapshot>();

function release(id: number, uploader: Uploader): void {
  if (uploader.state !== 'done' && uploader.state !== 'cancelled') return;
  finished.set(id, snapshot(uploader));
  uploaders.delete(id);
}

function snapshot(u: Uploader): Snapshot {
  return { state: u.state, progress: u.progress, uploadId: u.uploadId };
}

scope.onmessage = (event) => {
  for (const message of event.data) receive(message);
};

function receive(m: ToWorker): void {
  if (m.op === 'create') {
    try {
      const { filesInFlight, transport, ...options } = m.options;
      const uploader =
        m.route === 'batch' && transport !== 'http'
          ? createBatchFileUploader({
              ...options,
              file: m.file,
              ...(filesInFlight !== undefined ? { filesInFlight } : {}),
              transport: transport ?? 'auto',
            })
          : createUploader({ ...options, file: m.file, transport: transport ?? 'auto' });
      uploaders.set(m.id, uploader);
      for (const name of UPLOADER_EVENTS) {
        uploader.on(name, (payload) =>
          post({
            op: 'event',
            id: m.id,
            event: name,
            payload,
            snapshot: snapshot(uploader),
          }),
        );
      }
    } catch (error) {
      post({
        op: 'failed',
        id: m.id,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    return;
  }
  const uploader = uploaders.get(m.id);
  if (!uploader) {
    const last = finished.get(m.id);
    if (last) post({ op: 'settled', id: m.id, req: m.req, snapshot: last });
    return;
  }
  const settled = (outcome?: Awaited<ReturnType<Uploader['start']>>) => {
    post({
      op: 'settled',
      id: m.id,
      req: m.req,
      ...(outcome ? { outcome } : {}),
      snapshot: snapshot(uploader),
    });
    release(m.id, uploader);
  };
  switch (m.op) {
    case 'start':
      void uploader.start().then(settled);
      break;
    case 'pause':
      void uploader.pause().then(() => settled());
      break;
    case 'cancel':
      void uploader.cancel().then(() => settled());
      break;
  }
}
