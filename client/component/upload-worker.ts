/**
 * The upload worker: hosts one client-core Uploader per file (browser entry: IndexedDB resume
 * records, Blob file source) and relays their events to the page. Runs as a module worker.
 *
 * It also sends DATA differently from the stock browser transport: the core hands over header +
 * payload it read into JS (it must, to hash the chunk), and instead of sending those bytes this
 * transport sends `new Blob([header, file.slice(offset, end)])`. Chromium then streams the payload
 * from the file itself; measured (shared/MEASURED.md) this is about twice as fast as sending an
 * ArrayBuffer. The bytes are the same ones the core hashed; if the file changed on disk meanwhile,
 * the server refuses the chunk with HASH_MISMATCH and the core re-reads and resends it.
 */
import { createUploader } from '../browser/index.js';
import type { Connection, ConnectionHandlers, Transport, Uploader, UploaderEventName } from '../core/types.js';
import type { FromWorker, Snapshot, ToWorker } from './worker-protocol.js';

const DATA_TYPE = 0x10;
const DATA_HEADER = 18;

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = globalThis as unknown as WorkerScope;

/** The page's WebSocket, sending DATA payloads as slices of the file Blob. */
class BlobDataTransport implements Transport {
  constructor(private readonly file: Blob) {}

  connect(url: string, protocols: readonly string[], handlers: ConnectionHandlers): Connection {
    const ws = new WebSocket(url, [...protocols]);
    ws.binaryType = 'arraybuffer';
    const file = this.file;
    let closed = false;
    ws.onopen = () => handlers.onOpen(ws.protocol);
    ws.onmessage = (event: MessageEvent) => {
      if (event.data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(event.data));
      else handlers.onMessage(new TextEncoder().encode(String(event.data))); // the decoder refuses text
    };
    ws.onclose = (event: CloseEvent) => {
      if (closed) return;
      closed = true;
      handlers.onClose({ code: event.code, reason: event.reason });
    };
    return {
      send(data: Uint8Array): void {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (data[0] === DATA_TYPE && data.byteLength > DATA_HEADER) {
          const view = new DataView(data.buffer, data.byteOffset, DATA_HEADER);
          const offset = view.getUint32(2) * 2 ** 32 + view.getUint32(6);
          const end = offset + data.byteLength - DATA_HEADER;
          ws.send(new Blob([data.slice(0, DATA_HEADER), file.slice(offset, end)]));
        } else {
          ws.send(data);
        }
      },
      get bufferedAmount(): number {
        return ws.bufferedAmount;
      },
      reportsDrain: false,
      close(code = 1000, reason = ''): void {
        if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code, reason);
      },
    };
  }
}

const uploaders = new Map<number, Uploader>();
const EVENTS: readonly UploaderEventName[] = ['start', 'progress', 'state', 'complete', 'error', 'info'];

function snapshot(u: Uploader): Snapshot {
  return { state: u.state, progress: u.progress, uploadId: u.uploadId };
}

scope.onmessage = (event) => {
  const m = event.data;
  if (m.op === 'create') {
    try {
      const uploader = createUploader({ ...m.options, file: m.file, transport: new BlobDataTransport(m.file) });
      uploaders.set(m.id, uploader);
      for (const name of EVENTS) {
        uploader.on(name, (payload) => scope.postMessage({ op: 'event', id: m.id, event: name, payload, snapshot: snapshot(uploader) }));
      }
    } catch (error) {
      scope.postMessage({ op: 'failed', id: m.id, message: error instanceof Error ? error.message : String(error) });
    }
    return;
  }
  const uploader = uploaders.get(m.id);
  if (!uploader) return;
  const settled = (outcome?: Awaited<ReturnType<Uploader['start']>>) =>
    scope.postMessage({ op: 'settled', id: m.id, req: m.req, ...(outcome ? { outcome } : {}), snapshot: snapshot(uploader) });
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
