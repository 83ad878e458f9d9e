/**
 * UploadController without a browser: the queue's concurrency limit, auto-start off/on, refusals,
 * and the mapping of core events to rows and DOM events, with scripted fake uploaders.
 */
import { describe, expect, it } from 'vitest';
import type { BrowserUploaderOptions } from '../../client/browser/index.js';
import { Emitter } from '../../client/core/emitter.js';
import type {
  UploadProgress,
  UploadOutcome,
  UploadState,
  Uploader,
  UploaderEventMap,
  UploaderEventName,
} from '../../client/core/types.js';
import {
  BATCH_QUEUE_AHEAD,
  SIZED_AT_ONCE,
  UploadController,
  accepts,
  groupStatus,
  isGroup,
  type ItemStatus,
  type UploadGroup,
  type UploadHost,
} from '../../client/component/controller.js';

class FakeUploader implements Uploader {
  readonly emitter = new Emitter<UploaderEventMap>();
  state: UploadState = 'idle';
  uploadId: string | undefined;
  starts = 0;
  private settle: ((o: UploadOutcome) => void) | undefined;
  constructor(readonly options: BrowserUploaderOptions) {}
  get progress(): UploadProgress {
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
  withBatch = false,
) {
  const target = new EventTarget();
  const renders = { count: 0 };
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
    requestUpdate() {
      renders.count++;
    },
    updateComplete: Promise.resolve(true),
  }) as unknown as UploadHost;
  const made: FakeUploader[] = [];
  /** Uploaders of batched files (only with `withBatch`). */
  const batched: FakeUploader[] = [];
  const controller = new UploadController(
    host,
    (options) => {
      const u = new FakeUploader(options);
      made.push(u);
      return u;
    },
    withBatch
      ? (options) => {
          const u = new FakeUploader(options);
          batched.push(u);
          return u;
        }
      : undefined,
  );
  return { controller, made, batched, fired, renders };
}

const file = (name: string, size = 10, type = '') =>
  new File([new Uint8Array(size)], name, { type });
const tick = () => new Promise((r) => setTimeout(r, 0));
/** Longer than the controller's frame fallback (16 ms) where requestAnimationFrame is missing. */
const frame = () => new Promise((r) => setTimeout(r, 40));

/** Files of a folder, as a folder input or drop delivers them (path per file). */
function folder(name: string, count: number, size = 10) {
  const files = Array.from({ length: count }, (_, i) => file(`f${i}.bin`, size));
  const paths = new Map(files.map((f, i) => [f, `${name}/sub-${i % 3}/${f.name}`]));
  return { files, paths };
}

/** The group's counts recomputed from its members: what the incremental ones must equal. */
function recount(group: UploadGroup) {
  const counts: Partial<Record<ItemStatus, number>> = {};
  for (const i of group.members) counts[i.status] = (counts[i.status] ?? 0) + 1;
  return {
    counts: Object.fromEntries(Object.entries(group.counts).filter(([, n]) => n > 0)),
    expected: counts,
    acked: group.members.reduce((n, i) => n + i.bytesAcked, 0),
    failed: group.members.filter((i) => i.status === 'failed'),
  };
}

const sourceError = {
  code: 0xf005,
  name: 'SOURCE_ERROR',
  message: 'gone',
  retryable: false,
  fatal: true,
} as const;

describe('UploadController', () => {
  it('batches files up to batchMaxFileSize in their own slots (filesInFlight x BATCH_QUEUE_AHEAD); bigger ones, http and limit-rate go per file', () => {
    const small = folder('photos', 20, 100);
    const { controller, made, batched } = setup(
      { concurrency: 1, filesInFlight: 2, batchMaxFileSize: 100 },
      true,
    );
    controller.add([...small.files, file('big-1', 101), file('big-2', 101)], {
      paths: small.paths,
    });
    expect(batched).toHaveLength(2 * BATCH_QUEUE_AHEAD);
    expect(batched[0]?.options).toMatchObject({ filesInFlight: 2, transport: 'auto' });
    expect(batched[0]?.options.metadata).toEqual({ relativePath: 'photos/sub-0/f0.bin' });
    expect(made.map((u) => (u.options.file as File).name)).toEqual(['big-1']);
    for (const [transport, limitRate] of [
      ['http', 0],
      ['auto', 1000],
    ] as const) {
      const perFile = setup({ transport, limitRate, batchMaxFileSize: 100 }, true);
      perFile.controller.add([file('a', 10), file('b', 10)]);
      expect(perFile.batched).toHaveLength(0);
      expect(perFile.made).toHaveLength(2);
    }
  });

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
  it('shows a folder as one group with counts kept exact through pause, failure, retry and cancel', async () => {
    const { controller, made } = setup({ concurrency: 2 });
    const album = folder('album', 7);
    controller.add(album.files, { paths: album.paths });
    expect(controller.rows).toHaveLength(1);
    const [group] = controller.rows;
    if (!isGroup(group)) throw new Error('expected a group row');
    expect(group).toMatchObject({ kind: 'folder', name: 'album', active: 2, bytesTotal: 70 });
    expect(group.members.map((i) => i.displayName)[0]).toBe('album/sub-0/f0.bin');
    expect(made[0].options.metadata).toEqual({ relativePath: 'album/sub-0/f0.bin' });
    made[0].finish();
    made[1].emitter.emit('error', sourceError);
    await tick();
    expect(groupStatus(group)).toBe('uploading');
    expect(group.counts).toMatchObject({ done: 1, failed: 1, hashing: 2, queued: 3 });
    expect(group.bytesAcked).toBe(10);
    controller.pauseGroup(group.id);
    await tick();
    expect(group.counts).toMatchObject({ paused: 5, queued: 0 });
    expect(groupStatus(group)).toBe('paused');
    expect(made).toHaveLength(4); // pausing did not start more files
    controller.resumeGroup(group.id);
    controller.retryFailed(group.id);
    await tick();
    expect(group.failed.size).toBe(0);
    void controller.cancelGroup(group.id);
    await tick();
    expect(group.counts).toMatchObject({ cancelled: 6, done: 1 });
    expect(groupStatus(group)).toBe('cancelled');
    const check = recount(group);
    expect(check.counts).toEqual(check.expected);
    expect(group.bytesAcked).toBe(check.acked);
    expect(controller.busy).toBe(false);
    controller.removeGroup(group.id);
    expect(controller.rows).toEqual([]);
    expect(controller.items).toEqual([]);
    expect(controller.counts.done + controller.counts.cancelled).toBe(0);
  });

  it('groups a loose selection above groupThreshold, keeps smaller ones as file rows', () => {
    const { controller } = setup({ autoStart: false, groupThreshold: 5 });
    controller.add(Array.from({ length: 5 }, (_, i) => file(`a${i}`)));
    controller.add(Array.from({ length: 6 }, (_, i) => file(`b${i}`)));
    expect(
      controller.rows.map((r) => (isGroup(r) ? `group:${r.members.length}` : r.file.name)),
    ).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'group:6']);
    expect(controller.hasWaiting).toBe(true);
    controller.startAll();
    expect(controller.hasWaiting).toBe(false);
  });

  it('a large pick is sized a slice per task: the first files start at once, later ones once sized, a paused group stays paused, a too-large late file is refused', async () => {
    const { controller, made, fired } = setup({ concurrency: 1000, maxFileSize: 50 });
    const count = SIZED_AT_ONCE * 3 + 5;
    const pick = folder('pick', count, 10);
    const tooLarge = file('huge.bin', 60);
    pick.files.splice(SIZED_AT_ONCE + 7, 0, tooLarge);
    pick.paths.set(tooLarge, 'pick/huge.bin');
    const items = controller.add(pick.files, { paths: pick.paths });
    expect(items).toHaveLength(count + 1);
    const [group] = controller.rows as UploadGroup[];
    expect(group.members).toHaveLength(count + 1);
    // Only the first slice is sized and started in the call itself.
    expect(items.filter((i) => i.sized)).toHaveLength(SIZED_AT_ONCE);
    expect(made).toHaveLength(SIZED_AT_ONCE);
    expect(group.bytesTotal).toBe(SIZED_AT_ONCE * 10);
    expect(group.counts.queued).toBe(count + 1 - SIZED_AT_ONCE);

    await tick();
    await tick();
    // Later slices start as they are sized.
    expect(made.length).toBeGreaterThan(SIZED_AT_ONCE);
    controller.pauseGroup(group.id);
    for (let n = 0; n < 6; n++) await tick();
    expect(items.every((i) => i.sized)).toBe(true);
    expect(group.bytesTotal).toBe(count * 10 + 60);
    const startedAtPause = made.length;
    expect(startedAtPause).toBeLessThan(count);
    // Sized while the group was paused: paused, not started.
    expect(made).toHaveLength(startedAtPause);
    expect(items.filter((i) => i.status === 'queued')).toEqual([]);
    expect(tooLarge.size).toBe(60);
    const huge = items.find((i) => i.file === tooLarge);
    expect(huge?.status).toBe('refused');
    expect(fired.filter((f) => f.type === 'upload-refused').map((f) => f.detail)).toEqual([
      { name: 'pick/huge.bin', size: 60, reason: 'too-large' },
    ]);
    const { counts, expected } = recount(group);
    expect(counts).toEqual(expected);
    controller.resumeGroup(group.id);
    await tick();
    expect(made).toHaveLength(count);
  });

  it('does O(1) work per upload event with 10,000 files, and renders once per frame', async () => {
    const { controller, made, renders } = setup({ concurrency: 4 });
    const big = folder('big', 10_000, 16);
    controller.add(big.files, { paths: big.paths });
    expect(made).toHaveLength(4);
    // The sizes past the first slice are read a slice per task: done before measuring.
    while (controller.items.some((i) => !i.sized)) await tick();
    // Count every read of an element of the full list while 400 uploads finish one by one.
    let reads = 0;
    controller.items = new Proxy(controller.items, {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    await frame();
    const rendersBefore = renders.count;
    for (let n = 0; n < 400; n++) made[n].finish();
    await tick();
    expect(made).toHaveLength(404);
    // A scan per event would read 400 x 10,000 elements; the controller reads none.
    expect(reads).toBe(0);
    await frame();
    // 400 completions (2,400 core events) in one frame: one render, not thousands.
    expect(renders.count - rendersBefore).toBeLessThanOrEqual(2);
    const [group] = controller.rows as UploadGroup[];
    expect(group.counts).toMatchObject({ done: 400, hashing: 4, queued: 9_596 });
    expect(group.bytesAcked).toBe(400 * 16);
  });
});
