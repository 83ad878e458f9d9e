/**
 * Starts the upload worker (upload-worker.ts). This is the form bundlers understand; the
 * component's own builds (vite.config.ts, modes `standalone` and `lib`) replace this module with
 * one that inlines the worker as a Blob URL, so the shipped bundle is one file that works wherever
 * it is hosted or re-bundled. A page whose CSP forbids `blob:` workers gets the in-page fallback.
 */
export function startUploadWorker(): Worker {
  return new Worker(new URL('./upload-worker.ts', import.meta.url), {
    type: 'module',
    name: 'big-uploader',
  });
}
