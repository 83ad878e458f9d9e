/**
 * The page of test/browser/tus.test.ts, served by the server under test (same origin, so its
 * Bigup-Secret header is readable): tus-js-client uploading the File picked in #file, or Uppy with
 * its Dashboard mounted in #uppy and @uppy/tus, both against `<origin>/files/`. What the clients
 * did is recorded in `window.__tus` for the test to read: every PATCH's Upload-Offset as sent,
 * every HEAD's answer, bytes sent, the upload URL and secret, and the end (done or error).
 */
import '@uppy/core/css/style.min.css';
import '@uppy/dashboard/css/style.min.css';
import Uppy from '@uppy/core';
import Dashboard from '@uppy/dashboard';
import Tus from '@uppy/tus';
import { Upload, type HttpRequest, type HttpResponse } from 'tus-js-client';

export interface TusPageState {
  sent: number;
  total: number;
  /** Upload-Offset of each PATCH as the client sent it. */
  patchOffsets: number[];
  /** Upload-Offset of each HEAD answer (a resume asks the server where to go on). */
  headOffsets: number[];
  /** Location of the creation answer, and the upload URL the client ended with. */
  createdUrl?: string;
  uploadUrl?: string;
  secret?: string;
  done: boolean;
  error?: string;
}

const state: TusPageState = { sent: 0, total: 0, patchOffsets: [], headOffsets: [], done: false };
(window as unknown as { __tus: TusPageState }).__tus = state;

const endpoint = `${location.origin}/files/`;

function recordRequest(request: HttpRequest): void {
  if (request.getMethod() === 'PATCH')
    state.patchOffsets.push(Number(request.getHeader('Upload-Offset')));
}

function recordResponse(request: HttpRequest, response: HttpResponse): void {
  if (request.getMethod() === 'HEAD')
    state.headOffsets.push(Number(response.getHeader('Upload-Offset')));
  if (request.getMethod() !== 'POST') return;
  state.secret = response.getHeader('Bigup-Secret');
  state.createdUrl = response.getHeader('Location');
}

export interface ClientSettings {
  /** tus-js-client's retry delays (ms); long enough to outlast a server restart. */
  retryDelays: number[];
  /** undefined: the client's default, one PATCH for the whole file. */
  chunkSize?: number;
}

/** tus-js-client on the File in #file. */
function startTusJs(settings: ClientSettings): void {
  const file = document.querySelector<HTMLInputElement>('#file')?.files?.[0];
  if (!file) throw new Error('no file picked');
  state.total = file.size;
  const upload = new Upload(file, {
    endpoint,
    retryDelays: settings.retryDelays,
    ...(settings.chunkSize === undefined ? {} : { chunkSize: settings.chunkSize }),
    storeFingerprintForResuming: false,
    metadata: { filename: file.name, filetype: file.type || 'application/octet-stream' },
    onBeforeRequest: recordRequest,
    onAfterResponse: recordResponse,
    onProgress: (sent) => {
      state.sent = sent;
    },
    onSuccess: () => {
      state.uploadUrl = upload.url ?? undefined;
      state.done = true;
    },
    onError: (error) => {
      state.error = String(error);
    },
  });
  upload.start();
}

/** Uppy with the Dashboard in #uppy and @uppy/tus; files are added and started through the UI. */
function mountUppy(settings: ClientSettings): void {
  const uppy = new Uppy({ autoProceed: false })
    .use(Dashboard, {
      inline: true,
      target: '#uppy',
      height: 400,
      proudlyDisplayPoweredByUppy: false,
    })
    .use(Tus, {
      endpoint,
      retryDelays: settings.retryDelays,
      ...(settings.chunkSize === undefined ? {} : { chunkSize: settings.chunkSize }),
      storeFingerprintForResuming: false,
      onBeforeRequest: recordRequest,
      onAfterResponse: recordResponse,
    });
  uppy.on('file-added', (file) => {
    state.total = file.size ?? 0;
  });
  uppy.on('upload-progress', (_file, progress) => {
    state.sent = progress.bytesUploaded;
  });
  uppy.on('upload-success', (_file, response) => {
    state.uploadUrl = response.uploadURL;
  });
  uppy.on('upload-error', (_file, error) => {
    state.error = error.message;
  });
  uppy.on('complete', (result) => {
    if ((result.successful ?? []).length > 0 && (result.failed ?? []).length === 0)
      state.done = true;
  });
}

Object.assign(window, { startTusJs, mountUppy });
