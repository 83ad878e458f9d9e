/**
 * UploadController without a browser: the queue's concurrency limit, auto-start off/on, refusals,
 * and the mapping of core events to rows and DOM events, with scripted fake uploaders.
 */
import { describe, expect, it } from 'vitest';
import type { BrowserUploaderOptions } from '../../client/browser/index.js';
import { Emitter } from '../../client/core/emitter.js';
import type {
  ProgressEvent,
  UploadOutcome,
  UploadState,
  Uploader,
  UploaderEventMap,
  UploaderEventName,
} from '../../client/core/types.js';
import { UploadController, accepts, type UploadHost } from '../../client/component/controller.js';

class FakeUploader implements Uploader {
  readonly emitter = new Emitter<UploaderEventMap>();
  state: UploadState = 'idle';
  uploadId: string | undefined;
  starts = 0;
  private settle: ((o: UploadOutcome) => void) | undefined;
  constructor(readonly options: BrowserUploaderOptions) {}
  get progress(): ProgressEvent {
    return {
      bytesAcked: 0,
      bytesSent: 0,
      total: (this.options.file as Blob).size,
      rate: 0,
      eta: null,
    };
  }
  on<K extends UploaderEventName>(
    event: K,
    handler: (payload: UploaderEventMap[K]) => void,
  ): () => void {
    return this.emitter.on(event, handler);
  }
  start(): Promise<UploadOutcome> {
    this.starts++;
    this.set('connecting');
    return new Promise((resolve) => (this.settle = resolve));
  }
  resume(): Promise<UploadOutcome> {
    return this.start();
  }
  async pause(): Promise<void> {
    this.set('paused');
    this.settle?.({ state: 'paused' });
  }
  async cancel(): Promise<void> {
    this.emitter.mute();
    this.settle?.({ state: 'cancelled' });
  }
  set(state: UploadState): void {
    const previous = this.state;
    this.state = state;
    this.emitter.emit('state', { state, previous });
  }
  /** Script: the server accepts, acks everything, and returns RESULT. */
  finish(): void {
    const size = (this.options.file as Blob).size;
    this.uploadId = 'ab'.repeat(16);
    this.emitter.emit('start', {
      uploadId: this.uploadId,
      resumed: false,
      resumedBytes: 0,
      total: size,
      chunkSize: 1024,
      window: 4096,
    });
    this.set('uploading');
    this.emitter.emit('progress', {
      bytesAcked: size,
      bytesSent: size,
      total: size,
      rate: 1000,
      eta: 0,
    });
    const result = {
      uploadId: this.uploadId,
      digest: '0123456789abcdef',
      size,
      durationMs: 1,
      bytesSent: size,
      bytesSkipped: 0,
      completionMs: 0,
      digestVerified: true,
    };
    this.set('done');
    this.emitter.emit('complete', result);
    this.settle?.({ state: 'done', result });
  }
}

function setup(
  config: Partial<
    Omit<
      UploadHost,
      keyof EventTarget | 'addController' | 'removeController' | 'requestUpdate' | 'updateComplete'
    >
  > = {},
) {
  const target = new EventTarget();
  const fired: Array<{ type: string; detail: unknown }> = [];
  for (const type of [
    'upload-start',
    'upload-progress',
    'upload-complete',
    'upload-error',
    'upload-refused',
  ]) {
    target.addEventListener(type, (e) => fired.push({ type, detail: (e as CustomEvent).detail }));
  }
  const host = Object.assign(target, {
    endpoint: 'ws://127.0.0.1:1/upload',
    chunkSize: 0,
    window: 0,
    token: '',
    accept: '',
    maxFileSize: 0,
    autoStart: true,
    concurrency: 2,
    limitRate: 0,
    ...config,
    addController() {},
    removeController() {},
    requestUpdate() {},
    updateComplete: Promise.resolve(true),
  }) as unknown as UploadHost;
  const made: FakeUploader[] = [];
  const controller = new UploadController(host, (options) => {
    const u = new FakeUploader(options);
    made.push(u);
    return u;
  });
  return { controller, made, fired };
}

const file = (name: string, size = 10, type = '') =>
  new File([new Uint8Array(size)], name, { type });
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('UploadController', () => {
  it('runs at most `concurrency` uploads and starts the next when one finishes', async () => {
    const { controller, made } = setup({ concurrency: 2 });
    controller.add([file('a'), file('b'), file('c')]);
    expect(made).toHaveLength(2);
    expect(controller.items.map((i) => i.status)).toEqual(['hashing', 'hashing', 'queued']);
    made[0].finish();
    await tick();
    expect(made).toHaveLength(3);
    expect(controller.items.map((i) => i.status)).toEqual(['done', 'hashing', 'hashing']);
  });

  it('waits for startAll() when auto-start is off', () => {
    const { controller, made } = setup({ autoStart: false });
    controller.add([file('a')]);
    expect(made).toHaveLength(0);
    expect(controller.hasWaiting).toBe(true);
    controller.startAll();
    expect(made).toHaveLength(1);
  });

  it('refuses by size and type without creating an uploader', () => {
    const { controller, made, fired } = setup({ maxFileSize: 5, accept: '.bin,image/*' });
    controller.add([
      file('big.bin', 6),
      file('x.txt', 1, 'text/plain'),
      file('ok.png', 1, 'image/png'),
    ]);
    expect(controller.items.map((i) => [i.status, i.refusal])).toEqual([
      ['refused', 'too-large'],
      ['refused', 'type'],
      ['hashing', undefined],
    ]);
    expect(made).toHaveLength(1);
    expect(fired.filter((f) => f.type === 'upload-refused').map((f) => f.detail)).toEqual([
      { name: 'big.bin', size: 6, reason: 'too-large' },
      { name: 'x.txt', size: 1, reason: 'type' },
    ]);
  });

  it('maps core events to rows and plain-data DOM events', async () => {
    const { controller, made, fired } = setup();
    const [item] = controller.add([file('a.bin', 10)]);
    made[0].finish();
    await tick();
    expect(item.status).toBe('done');
    expect(fired.map((f) => f.type)).toEqual([
      'upload-start',
      'upload-progress',
      'upload-complete',
    ]);
    expect(fired[0].detail).toEqual({
      id: item.id,
      uploadId: 'ab'.repeat(16),
      name: 'a.bin',
      size: 10,
      resumedBytes: 0,
    });
    expect(fired[2].detail).toEqual({
      id: item.id,
      uploadId: 'ab'.repeat(16),
      name: 'a.bin',
      size: 10,
      digest: '0123456789abcdef',
    });
  });

  it('pauses, resumes through the queue, and reports a fatal error once', async () => {
    const { controller, made, fired } = setup({ concurrency: 1 });
    const [a] = controller.add([file('a'), file('b')]);
    controller.pause(a.id);
    await tick();
    expect(a.status).toBe('paused');
    expect(made).toHaveLength(2); // the slot went to b
    controller.resume(a.id);
    expect(a.status).toBe('queued');
    made[1].finish();
    await tick();
    expect(a.status).toBe('hashing');
    expect(made[0].starts).toBe(2);
    made[0].emitter.emit('error', {
      code: 0xf005,
      name: 'SOURCE_ERROR',
      message: 'gone',
      retryable: false,
      fatal: true,
    });
    expect(a.status).toBe('failed');
    expect(fired.filter((f) => f.type === 'upload-error').map((f) => f.detail)).toEqual([
      { id: a.id, uploadId: '', name: 'a', code: 0xf005, message: 'gone', retryable: false },
    ]);
  });

  it('matches accept lists like <input accept>', () => {
    expect(accepts('', { name: 'x', type: '' })).toBe(true);
    expect(accepts('.ISO, video/*', { name: 'a.iso', type: '' })).toBe(true);
    expect(accepts('.iso,video/*', { name: 'a.mp4', type: 'video/mp4' })).toBe(true);
    expect(accepts('application/zip', { name: 'a.zip', type: 'application/zip' })).toBe(true);
    expect(accepts('.iso,video/*', { name: 'a.txt', type: 'text/plain' })).toBe(false);
  });
});
