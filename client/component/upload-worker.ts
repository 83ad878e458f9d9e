/**
 * The upload worker: hosts one client-core Uploader per file (browser entry: IndexedDB resume
 * records, Blob file source) and relays their events to the page. Runs as a module worker.
 *
 * Its transport sends DATA payloads as slices of the file Blob (BrowserWebSocketTransport's
 * `dataFrom`), the fastest WebSocket path measured in Chromium.
 */
import { BrowserWebSocketTransport, createUploader } from '../browser/index.js';
import type { Uploader, UploaderEventName } from '../core/types.js';
import type { FromWorker, Snapshot, ToWorker } from './worker-protocol.js';

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

const uploaders = new Map<number, Uploader>();
const EVENTS: readonly UploaderEventName[] = [
  'start',
  'progress',
  'state',
  'complete',
  'error',
  'info',
];

function snapshot(u: Uploader): Snapshot {
  return { state: u.state, progress: u.progress, uploadId: u.uploadId };
}

scope.onmessage = (event) => {
  const m = event.data;
  if (m.op === 'create') {
    try {
      const uploader = createUploader({
        ...m.options,
        file: m.file,
        transport: new BrowserWebSocketTransport(globalThis.WebSocket, { dataFrom: m.file }),
      });
      uploaders.set(m.id, uploader);
      for (const name of EVENTS) {
        uploader.on(name, (payload) =>
          scope.postMessage({
            op: 'event',
            id: m.id,
            event: name,
            payload,
            snapshot: snapshot(uploader),
          }),
        );
      }
    } catch (error) {
      scope.postMessage({
        op: 'failed',
        id: m.id,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    return;
  }
  const uploader = uploaders.get(m.id);
  if (!uploader) return;
  const settled = (outcome?: Awaited<ReturnType<Uploader['start']>>) =>
    scope.postMessage({
      op: 'settled',
      id: m.id,
      req: m.req,
      ...(outcome ? { outcome } : {}),
      snapshot: snapshot(uploader),
    });
  switch (m.op) {
    case 'start':
      // Uploaders stay in the map after they finish (a few fields and a File reference), so a late
      // pause/cancel from the page still gets its answer instead of waiting forever.
      void uploader.start().then(settled);
      break;
    case 'pause':
      void uploader.pause().then(() => settled());
      break;
    case 'cancel':
      void uploader.cancel().then(() => settled());
      break;
  }
};
