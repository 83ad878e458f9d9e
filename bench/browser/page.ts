/**
 * The browser scenario's page (served by bench/peers/browser-peer.ts): tus-js-client and the two
 * page ceilings, each uploading the File picked in #file to the peer server and resolving with its
 * own seconds (from the call to the last byte acknowledged); and tus-js-client uploading the
 * folder picked in #folder, file by file (bench/browser-folder.ts). No copy of the bytes is made into JS
 * here: every contender hands the browser Blob slices, the fastest way a page can send a file.
 */
import { Upload } from 'tus-js-client';

const MiB = 2 ** 20;

function pickedFile(): File {
  const input = document.querySelector<HTMLInputElement>('#file');
  const file = input?.files?.[0];
  if (!file) throw new Error('no file picked');
  return file;
}

/** One tus-js-client upload of `file` to @tus/server; `chunkSize` undefined = its default (one PATCH). */
function tusSend(
  file: File,
  chunkSize: number | undefined,
  metadata: Record<string, string> = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    const upload = new Upload(file, {
      endpoint: `${location.origin}/files`,
      ...(chunkSize === undefined ? {} : { chunkSize }),
      retryDelays: [],
      storeFingerprintForResuming: false,
      metadata: { filename: file.name, ...metadata },
      onSuccess: () => resolve(),
      onError: reject,
    });
    upload.start();
  });
}

/** tus-js-client against @tus/server; `chunkSize` undefined = its default (one PATCH). */
async function tusUpload(chunkSize: number | undefined): Promise<number> {
  const file = pickedFile();
  const started = performance.now();
  await tusSend(file, chunkSize);
  return (performance.now() - started) / 1000;
}

/**
 * tus-js-client with its defaults uploading every file of the folder picked in #folder, `parallel`
 * uploads at a time (each file one tus upload: POST, then PATCH), its path inside the folder as
 * `relativePath` metadata. Seconds from the call to the last upload's success.
 */
async function tusFolder(parallel: number): Promise<number> {
  const files = Array.from(document.querySelector<HTMLInputElement>('#folder')?.files ?? []);
  if (files.length === 0) throw new Error('no folder picked');
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++];
      await tusSend(file, undefined, { relativePath: file.webkitRelativePath });
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return (performance.now() - started) / 1000;
}

/** The fetch ceiling: PUT of `sliceSize` Blob slices, `parallel` in flight. */
async function fetchCeiling(name: string, sliceSize: number, parallel: number): Promise<number> {
  const file = pickedFile();
  const started = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < file.size) {
      const offset = next;
      next += sliceSize;
      const body = file.slice(offset, Math.min(file.size, offset + sliceSize));
      const response = await fetch(`/sink/${name}?offset=${offset}`, { method: 'PUT', body });
      if (!response.ok) throw new Error(`PUT at ${offset}: ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return (performance.now() - started) / 1000;
}

/** The WebSocket ceiling: Blob([u64 offset, slice]) frames, `unacked` in flight. */
function webSocketCeiling(name: string, sliceSize: number, unacked: number): Promise<number> {
  const file = pickedFile();
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${location.host}/ws-sink/${name}`);
    let next = 0;
    let acked = 0;
    let inFlight = 0;
    const pump = (): void => {
      while (inFlight < unacked && next < file.size) {
        const header = new DataView(new ArrayBuffer(8));
        header.setBigUint64(0, BigInt(next));
        const end = Math.min(file.size, next + sliceSize);
        ws.send(new Blob([header, file.slice(next, end)]));
        next = end;
        inFlight++;
      }
    };
    ws.onopen = pump;
    ws.onmessage = () => {
      inFlight--;
      acked++;
      if (acked === Math.ceil(file.size / sliceSize)) {
        ws.close();
        resolve((performance.now() - started) / 1000);
      } else pump();
    };
    ws.onerror = () => reject(new Error('websocket error'));
    ws.onclose = (e) => {
      if (acked < Math.ceil(file.size / sliceSize))
        reject(new Error(`closed ${e.code} ${e.reason}`));
    };
  });
}

const bench = {
  tusDefault: () => tusUpload(undefined),
  tus8MiB: () => tusUpload(8 * MiB),
  tusFolderSequential: () => tusFolder(1),
  tusFolderParallel8: () => tusFolder(8),
  fetchPut: (name: string) => fetchCeiling(name, 8 * MiB, 4),
  webSocketBlob: (name: string) => webSocketCeiling(name, 4 * MiB, 8),
};
export type PageBench = typeof bench;
(window as unknown as { __peers: PageBench }).__peers = bench;
