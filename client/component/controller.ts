/**
 * UploadController: all upload behaviour of <big-uploader>, as a Lit ReactiveController. It keeps
 * the queue (a concurrency limit across files), drives one client-core Uploader per file, turns
 * core events into row state for the view and into the component's DOM events, remembers File
 * System Access handles for one-click resume, and holds a wake lock while anything uploads.
 * The element only renders `rows` and forwards clicks; it has no upload logic of its own.
 *
 * Two routes (given a `batchFactory`): a file of at most `batchMaxFileSize` bytes is *batched*: its
 * uploader shares one bigup.2 connection with the other small files, `filesInFlight` of them open
 * at once (client/browser/batch.ts), and `BATCH_QUEUE_AHEAD` times that many are handed over so
 * the next OPENs are ready when streams free up. Bigger files, `transport="http"` and a
 * `limitRate` take the per-file route, `concurrency` at a time, each with its own connection and
 * resume record. The two routes have separate slots, so a big file never waits behind a folder.
 *
 * Scale: a dropped folder may hold 100k files, so no work per event is O(files). Items are found
 * by id through a map, the files ready to start wait in an insertion-ordered set, counts per
 * status (whole queue and per group) change by one on each transition, and re-renders asked for
 * by upload events are coalesced to one per animation frame. Only user actions on a whole group
 * (pause, cancel, retry failed, start all) walk its files.
 */
import type { ReactiveController, ReactiveControllerHost } from 'lit';
import type { BatchFileOptions } from '../browser/batch.js';
import { BATCH_DEFAULTS } from '../core/batch-uploader.js';
import { nextTask } from './next-task.js';
import {
  createUploader as createBrowserUploader,
  isTransportChoice,
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

/**
 * Files shown together as one row: the files of one dropped or picked folder, or a large loose
 * multi-select (more than `groupThreshold` files at once). Its counts and byte totals are kept
 * incrementally by the controller; read them, do not write them.
 */
export interface UploadGroup {
  readonly id: string;
  /** 'folder': files with a relative path under one top folder; 'files': a large loose selection. */
  readonly kind: 'folder' | 'files';
  /** The folder's name ('' for a loose selection). */
  readonly name: string;
  /** The group's files, in the order added. */
  readonly members: UploadItem[];
  /** How many members are in each status. */
  readonly counts: Record<ItemStatus, number>;
  /** Members in a slot (hashing, connecting, uploading, retrying, completing). */
  active: number;
  /** Sum of the members' sizes. */
  bytesTotal: number;
  /** Sum of the members' acknowledged bytes. */
  bytesAcked: number;
  /** Failed members in the order they failed (what "failed only" lists). */
  readonly failed: Set<UploadItem>;
}

/** A row of the top-level list: one loose file or one group. */
export type UploadRow = UploadItem | UploadGroup;

export function isGroup(row: UploadRow): row is UploadGroup {
  return 'members' in row;
}

/** One word for a group, derived from its counts (O(1)). */
export type GroupStatus = 'queued' | 'uploading' | 'paused' | 'failed' | 'cancelled' | 'done';

export function groupStatus(group: UploadGroup): GroupStatus {
  const c = group.counts;
  if (group.active > 0) return 'uploading';
  if (c.queued > 0) return 'queued';
  if (c.paused > 0) return 'paused';
  if (c.failed > 0) return 'failed';
  if (c.cancelled > 0) return 'cancelled';
  return 'done';
}

/** Members not yet finished one way or another (what cancel acts on). */
export function groupUnfinished(group: UploadGroup): number {
  const c = group.counts;
  return group.active + c.queued + c.paused + c.failed;
}

/** Default of `groupThreshold`: loose selections of more files than this become one row. */
export const DEFAULT_GROUP_THRESHOLD = 50;

/** Default of `filesInFlight`: files open at once on the shared connection of small files. */
export const DEFAULT_FILES_IN_FLIGHT = BATCH_DEFAULTS.maxFilesInFlight;

/**
 * Default of `batchMaxFileSize`: files up to one default chunk (4 MiB) share a connection. Such a
 * file is one DATA message, so the per-file route's resume (by acked chunk) saves nothing over
 * sending it again, while its connection and round trips per file cost more than its bytes
 * (docs/measurements.md, "Small files in the component" and "The route rule").
 */
export const DEFAULT_BATCH_MAX_FILE_SIZE = BATCH_DEFAULTS.chunkSize;

/**
 * Files of one pick whose size is read at once; the rest are sized this many per task after it, the
 * first ones uploading meanwhile. Reading 2000 sizes at once held the page's main thread for about
 * 0.45 s in Chromium before the first byte went out (docs/measurements.md).
 */
export const SIZED_AT_ONCE = 128;

/** Batched files handed to the uploader per file in flight (see the module comment). */
export const BATCH_QUEUE_AHEAD = 4;

export interface UploadItem {
  readonly id: string;
  /** The folder or large selection this file is shown in; undefined for a loose file row. */
  readonly group: UploadGroup | undefined;
  readonly file: File;
  /** Name shown: the path inside a dropped folder, else the file name. */
  readonly displayName: string;
  /** 0 until `sized`. */
  size: number;
  /**
   * Whether the size was read: past the first SIZED_AT_ONCE files of one pick, sizes are read a
   * slice per task (Chromium reads each File's metadata with a synchronous call of about 0.2 ms),
   * and only a sized file is started.
   */
  sized: boolean;
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
  /** The server already held the file: it completed without being sent (instant upload). */
  instant: boolean;
  uploadId: string;
  digest: string;
  /** The user asked for this row to run (auto-start, "Start upload", resume, retry). */
  startRequested: boolean;
  uploader: Uploader | undefined;
  /** Uploaded over the shared connection of small files (decided when sized). */
  batched: boolean;
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
  /** 'auto', 'websocket' or 'http' (client/browser/transports.ts); anything else is 'auto'. */
  readonly transport?: string;
  /** Loose files added at once beyond this many are shown as one group row. Default 50. */
  readonly groupThreshold?: number;
  /** Small files open at once on their shared connection. Default `DEFAULT_FILES_IN_FLIGHT`. */
  readonly filesInFlight?: number;
  /** Files up to this size are batched. Default `DEFAULT_BATCH_MAX_FILE_SIZE`; 0 batches none. */
  readonly batchMaxFileSize?: number;
}

export type UploaderFactory = (options: BrowserUploaderOptions) => Uploader;
/** Makes the uploader of a batched file (client/browser/batch.ts, or its worker-hosted twin). */
export type BatchFactory = (options: BatchFileOptions) => Uploader;

let nextId = 1;
let nextGroupId = 1;

function emptyCounts(): Record<ItemStatus, number> {
  const counts = {} as Record<ItemStatus, number>;
  for (const status of Object.values(ItemStatus)) counts[status] = 0;
  return counts;
}

/** Fallback frame length where requestAnimationFrame is missing (workers, Node tests), ms. */
const FRAME_MS = 16;

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
  /** Every file row, in the order added (also the members of groups). */
  items: UploadItem[] = [];
  /** The top-level list the element renders: loose files and groups, in the order added. */
  rows: UploadRow[] = [];
  /** Remembered handles of unfinished uploads from earlier visits (one-click resume). */
  unfinished: SavedHandle[] = [];
  /** How many items are in each status (the whole queue). */
  readonly counts: Record<ItemStatus, number> = emptyCounts();
  private readonly byId = new Map<string, UploadItem>();
  private readonly groupsById = new Map<string, UploadGroup>();
  /** Queued per-file items the user asked to run, oldest first: the next to start is the first one. */
  private readonly ready = new Set<UploadItem>();
  /** The same for batched items (they have their own slots). */
  private readonly readyBatched = new Set<UploadItem>();
  /** Items holding a slot. */
  private activeCount = 0;
  /** Batched items among them. */
  private activeBatched = 0;
  /** Queued items waiting for "Start upload" (auto-start off). */
  private waitingCount = 0;
  private pumping = false;
  private renderPending = false;
  private readonly handles = new HandleStore();
  private readonly wakeLock = new WakeLock();
  private tick: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly host: UploadHost,
    private readonly factory: UploaderFactory = createBrowserUploader,
    /** Without one, every file takes the per-file route. */
    private readonly batchFactory?: BatchFactory,
  ) {
    host.addController(this);
  }

  get endpoint(): string {
    return this.host.endpoint || defaultEndpoint();
  }

  /** True while some upload holds a slot: the wake lock follows this. */
  get busy(): boolean {
    return this.activeCount > 0;
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

  /** The file row with this id (O(1)). */
  item(id: string): UploadItem | undefined {
    return this.byId.get(id);
  }

  /** The group with this id (O(1)). */
  group(id: string): UploadGroup | undefined {
    return this.groupsById.get(id);
  }

  // -------------------------------------------------------------------------------------------
  // Adding files

  /**
   * Add files to the queue. Files refused by `accept`/`maxFileSize` get a row that says why.
   * Files with a path (from a folder) are grouped by their top folder; loose files beyond
   * `groupThreshold` in one call become one "N files" group.
   */
  add(
    files: Iterable<File>,
    options: { paths?: Map<File, string>; handles?: Map<File, FileHandleLike> } = {},
  ): UploadItem[] {
    const list = Array.from(files);
    const folders = new Map<string, UploadGroup>();
    const threshold = this.host.groupThreshold ?? DEFAULT_GROUP_THRESHOLD;
    const looseCount = list.reduce((n, f) => (options.paths?.get(f)?.includes('/') ? n : n + 1), 0);
    let loose: UploadGroup | undefined;
    const added: UploadItem[] = [];
    // The batch speaks WebSocket only and has no rate limit: those settings take the per-file route.
    const batchMax =
      this.batchFactory && this.host.transport !== 'http' && !(this.host.limitRate > 0)
        ? (this.host.batchMaxFileSize ?? DEFAULT_BATCH_MAX_FILE_SIZE)
        : -1;
    const later: UploadItem[] = [];
    for (const [index, file] of list.entries()) {
      const sizedNow = index < SIZED_AT_ONCE;
      const path = options.paths?.get(file);
      const slash = path?.indexOf('/') ?? -1;
      let group: UploadGroup | undefined;
      if (path && slash > 0) {
        const top = path.slice(0, slash);
        group = folders.get(top);
        if (!group) {
          group = this.newGroup('folder', top);
          folders.set(top, group);
        }
      } else if (looseCount > threshold) {
        loose ??= this.newGroup('files', '');
        group = loose;
      }
      const size = sizedNow ? file.size : 0;
      const refusal =
        this.host.maxFileSize > 0 && size > this.host.maxFileSize
          ? 'too-large'
          : !accepts(this.host.accept, file)
            ? 'type'
            : undefined;
      const item: UploadItem = {
        id: `f${nextId++}`,
        group,
        file,
        displayName: path ?? file.name,
        size,
        sized: sizedNow,
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
        instant: false,
        uploadId: '',
        digest: '',
        startRequested: this.host.autoStart,
        uploader: undefined,
        handleKey: undefined,
        announced: false,
        batched: sizedNow && size <= batchMax,
      };
      this.items.push(item);
      this.byId.set(item.id, item);
      if (group) {
        group.members.push(item);
        group.bytesTotal += item.size;
      } else {
        this.rows.push(item);
      }
      this.count(item, item.status, 1);
      this.track(item);
      added.push(item);
      if (!sizedNow && !refusal) later.push(item);
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
    this.changed(true);
    if (later.length > 0) void this.sizeLater(later, batchMax);
    return added;
  }

  /** Read the sizes of `items` a slice per task (see SIZED_AT_ONCE), each sized file then ready. */
  private async sizeLater(items: UploadItem[], batchMax: number): Promise<void> {
    for (let at = 0; at < items.length; at += SIZED_AT_ONCE) {
      await nextTask();
      for (const item of items.slice(at, at + SIZED_AT_ONCE)) {
        if (this.byId.get(item.id) !== item) continue; // removed meanwhile
        const size = item.file.size;
        item.size = size;
        item.sized = true;
        if (item.group) item.group.bytesTotal += size;
        const tooLarge = this.host.maxFileSize > 0 && size > this.host.maxFileSize;
        if (tooLarge && (item.status === 'queued' || item.status === 'paused')) {
          item.refusal = 'too-large';
          this.setStatus(item, 'refused');
          this.emit('upload-refused', { name: item.displayName, size, reason: 'too-large' });
          continue;
        }
        // Not started yet (only sized files are), so no active count depends on the route.
        item.batched = size <= batchMax;
        this.updateReady(item);
      }
      this.changed(true);
    }
  }

  private newGroup(kind: UploadGroup['kind'], name: string): UploadGroup {
    const group: UploadGroup = {
      id: `g${nextGroupId++}`,
      kind,
      name,
      members: [],
      counts: emptyCounts(),
      active: 0,
      bytesTotal: 0,
      bytesAcked: 0,
      failed: new Set(),
    };
    this.groupsById.set(group.id, group);
    this.rows.push(group);
    return group;
  }

  // -------------------------------------------------------------------------------------------
  // User actions

  /** Start every queued row (the "Start upload" button when auto-start is off). */
  startAll(): void {
    // Also called when `concurrency` grew: changed() fills the new slots.
    if (this.waitingCount > 0)
      for (const item of this.items)
        if (item.status === 'queued') this.setStatus(item, 'queued', true);
    this.changed(true);
  }

  get hasWaiting(): boolean {
    return this.waitingCount > 0;
  }

  pause(id: string): void {
    const item = this.byId.get(id);
    if (!item) return;
    this.pauseItem(item);
    this.changed(true);
  }

  resume(id: string): void {
    const item = this.byId.get(id);
    if (!item || item.status !== 'paused') return;
    this.setStatus(item, 'queued', true);
    this.changed(true);
  }

  retry(id: string): void {
    const item = this.byId.get(id);
    if (!item) return;
    this.retryItem(item);
    this.changed(true);
  }

  async cancel(id: string): Promise<void> {
    const item = this.byId.get(id);
    if (!item) return;
    const cancelled = this.cancelItem(item);
    if (!cancelled) return;
    this.changed(true);
    // The core goes silent after cancel() and tells the server to delete the upload.
    if (cancelled.uploader) await cancelled.uploader.cancel();
    this.changed(true);
  }

  remove(id: string): void {
    const item = this.byId.get(id);
    if (!item || ACTIVE.has(item.status)) return;
    if (item.status === 'paused') void this.cancel(id);
    this.forget(item);
    this.items = this.items.filter((i) => i !== item);
    const group = item.group;
    if (group) {
      const at = group.members.indexOf(item);
      if (at >= 0) group.members.splice(at, 1);
      group.bytesTotal -= item.size;
      if (group.members.length === 0) this.dropGroup(group);
    } else {
      this.rows = this.rows.filter((r) => r !== item);
    }
    this.changed(true);
  }

  /** Pause every running or queued file of a group. */
  pauseGroup(id: string): void {
    const group = this.groupsById.get(id);
    if (!group) return;
    // Queued files first, so the slots the running ones free do not go to their siblings.
    for (const item of group.members) if (item.status === 'queued') this.pauseItem(item);
    for (const item of group.members) if (ACTIVE.has(item.status)) this.pauseItem(item);
    this.changed(true);
  }

  /** Queue every paused file of a group again. */
  resumeGroup(id: string): void {
    const group = this.groupsById.get(id);
    if (!group || group.counts.paused === 0) return;
    for (const item of group.members)
      if (item.status === 'paused') this.setStatus(item, 'queued', true);
    this.changed(true);
  }

  /** Retry the failed files of a group. */
  retryFailed(id: string): void {
    const group = this.groupsById.get(id);
    if (!group) return;
    for (const item of [...group.failed]) this.retryItem(item);
    this.changed(true);
  }

  /** Cancel every unfinished file of a group (the server deletes their partial uploads). */
  async cancelGroup(id: string): Promise<void> {
    const group = this.groupsById.get(id);
    if (!group) return;
    const uploaders: Uploader[] = [];
    for (const item of group.members) {
      const uploader = this.cancelItem(item)?.uploader;
      if (uploader) uploaders.push(uploader);
    }
    this.changed(true);
    await Promise.all(uploaders.map((u) => u.cancel()));
    this.changed(true);
  }

  /** Remove a group whose files are all finished (done, cancelled, refused or failed). */
  removeGroup(id: string): void {
    const group = this.groupsById.get(id);
    if (!group || group.active + group.counts.queued + group.counts.paused > 0) return;
    const gone = new Set(group.members);
    for (const item of group.members) this.forget(item);
    this.items = this.items.filter((i) => !gone.has(i));
    this.dropGroup(group);
    this.changed(true);
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
    if (item && item.status === 'queued') this.setStatus(item, 'queued', true);
    this.changed(true);
  }

  async forgetSaved(key: string): Promise<void> {
    this.unfinished = this.unfinished.filter((u) => u.key !== key);
    await this.handles.remove(key);
    this.host.requestUpdate();
  }

  // -------------------------------------------------------------------------------------------
  // One item (no re-render: callers call changed() once)

  private pauseItem(item: UploadItem): void {
    if (item.status === 'queued') {
      this.setStatus(item, 'paused', false);
      return;
    }
    if (ACTIVE.has(item.status)) void item.uploader?.pause();
  }

  private retryItem(item: UploadItem): void {
    if (item.status !== 'failed' && item.status !== 'cancelled') return;
    if (item.status === 'cancelled') {
      item.uploader = undefined; // cancelled uploads are gone on the server: start fresh
      this.setAcked(item, 0);
      item.bytesSent = 0;
    } else if (item.error?.code === ClientErrors.WORKER_LOST.code) {
      item.uploader = undefined; // a new uploader (in the page) resumes from the resume record
    }
    item.error = undefined;
    item.announced = false;
    this.setStatus(item, 'queued', true);
  }

  /** Mark cancelled; says which uploader to cancel, undefined when there was nothing to cancel. */
  private cancelItem(item: UploadItem): { uploader: Uploader | undefined } | undefined {
    if (item.status === 'done' || item.status === 'cancelled' || item.status === 'refused')
      return undefined;
    const uploader = item.uploader;
    this.setStatus(item, 'cancelled');
    item.rate = 0;
    item.eta = null;
    this.forgetHandle(item);
    return { uploader };
  }

  private forget(item: UploadItem): void {
    this.count(item, item.status, -1);
    this.ready.delete(item);
    this.readyBatched.delete(item);
    if (item.status === 'queued' && !item.startRequested) this.waitingCount--;
    this.byId.delete(item.id);
  }

  private dropGroup(group: UploadGroup): void {
    this.groupsById.delete(group.id);
    this.rows = this.rows.filter((r) => r !== group);
  }

  // -------------------------------------------------------------------------------------------
  // Bookkeeping: every status change goes through setStatus, so the counts stay exact

  private setStatus(
    item: UploadItem,
    status: ItemStatus,
    startRequested: boolean = item.startRequested,
  ): void {
    if (this.byId.get(item.id) !== item) {
      // Removed from the list (a late event of its uploader): nothing is counted for it any more.
      item.status = status;
      item.startRequested = startRequested;
      return;
    }
    if (item.status === 'queued' && !item.startRequested) this.waitingCount--;
    if (item.status !== status) {
      this.count(item, item.status, -1);
      item.status = status;
      this.count(item, status, 1);
    }
    item.startRequested = startRequested;
    this.track(item);
  }

  /** Waiting count and ready set for the item's current status (after counting it in). */
  private track(item: UploadItem): void {
    if (item.status === 'queued' && !item.startRequested) this.waitingCount++;
    this.updateReady(item);
  }

  /** In the ready set of its route when queued, asked to start and sized; in neither otherwise. */
  private updateReady(item: UploadItem): void {
    this.ready.delete(item);
    this.readyBatched.delete(item);
    if (item.sized && item.status === 'queued' && item.startRequested)
      (item.batched ? this.readyBatched : this.ready).add(item);
  }

  private count(item: UploadItem, status: ItemStatus, delta: 1 | -1): void {
    this.counts[status] += delta;
    const active = ACTIVE.has(status);
    if (active) this.activeCount += delta;
    if (active && item.batched) this.activeBatched += delta;
    const group = item.group;
    if (!group) return;
    group.counts[status] += delta;
    if (active) group.active += delta;
    if (status === 'failed') {
      if (delta > 0) group.failed.add(item);
      else group.failed.delete(item);
    }
  }

  private setAcked(item: UploadItem, bytes: number): void {
    if (item.group && this.byId.get(item.id) === item)
      item.group.bytesAcked += bytes - item.bytesAcked;
    item.bytesAcked = bytes;
  }

  // -------------------------------------------------------------------------------------------
  // Queue

  /**
   * Something changed: start what the concurrency limit allows, update helpers, re-render.
   * `now` re-renders at once (user actions); upload events wait for the next frame.
   */
  private changed(now = false): void {
    this.pump();
    this.wakeLock.set(this.activeCount > 0);
    this.setTicking(this.counts.retrying > 0);
    if (now) this.host.requestUpdate();
    else this.requestRender();
  }

  /** Start ready items while slots are free: O(started). */
  private pump(): void {
    // Starting an uploader emits 'state' synchronously, which re-enters changed(): the outer loop
    // sees the new counts, so the inner call has nothing to do.
    if (this.pumping) return;
    this.pumping = true;
    try {
      const limit = Math.max(1, Math.floor(this.host.concurrency) || 1);
      while (this.activeCount - this.activeBatched < limit) {
        const next = this.ready.values().next();
        if (next.done) break;
        this.run(next.value);
      }
      const batchLimit = this.filesInFlight * BATCH_QUEUE_AHEAD;
      while (this.activeBatched < batchLimit) {
        const next = this.readyBatched.values().next();
        if (next.done) break;
        this.run(next.value);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** One host update per animation frame for however many upload events arrive in it. */
  private requestRender(): void {
    if (this.renderPending) return;
    this.renderPending = true;
    const flush = (): void => {
      this.renderPending = false;
      this.host.requestUpdate();
    };
    if (typeof requestAnimationFrame === 'function') requestAnimationFrame(flush);
    else setTimeout(flush, FRAME_MS);
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
    this.setStatus(item, item.announced ? 'connecting' : 'hashing');
    void item.uploader.start().then(() => this.changed());
  }

  private get filesInFlight(): number {
    const n = Math.floor(this.host.filesInFlight ?? DEFAULT_FILES_IN_FLIGHT);
    return n >= 1 ? n : DEFAULT_FILES_IN_FLIGHT;
  }

  private createUploader(item: UploadItem): Uploader {
    const host = this.host;
    const transport = isTransportChoice(host.transport) ? host.transport : 'auto';
    const common = {
      endpoint: this.endpoint,
      file: item.file,
      ...(host.chunkSize > 0 ? { chunkSize: host.chunkSize } : {}),
      ...(host.window > 0 ? { maxInFlightBytes: host.window } : {}),
      ...(host.token ? { token: host.token } : {}),
      ...(item.displayName !== item.file.name
        ? { metadata: { relativePath: item.displayName } }
        : {}),
    };
    // Settings changed since the file was added may send it the per-file route after all.
    const uploader =
      item.batched && this.batchFactory && transport !== 'http' && !(host.limitRate > 0)
        ? this.batchFactory({ ...common, filesInFlight: this.filesInFlight, transport })
        : this.factory({
            ...common,
            ...(host.limitRate > 0 ? { limitRate: host.limitRate } : {}),
            transport,
          });
    uploader.on('state', ({ state, retryInMs }) => this.onState(item, uploader, state, retryInMs));
    uploader.on('start', (e) => {
      if (item.uploader !== uploader) return;
      item.uploadId = e.uploadId;
      this.setAcked(item, e.resumedBytes);
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
      this.requestRender();
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
      this.requestRender();
    });
    uploader.on('progress', (p) => {
      if (item.uploader !== uploader) return;
      this.setAcked(item, p.bytesAcked);
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
      this.requestRender();
    });
    uploader.on('complete', (c) => {
      if (item.uploader !== uploader) return;
      item.instant = c.instant === true;
      this.setStatus(item, 'done');
      item.digest = c.digest;
      this.setAcked(item, item.size);
      item.rate = 0;
      item.eta = 0;
      this.forgetHandle(item);
      // Nothing acts on a finished upload again; an uploader keeps its chunk buffers alive.
      item.uploader = undefined;
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
        this.setStatus(item, item.announced ? 'connecting' : 'hashing');
        break;
      case 'uploading':
      case 'completing':
      case 'paused':
        this.setStatus(item, state);
        if (state === 'paused') {
          item.rate = 0;
          item.eta = null;
        }
        break;
      case 'retrying':
        this.setStatus(item, 'retrying');
        item.retryAt = Date.now() + (retryInMs ?? 0);
        break;
      default:
        return; // done/failed/cancelled come with their own events
    }
    this.changed();
  }

  private fail(item: UploadItem, error: UploadErrorInfo): void {
    this.setStatus(item, 'failed');
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
