/** tus-js-client in Node against our tus endpoint, as a promise; and small raw-request helpers. */
import * as tus from 'tus-js-client';

export interface TusUploadResult {
  /** The upload URL the server gave (Location). */
  readonly url: string;
  /** The upload id (the URL's last segment). */
  readonly id: string;
  /** PATCH responses seen, with the offset each reported. */
  readonly offsets: number[];
}

export type TusOptions = Omit<tus.UploadOptions, 'onSuccess' | 'onError'>;

/** Upload `data` with tus-js-client; resolves on success, rejects with the client's error. */
export function tusUpload(
  data: Buffer | NodeJS.ReadableStream,
  options: TusOptions,
  started?: (upload: tus.Upload) => void,
): Promise<TusUploadResult> {
  const offsets: number[] = [];
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data as Buffer, {
      retryDelays: [0, 50, 100, 200, 400, 800, 1600],
      ...options,
      onAfterResponse: (request, response) => {
        const offset = response.getHeader('Upload-Offset');
        if (request.getMethod() === 'PATCH' && offset !== undefined) offsets.push(Number(offset));
        return options.onAfterResponse?.(request, response);
      },
      onSuccess: () => {
        const url = upload.url!;
        resolve({ url, id: url.slice(url.lastIndexOf('/') + 1), offsets });
      },
      onError: (error) => reject(error),
    });
    started?.(upload);
    upload.start();
  });
}

/** A raw tus request (fetch), with Tus-Resumable unless `headers` says otherwise. */
export async function tusRequest(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: Uint8Array,
): Promise<Response> {
  return fetch(url, {
    method,
    headers: { 'Tus-Resumable': '1.0.0', ...headers },
    ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}),
  });
}
