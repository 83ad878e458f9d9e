/**
 * UploadController: all upload behaviour of <big-uploader>, as a Lit ReactiveController. It keeps
 * the queue (a concurrency limit across files), drives one client-core Uploader per file, turns
 * core events into row state for the view and into the component's DOM events, remembers File
 * System Access handles for one-click resume, and holds a wake lock while anything uploads.
 * The element only renders `items` and forwards clicks; it has no upload logic of its own.
 */
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import {
  createUploader as createBrowserUploader,
  type BrowserUploaderOptions,
} from '../browser/index.js';
import type { Uploader, UploadErrorInfo, UploadState } from '../core/types.js';
import { ClientErrors, clientError } from '../core/errors.js';
import type { BigUploaderEventMap, BigUploaderEventName } from './events.js';
import {
  HandleStore,
  WakeLock,
  ensureReadPermission,
  handleKey,
  type FileHandleLike,
  type SavedHandle,
} from './platform.js';

/** What a row shows. `hashing` is the core's first 'connecting' (fingerprint sample, hasher load, connect). */
export const ItemStatus = {
  queued: 'queued',
  hashing: 'hashing',
  connecting: 'connecting',
  uploading: 'uploading',
  paused: 'paused',
  retrying: 'retrying',
  completing: 'completing',
  done: 'done',
  failed: 'failed',
  cancelled: 'cancelled',
  refused: 'refused',
} as const;
export type ItemStatus = (typeof ItemStatus)[keyof typeof ItemStatus];

/** Statuses that occupy one of the `concurrency` slots. */
const ACTIVE: ReadonlySet<ItemStatus> = new Set<ItemStatus>([
  'hashing',
  'connecting',
  'uploading',
  'retrying',
  'completing',
]);

export interface UploadItem {
  readonly id: string;
  readonly file: File;
  /** Name shown: the path inside a dropped folder, else the file name. */
  readonly displayName: string;
  readonly size: number;
  status: ItemStatus;
  bytesAcked: number;
  bytesSent: number;
  rate: number;
  eta: number | null;
  /** Epoch ms of the next reconnect attempt while retrying. */
  retryAt: number | undefined;
  error: UploadErrorInfo | undefined;
  refusal: 'too-large' | 'type' | undefined;
  /** Percent the server already had when this page resumed the upload (shown as "Resuming at N%"). */
  resumedPercent: number | undefined;
  /** The file differed from the server's partial copy, so it is being uploaded again from the start. */
  sourceChanged: boolean;
  /** Parts sent in an earlier session had changed: only they were sent again (REPLACE_CHUNK). */
  changedPartsResent: boolean;
  uploadId: string;
  digest: string;
  /** The user asked for this row to run (auto-start, "Start upload", resume, retry). */
  startRequested: boolean;
  uploader: Uploader | undefined;
  /** Handle stored for one-click resume after a reload (File System Access browsers only). */
  handleKey: string | undefined;
  /** upload-start goes out once per row run, not on every reconnect. */
  announced: boolean;
}

/** The element's configuration, read at the moment an upload starts. */
export interface UploadHost extends ReactiveControllerHost, EventTarget {
  readonly endpoint: string;
  readonly chunkSize: number;
  readonly window: number;
  readonly token: string;
  readonly accept: string;
  readonly maxFileSize: number;
  readonly autoStart: boolean;
  readonly concurrency: number;
  readonly limitRate: number;
}

export type UploaderFactory = (options: BrowserUploaderOptions) => Uploader;

let nextId = 1;

/** Does `file` match an `accept` list (".ext", "type/*", "type/subtype"), as <input accept> does? */
export function accepts(accept: string, file: { name: string; type: string }): boolean {
  const tokens = accept
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  if (tokens.length === 0) return true;
  const name = file.name.toLowerCase();
  const type = file.type.toLowerCase();
  return tokens.some((t) => {
    if (t.startsWith('.')) return name.endsWith(t);
    if (t.endsWith('/*')) return type.startsWith(t.slice(0, -1));
    return type === t;
  });
}

/** The page's own upload endpoint: ws(s)://<host>/upload. */
export function defaultEndpoint(): string {
  if (typeof location === 'undefined' || !/^https?:$/.test(location.protocol)) return '';
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/upload`;
}

export class UploadController implements ReactiveController {
  items: UploadItem[] = [];
  /** Remembered handles of unfinished uploads from earlier visits (one-click resume). */
  unfinished: SavedHandle[] = [];
  private readonly handles = new HandleStore();
  private readonly wakeLock = new WakeLock();
  private tick: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly host: UploadHost,
    private readonly factory: UploaderFactory = createBrowserUploader,
  ) {
    host.addController(this);
  }

  get endpoint(): string {
    return this.host.endpoint || defaultEndpoint();
  }

  /** True while some upload holds a slot: the wake lock follows this. */
  get busy(): boolean {
    return this.items.some((i) => ACTIVE.has(i.status));
  }

  get wakeLockHeld(): boolean {
    return this.wakeLock.held;
  }

  hostConnected(): void {
    void this.loadUnfinished();
  }

  /** Reload the one-click-resume offers (after the endpoint changed). */
  refreshUnfinished(): void {
    void this.loadUnfinished();
  }

  hostDisconnected(): void {
    // Uploads keep going if the element is moved in the DOM; only the page-level helpers stop.
    this.wakeLock.set(false);
    this.setTicking(false);
  }

  // -------------------------------------------------------------------------------------------
  // Adding files

  /** Add files to the queue. Files refused by `accept`/`maxFileSize` get a row that says why. */
  add(
    files: Iterable<File>,
    options: { paths?: Map<File, string>; handles?: Map<File, FileHandleLike> } = {},
  ): UploadItem[] {
    const added: UploadItem[] = [];
    for (const file of files) {
      const refusal =
        this.host.maxFileSize > 0 && file.size > this.host.maxFileSize
          ? 'too-large'
          : !accepts(this.host.accept, file)
            ? 'type'
            : undefined;
      const item: UploadItem = {
        id: `f${nextId++}`,
        file,
        displayName: options.paths?.get(file) ?? file.name,
        size: file.size,
        status: refusal ? 'refused' : 'queued',
        bytesAcked: 0,
        bytesSent: 0,
        rate: 0,
        eta: null,
        retryAt: undefined,
        error: undefined,
        refusal,
        resumedPercent: undefined,
        sourceChanged: false,
        changedPartsResent: false,
        uploadId: '',
        digest: '',
        startRequested: this.host.autoStart,
        uploader: undefined,
        handleKey: undefined,
        announced: false,
      };
      this.items.push(item);
      added.push(item);
      if (refusal) {
        this.emit('upload-refused', { name: item.displayName, size: item.size, reason: refusal });
        continue;
      }
      const handle = options.handles?.get(file);
      if (handle) {
        const key = handleKey(this.endpoint, file);
        item.handleKey = key;
        void this.handles.put({
          key,
          endpoint: this.endpoint,
          name: file.name,
          size: file.size,
          lastModified: file.lastModified,
          handle,
          savedAt: Date.now(),
        });
        this.unfinished = this.unfinished.filter((u) => u.key !== key);
      }
    }
    this.changed();
    return added;
  }

  // -------------------------------------------------------------------------------------------
  // User actions

  /** Start every queued row (the "Start upload" button when auto-start is off). */
  startAll(): void {
    for (const item of this.items) if (item.status === 'queued') item.startRequested = true;
    this.changed();
  }

  get hasWaiting(): boolean {
    return this.items.some((i) => i.status === 'queued' && !i.startRequested);
  }

  pause(id: string): void {
    const item = this.find(id);
    if (!item) return;
    if (item.status === 'queued') {
      item.startRequested = false;
      item.status = 'paused';
      this.changed();
      return;
    }
    void item.uploader?.pause();
  }

  resume(id: string): void {
    const item = this.find(id);
    if (!item || item.status !== 'paused') return;
    item.status = 'queued';
    item.startRequested = true;
    this.changed();
  }

  retry(id: string): void {
    const item = this.find(id);
    if (!item || (item.status !== 'failed' && item.status !== 'cancelled')) return;
    if (item.status === 'cancelled') {
      item.uploader = undefined; // cancelled uploads are gone on the server: start fresh
      item.bytesAcked = 0;
      item.bytesSent = 0;
    } else if (item.error?.code === ClientErrors.WORKER_LOST.code) {
      item.uploader = undefined; // a new uploader (in the page) resumes from the resume record
    }
    item.error = undefined;
    item.status = 'queued';
    item.startRequested = true;
    item.announced = false;
    this.changed();
  }

  async cancel(id: string): Promise<void> {
    const item = this.find(id);
    if (!item || item.status === 'done' || item.status === 'cancelled' || item.status === 'refused')
      return;
    const uploader = item.uploader;
    item.status = 'cancelled';
    item.rate = 0;
    item.eta = null;
    this.forgetHandle(item);
    this.changed();
    // The core goes silent after cancel() and tells the server to delete the upload.
    if (uploader) await uploader.cancel();
    this.changed();
  }

  remove(id: string): void {
    const item = this.find(id);
    if (!item || ACTIVE.has(item.status)) return;
    if (item.status === 'paused') void this.cancel(id);
    this.items = this.items.filter((i) => i !== item);
    this.changed();
  }

  /** One-click resume of a remembered handle (call from a click: it may ask for permission). */
  async resumeSaved(key: string): Promise<void> {
    const saved = this.unfinished.find((u) => u.key === key);
    if (!saved) return;
    if (!(await ensureReadPermission(saved.handle))) return;
    let file: File;
    try {
      file = await saved.handle.getFile();
    } catch {
      await this.forgetSaved(key); // moved or deleted
      return;
    }
    this.unfinished = this.unfinished.filter((u) => u.key !== key);
    if (file.size !== saved.size || file.lastModified !== saved.lastModified) {
      // Changed since: the server's partial upload no longer matches; the core would refuse it.
      await this.handles.remove(key);
    }
    const item = this.add([file], { handles: new Map([[file, saved.handle]]) })[0];
    if (item && item.status === 'queued') item.startRequested = true;
    this.changed();
  }

  async forgetSaved(key: string): Promise<void> {
    this.unfinished = this.unfinished.filter((u) => u.key !== key);
    await this.handles.remove(key);
    this.host.requestUpdate();
  }

  // -------------------------------------------------------------------------------------------
  // Queue

  private find(id: string): UploadItem | undefined {
    return this.items.find((i) => i.id === id);
  }

  /** Something changed: start what the concurrency limit allows, update helpers, re-render. */
  private changed(): void {
    const limit = Math.max(1, Math.floor(this.host.concurrency) || 1);
    // Recount on every step: starting an uploader emits 'state' synchronously, which re-enters
    // changed() and may already have filled slots.
    for (const item of this.items) {
      if (this.items.filter((i) => ACTIVE.has(i.status)).length >= limit) break;
      if (item.status === 'queued' && item.startRequested) this.run(item);
    }
    const busy = this.busy;
    this.wakeLock.set(busy);
    this.setTicking(this.items.some((i) => i.status === 'retrying'));
    this.host.requestUpdate();
  }

  private run(item: UploadItem): void {
    if (!item.uploader) {
      try {
        item.uploader = this.createUploader(item);
      } catch (error) {
        // A bad endpoint URL throws at construction: show it on the row instead of throwing.
        this.fail(
          item,
          clientError(
            ClientErrors.BAD_ENDPOINT,
            error instanceof Error ? error.message : String(error),
          ),
        );
        return;
      }
    }
    item.status = item.announced ? 'connecting' : 'hashing';
    void item.uploader.start().then(() => this.changed());
  }

  private createUploader(item: UploadItem): Uploader {
    const host = this.host;
    const uploader = this.factory({
      endpoint: this.endpoint,
      file: item.file,
      ...(host.chunkSize > 0 ? { chunkSize: host.chunkSize } : {}),
      ...(host.window > 0 ? { maxInFlightBytes: host.window } : {}),
      ...(host.token ? { token: host.token } : {}),
      ...(host.limitRate > 0 ? { limitRate: host.limitRate } : {}),
      ...(item.displayName !== item.file.name
        ? { metadata: { relativePath: item.displayName } }
        : {}),
    });
    uploader.on('state', ({ state, retryInMs }) => this.onState(item, uploader, state, retryInMs));
    uploader.on('start', (e) => {
      if (item.uploader !== uploader) return;
      item.uploadId = e.uploadId;
      item.bytesAcked = e.resumedBytes;
      if (
        e.resumed &&
        e.resumedBytes > 0 &&
        e.resumedBytes < e.total &&
        item.resumedPercent === undefined
      ) {
        item.resumedPercent = Math.floor((e.resumedBytes / e.total) * 100);
      }
      if (!item.announced) {
        item.announced = true;
        this.emit('upload-start', {
          id: item.id,
          uploadId: e.uploadId,
          name: item.displayName,
          size: item.size,
          resumedBytes: e.resumedBytes,
        });
      }
      this.host.requestUpdate();
    });
    uploader.on('info', (i) => {
      if (item.uploader !== uploader) return;
      if (i.code === 'SOURCE_CHANGED_STARTING_FRESH') {
        item.sourceChanged = true;
        item.resumedPercent = undefined;
      } else if (i.code === 'CHANGED_CHUNKS_RESENT') {
        item.changedPartsResent = true;
      } else {
        return;
      }
      this.host.requestUpdate();
    });
    uploader.on('progress', (p) => {
      if (item.uploader !== uploader) return;
      item.bytesAcked = p.bytesAcked;
      item.bytesSent = p.bytesSent;
      item.rate = p.rate;
      item.eta = p.eta;
      this.emit('upload-progress', {
        id: item.id,
        uploadId: item.uploadId,
        name: item.displayName,
        size: item.size,
        bytesAcked: p.bytesAcked,
        bytesSent: p.bytesSent,
        rate: p.rate,
        eta: p.eta,
      });
      this.host.requestUpdate();
    });
    uploader.on('complete', (c) => {
      if (item.uploader !== uploader) return;
      item.status = 'done';
      item.digest = c.digest;
      item.bytesAcked = item.size;
      item.rate = 0;
      item.eta = 0;
      this.forgetHandle(item);
      this.emit('upload-complete', {
        id: item.id,
        uploadId: c.uploadId,
        name: item.displayName,
        size: item.size,
        digest: c.digest,
      });
      this.changed();
    });
    uploader.on('error', (e) => {
      // Errors the core retries by itself show as "retrying in Ns"; only a failed upload is reported.
      if (item.uploader === uploader && e.fatal) this.fail(item, e);
    });
    return uploader;
  }

  private onState(
    item: UploadItem,
    uploader: Uploader,
    state: UploadState,
    retryInMs: number | undefined,
  ): void {
    if (item.uploader !== uploader || item.status === 'cancelled') return;
    switch (state) {
      case 'connecting':
        item.status = item.announced ? 'connecting' : 'hashing';
        break;
      case 'uploading':
      case 'completing':
      case 'paused':
        item.status = state;
        if (state === 'paused') {
          item.rate = 0;
          item.eta = null;
        }
        break;
      case 'retrying':
        item.status = 'retrying';
        item.retryAt = Date.now() + (retryInMs ?? 0);
        break;
      default:
        return; // done/failed/cancelled come with their own events
    }
    this.changed();
  }

  private fail(item: UploadItem, error: UploadErrorInfo): void {
    item.status = 'failed';
    item.error = error;
    item.rate = 0;
    item.eta = null;
    this.emit('upload-error', {
      id: item.id,
      uploadId: item.uploadId,
      name: item.displayName,
      code: error.code,
      message: error.message,
      retryable: error.retryable,
    });
    this.changed();
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private emit<K extends BigUploaderEventName>(
    type: K,
    detail: BigUploaderEventMap[K]['detail'],
  ): void {
    this.host.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  private forgetHandle(item: UploadItem): void {
    if (item.handleKey) void this.handles.remove(item.handleKey);
    item.handleKey = undefined;
  }

  private async loadUnfinished(): Promise<void> {
    const endpoint = this.endpoint;
    const saved = await this.handles.list();
    if (endpoint !== this.endpoint) return; // a newer load for the new endpoint is under way
    const inUse = new Set(this.items.map((i) => i.handleKey));
    const before = this.unfinished.length;
    this.unfinished = saved.filter((s) => s.endpoint === endpoint && !inUse.has(s.key));
    if (this.unfinished.length > 0 || before > 0) this.host.requestUpdate();
  }

  /** A 1 s tick re-renders "retrying in Ns" countdowns; off when nothing is retrying. */
  private setTicking(on: boolean): void {
    if (on && !this.tick) this.tick = setInterval(() => this.host.requestUpdate(), 1000);
    else if (!on && this.tick) {
      clearInterval(this.tick);
      this.tick = undefined;
    }
  }
}
