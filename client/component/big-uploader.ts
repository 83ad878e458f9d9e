/**
 * <big-uploader>: upload files of any size over bigup.1, surviving reloads and network faults.
 * This module only declares the class; `define.ts` registers the tag. All upload behaviour lives
 * in UploadController (controller.ts); this class renders its state and forwards user input.
 */
import { LitElement, html, nothing, type PropertyValues, type TemplateResult } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import { styleMap } from 'lit/directives/style-map.js';
import {
  DEFAULT_BATCH_MAX_FILE_SIZE,
  DEFAULT_FILES_IN_FLIGHT,
  DEFAULT_GROUP_THRESHOLD,
  UploadController,
  groupStatus,
  groupUnfinished,
  isGroup,
  type UploadGroup,
  type UploadItem,
} from './controller.js';
import { collectDrop } from './files.js';
import {
  formatBytes,
  formatCount,
  formatDuration,
  resolveLocale,
  stringsFor,
  type Locale,
  type Strings,
} from './i18n.js';
import { canPickHandles, pickHandles, type FileHandleLike } from './platform.js';
import { styles } from './styles.js';
import { workerBatchUploaderFactory, workerUploaderFactory } from './worker-uploader.js';

/**
 * Upload huge files with resume, over a binary WebSocket protocol (bigup.1).
 *
 * @summary File picker, drop zone and per-file progress rows; one core Uploader per file.
 *
 * A dropped or picked folder is one row (files and bytes done, failures, folder-level actions),
 * and so is a loose selection of more than `group-threshold` files; expanding it lists its files
 * a page (`rows-per-page`) at a time, so the page holds a bounded number of rows for any folder.
 *
 * @event upload-start - `{ id, uploadId, name, size, resumedBytes }`, once per file when the server accepts it.
 * @event upload-progress - `{ id, uploadId, name, size, bytesAcked, bytesSent, rate, eta }`, at most every 100 ms per file.
 * @event upload-complete - `{ id, uploadId, name, size, digest }` when the server stored the whole file.
 * @event upload-error - `{ id, uploadId, name, code, message, retryable }` when an upload failed for good (reconnects are not errors).
 * @event upload-refused - `{ name, size, reason }` for a file refused by `accept` or `max-file-size` (nothing uploaded).
 *
 * @csspart dropzone - The drag-and-drop area with the pick buttons.
 * @csspart button - Every button.
 * @csspart pick-button - The "Choose files" button.
 * @csspart list - The list of file rows.
 * @csspart item - One file row.
 * @csspart name - File name in a row.
 * @csspart size - File size in a row.
 * @csspart progress - The progress track (role=progressbar).
 * @csspart progress-acked - The bar of bytes the server acknowledged.
 * @csspart progress-sent - The thin mark of bytes sent but not yet acknowledged.
 * @csspart status - The state text of a row.
 * @csspart message - Notes under a row ("Resuming at 43%", refusals, errors).
 * @csspart group - One folder row (or "N files" row of a large selection); holds its file rows when expanded.
 * @csspart expand-button - The "Show files" / "Hide files" toggle of a group (aria-expanded).
 * @csspart files-count - "1,234 of 10,000 files" in a group row.
 * @csspart bytes-count - "1.50 MiB of 2.00 GiB" in a group row.
 * @csspart failures - "3 failed" in a group row (only when some failed).
 * @csspart refused-count - "2 not uploaded" in a group row (files refused by accept or max-file-size).
 * @csspart retry-failed-button - Retries the failed files of a group.
 * @csspart group-list - The list of a group's file rows (one page of them).
 * @csspart pager - The page controls under an expanded group (range text, previous/next, filter).
 * @csspart page-button - The "Previous" and "Next" buttons of a pager.
 * @csspart filter-button - The "Failed only" toggle of a pager (aria-pressed).
 *
 * @cssproperty --big-uploader-background - Background. Default white / #0d1117 (dark).
 * @cssproperty --big-uploader-color - Text color.
 * @cssproperty --big-uploader-muted-color - Secondary text (sizes, rates).
 * @cssproperty --big-uploader-border-color - Borders of the drop zone and rows.
 * @cssproperty --big-uploader-accent-color - Buttons, focus ring and the progress bar.
 * @cssproperty --big-uploader-on-accent-color - Text on accent-colored buttons.
 * @cssproperty --big-uploader-track-color - Progress track.
 * @cssproperty --big-uploader-sent-color - The bytes-sent mark.
 * @cssproperty --big-uploader-success-color - Finished rows.
 * @cssproperty --big-uploader-error-color - Failed and refused rows.
 * @cssproperty --big-uploader-drop-background - Drop zone background.
 * @cssproperty --big-uploader-radius - Corner radius.
 * @cssproperty --big-uploader-bar-height - Progress bar height.
 * @cssproperty --big-uploader-font - Font shorthand.
 */
/** Default of `rowsPerPage`. */
export const DEFAULT_ROWS_PER_PAGE = 100;
/** Most file rows one expanded group lists, whatever `rowsPerPage` says. */
export const MAX_ROWS_PER_PAGE = 200;

export class BigUploaderElement extends LitElement {
  static override styles = styles;

  static override properties = {
    endpoint: { type: String },
    chunkSize: { type: Number, attribute: 'chunk-size' },
    window: { type: Number },
    token: { type: String },
    accept: { type: String },
    maxFileSize: { type: Number, attribute: 'max-file-size' },
    multiple: { type: Boolean },
    autoStart: { type: Boolean, attribute: 'auto-start' },
    concurrency: { type: Number },
    limitRate: { type: Number, attribute: 'limit-rate' },
    transport: { type: String },
    language: { type: String },
    groupThreshold: { type: Number, attribute: 'group-threshold' },
    rowsPerPage: { type: Number, attribute: 'rows-per-page' },
    filesInFlight: { type: Number, attribute: 'files-in-flight' },
    batchMaxFileSize: { type: Number, attribute: 'batch-max-file-size' },
    dragging: { state: true },
    expandedGroup: { state: true },
  };

  /** The `lang` attribute is the element's native one; observe it too so it can pick the language. */
  static override get observedAttributes(): string[] {
    return [...super.observedAttributes, 'lang'];
  }

  /** WebSocket URL of the upload endpoint. Default: ws(s)://<this page's host>/upload. */
  declare endpoint: string;
  /**
   * Proposed chunk size in bytes (the server decides); 0 = the client's default (DEFAULTS.chunkSize,
   * or HTTP_CHUNK_SIZE over the HTTP binding).
   */
  declare chunkSize: number;
  /** Most unacknowledged bytes in flight per file; 0 = the client core default (DEFAULTS.maxInFlightBytes). */
  declare window: number;
  /** Server token, sent as the `token` query parameter of the WebSocket URL. */
  declare token: string;
  /** Accepted types, as for <input accept>: ".iso,video/*,application/zip". */
  declare accept: string;
  /** Largest file accepted, bytes; 0 = no limit here (the server has its own). */
  declare maxFileSize: number;
  /** Allow picking several files at once. */
  declare multiple: boolean;
  /** Start uploading as soon as files are added; otherwise a "Start upload" button appears. */
  declare autoStart: boolean;
  /** Files bigger than `batch-max-file-size` uploading at the same time, each over its own connection. Default 2. */
  declare concurrency: number;
  /**
   * Small files (at most `batch-max-file-size` bytes, e.g. a dropped folder's) share one bigup.2
   * connection, this many open on it at once (the server may grant fewer). Default 16.
   */
  declare filesInFlight: number;
  /**
   * Files up to this many bytes share one connection (pause restarts such a file, a reload finds
   * the ones already sent on the server); bigger ones get their own connection and resume record.
   * Default 4 MiB (one chunk); 0 gives every file its own connection.
   */
  declare batchMaxFileSize: number;
  /** Cap on the send rate of each file, bytes per second; 0 = unlimited. */
  declare limitRate: number;
  /**
   * How uploads travel: 'websocket' (bigup.1 over WebSocket), 'http' (the protocol's HTTP
   * binding: fetch PUT of each chunk) or 'auto' (default: WebSocket, falling back to HTTP when a
   * WebSocket cannot be opened).
   */
  declare transport: string;
  /** UI language ("en", "zh-CN"); overrides the `lang` attribute and navigator.language. */
  declare language: string;
  /** Loose files added at once beyond this many are shown as one "N files" row. Default 50. */
  declare groupThreshold: number;
  /** File rows listed per page of an expanded group; at most 200 (the DOM bound). Default 100. */
  declare rowsPerPage: number;
  declare private dragging: boolean;
  /** The one group whose files are listed ('' for none): one open group keeps the DOM bounded. */
  declare private expandedGroup: string;
  /** First row shown of each group's file list, and groups filtered to failed files. */
  private readonly pageStart = new Map<string, number>();
  private readonly failedOnly = new Set<string>();

  /** The upload state machine; public so pages can call pause/resume/cancel/retry by id. */
  readonly uploads: UploadController;

  constructor() {
    super();
    this.endpoint = '';
    this.chunkSize = 0;
    this.window = 0;
    this.token = '';
    this.accept = '';
    this.maxFileSize = 0;
    this.multiple = false;
    this.autoStart = false;
    this.concurrency = 2;
    this.limitRate = 0;
    this.transport = 'auto';
    this.language = '';
    this.groupThreshold = DEFAULT_GROUP_THRESHOLD;
    this.rowsPerPage = DEFAULT_ROWS_PER_PAGE;
    this.filesInFlight = DEFAULT_FILES_IN_FLIGHT;
    this.batchMaxFileSize = DEFAULT_BATCH_MAX_FILE_SIZE;
    this.dragging = false;
    this.expandedGroup = '';
    // Uploads run in a Web Worker so hashing and sending never block the page.
    this.uploads = new UploadController(this, workerUploaderFactory, workerBatchUploaderFactory);
  }

  override attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    super.attributeChangedCallback(name, old, value);
    if (name === 'lang') this.requestUpdate();
  }

  /** The language in use: `language` property, else `lang` attribute, else the browser's. */
  get locale(): Locale {
    return resolveLocale(
      this.language ||
        this.getAttribute('lang') ||
        (typeof navigator !== 'undefined' ? navigator.language : 'en'),
    );
  }

  /** Add files programmatically (same checks as picking them). */
  addFiles(files: Iterable<File>): void {
    this.uploads.add(files);
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    // The queue reads `concurrency` when it starts files; more slots may now be free.
    if (changed.has('concurrency') || changed.has('filesInFlight') || changed.has('autoStart')) {
      if (this.autoStart) this.uploads.startAll();
    }
    // Frameworks often set `endpoint` after the element is connected: offer the unfinished
    // uploads of the endpoint now in use, not of the one seen at connect time.
    if (changed.has('endpoint') && changed.get('endpoint') !== undefined)
      this.uploads.refreshUnfinished();
  }

  // -------------------------------------------------------------------------------------------
  // Input

  private get input(): HTMLInputElement | null {
    return this.renderRoot.querySelector<HTMLInputElement>('#file-input');
  }

  private async onPick(): Promise<void> {
    // File System Access picker where available (its handles allow one-click resume after a
    // reload); it has no `accept` string syntax, so with `accept` set the native input is used.
    if (canPickHandles() && !this.accept) {
      const picked = await pickHandles(this.multiple);
      if (!picked || picked.length === 0) return;
      const handles = new Map<File, FileHandleLike>();
      const files: File[] = [];
      for (const handle of picked) {
        const file = await handle.getFile();
        files.push(file);
        handles.set(file, handle);
      }
      this.uploads.add(files, { handles });
      return;
    }
    this.input?.click();
  }

  private onPickFolder(): void {
    this.renderRoot.querySelector<HTMLInputElement>('#folder-input')?.click();
  }

  private onInputChange(event: Event): void {
    const input = event.target as HTMLInputElement;
    const files = Array.from(input.files ?? []);
    const paths = new Map<File, string>();
    for (const f of files) if (f.webkitRelativePath) paths.set(f, f.webkitRelativePath);
    this.uploads.add(files, { paths });
    input.value = ''; // picking the same file again must fire `change` again
  }

  private onDragOver(event: DragEvent): void {
    if (!event.dataTransfer?.types.includes('Files')) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = 'copy';
    this.dragging = true;
  }

  private onDragLeave(event: DragEvent): void {
    // dragleave also fires when moving onto a child; only a leave to outside the zone counts.
    const to = event.relatedTarget as Node | null;
    if (!to || !(event.currentTarget as Node).contains(to)) this.dragging = false;
  }

  private onDrop(event: DragEvent): void {
    event.preventDefault();
    this.dragging = false;
    if (!event.dataTransfer) return;
    void collectDrop(event.dataTransfer).then(({ files, paths, handles }) => {
      const chosen = this.multiple ? files : files.slice(0, 1);
      this.uploads.add(chosen, { paths, handles });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Rendering

  protected override render(): TemplateResult {
    const t = stringsFor(this.locale);
    const c = this.uploads;
    return html`
      <div
        part="dropzone"
        class="dropzone ${this.dragging ? 'dragging' : ''}"
        @dragenter=${this.onDragOver}
        @dragover=${this.onDragOver}
        @dragleave=${this.onDragLeave}
        @drop=${this.onDrop}
      >
        <p class="hint">${this.dragging ? t.dropHere : t.dropHint}</p>
        <button type="button" part="button pick-button" class="primary" @click=${this.onPick}>
          ${t.pick}
        </button>
        ${this.multiple ? html`<button type="button" part="button" @click=${this.onPickFolder}>${t.pickFolder}</button>` : nothing}
        <input
          id="file-input"
          type="file"
          hidden
          ?multiple=${this.multiple}
          accept=${this.accept || nothing}
          @change=${this.onInputChange}
        />
        <input
          id="folder-input"
          type="file"
          hidden
          multiple
          webkitdirectory
          @change=${this.onInputChange}
        />
      </div>
      ${c.unfinished.length > 0 ? this.renderUnfinished(t) : nothing}
      ${
        c.hasWaiting
          ? html`<div class="toolbar">
              <button
                type="button"
                part="button start-button"
                class="primary"
                @click=${() => c.startAll()}
              >
                ${t.start}
              </button>
            </div>`
          : nothing
      }
      <ul part="list" aria-label=${t.filesLabel} ?hidden=${c.rows.length === 0}>
        ${repeat(
          c.rows,
          (r) => r.id,
          (r) => (isGroup(r) ? this.renderGroup(r, t) : this.renderItem(r, t)),
        )}
      </ul>
    `;
  }

  private renderUnfinished(t: Strings): TemplateResult {
    const locale = this.locale;
    return html`<section class="unfinished" part="unfinished">
      <h2>${t.unfinished}</h2>
      <ul>
        ${this.uploads.unfinished.map(
          (u) =>
            html`<li>
              <span class="name">${u.name}</span
              ><span class="size">${formatBytes(u.size, locale)}</span>
              <button
                type="button"
                part="button"
                class="primary"
                @click=${() => this.uploads.resumeSaved(u.key)}
              >
                ${t.resumeUnfinished(u.name)}
              </button>
              <button type="button" part="button" @click=${() => this.uploads.forgetSaved(u.key)}>
                ${t.forget}
              </button>
            </li>`,
        )}
      </ul>
    </section>`;
  }

  private statusText(item: UploadItem, t: Strings): string {
    switch (item.status) {
      case 'retrying':
        return t.retryingIn(
          Math.max(0, Math.ceil(((item.retryAt ?? Date.now()) - Date.now()) / 1000)),
        );
      case 'failed':
        return t.failed(item.error?.message ?? '');
      case 'refused':
        return item.refusal === 'too-large'
          ? t.refusedTooLarge(formatBytes(this.maxFileSize, this.locale))
          : t.refusedType(this.accept);
      default:
        return t[item.status];
    }
  }

  private renderItem(item: UploadItem, t: Strings): TemplateResult {
    const locale = this.locale;
    const size = item.size;
    const acked = size > 0 ? item.bytesAcked / size : item.status === 'done' ? 1 : 0;
    const sent =
      size > 0
        ? Math.min(
            1,
            Math.max(
              acked,
              (item.bytesAcked + Math.max(0, item.bytesSent - item.bytesAcked)) / size,
            ),
          )
        : acked;
    const percent = Math.floor(acked * 100);
    const s = item.status;
    const running =
      s === 'hashing' ||
      s === 'connecting' ||
      s === 'uploading' ||
      s === 'retrying' ||
      s === 'completing';
    const button = (label: string, action: () => void, part: string) =>
      html`<button
        type="button"
        part="button ${part}"
        aria-label=${t.actionsFor(label, item.displayName)}
        @click=${action}
      >
        ${label}
      </button>`;
    return html`<li part="item" class="item ${s}" data-id=${item.id} data-status=${s}>
      <div class="head">
        <span part="name" class="name" title=${item.displayName}>${item.displayName}</span>
        <span part="size" class="size">${formatBytes(size, locale)}</span>
      </div>
      ${
        s === 'refused'
          ? nothing
          : html`<div
              part="progress"
              class="progress"
              role="progressbar"
              aria-label=${t.progressLabel(item.displayName)}
              aria-valuemin="0"
              aria-valuemax="100"
              aria-valuenow=${percent}
              aria-valuetext=${t.progressText(percent, formatBytes(item.bytesAcked, locale), formatBytes(size, locale))}
            >
              <div
                part="progress-sent"
                class="sent"
                style=${styleMap({ transform: `scaleX(${sent.toFixed(4)})` })}
              ></div>
              <div
                part="progress-acked"
                class="acked"
                style=${styleMap({ transform: `scaleX(${acked.toFixed(4)})` })}
              ></div>
            </div>`
      }
      <div class="meta">
        ${s === 'refused' ? nothing : html`<span part="percent" class="percent">${percent}%</span>`}
        ${s === 'uploading' && item.rate > 0 ? html`<span part="rate" class="rate">${t.rate(formatBytes(item.rate, locale))}</span>` : nothing}
        ${s === 'uploading' && item.eta !== null && item.eta > 0 ? html`<span part="eta" class="eta">${t.eta(formatDuration(item.eta, locale))}</span>` : nothing}
        <span part="status" class="state" aria-live="polite">${this.statusText(item, t)}</span>
      </div>
      ${item.resumedPercent !== undefined && s !== 'done' ? html`<p part="message" class="note resumed">${t.resumingAt(item.resumedPercent)}</p>` : nothing}
      ${item.sourceChanged ? html`<p part="message" class="note source-changed">${t.sourceChanged}</p>` : nothing}
      ${item.changedPartsResent ? html`<p part="message" class="note changed-parts">${t.changedPartsResent}</p>` : nothing}
      ${item.instant && s === 'done' ? html`<p part="message" class="note instant">${t.alreadyOnServer}</p>` : nothing}
      <div class="actions">
        ${running ? button(t.pause, () => this.uploads.pause(item.id), 'pause-button') : nothing}
        ${s === 'queued' && item.startRequested ? button(t.pause, () => this.uploads.pause(item.id), 'pause-button') : nothing}
        ${s === 'paused' ? button(t.resume, () => this.uploads.resume(item.id), 'resume-button') : nothing}
        ${s === 'failed' || s === 'cancelled' ? button(t.retry, () => this.uploads.retry(item.id), 'retry-button') : nothing}
        ${running || s === 'queued' || s === 'paused' || s === 'failed' ? button(t.cancel, () => void this.uploads.cancel(item.id), 'cancel-button') : nothing}
        ${s === 'done' || s === 'cancelled' || s === 'refused' ? button(t.remove, () => this.uploads.remove(item.id), 'remove-button') : nothing}
      </div>
    </li>`;
  }

  private get pageSize(): number {
    return Math.min(MAX_ROWS_PER_PAGE, Math.max(1, Math.floor(this.rowsPerPage) || 1));
  }

  private toggleGroup(id: string): void {
    this.expandedGroup = this.expandedGroup === id ? '' : id;
  }

  private movePage(group: UploadGroup, by: number): void {
    this.pageStart.set(group.id, Math.max(0, (this.pageStart.get(group.id) ?? 0) + by));
    this.requestUpdate();
  }

  private toggleFailedOnly(group: UploadGroup): void {
    if (this.failedOnly.has(group.id)) this.failedOnly.delete(group.id);
    else this.failedOnly.add(group.id);
    this.pageStart.set(group.id, 0);
    this.requestUpdate();
  }

  private groupName(group: UploadGroup, t: Strings): string {
    return group.kind === 'folder'
      ? group.name
      : t.looseFiles(formatCount(group.members.length, this.locale));
  }

  private renderGroup(group: UploadGroup, t: Strings): TemplateResult {
    const locale = this.locale;
    const c = this.uploads;
    const name = this.groupName(group, t);
    const status = groupStatus(group);
    const total = group.members.length;
    const done = group.counts.done;
    const failed = group.counts.failed;
    const refused = group.counts.refused;
    // Bytes decide the bar; a group of empty files moves by files instead.
    const fraction =
      group.bytesTotal > 0
        ? group.bytesAcked / group.bytesTotal
        : total > 0
          ? done / Math.max(1, total - refused)
          : 0;
    const percent = Math.min(100, Math.floor(fraction * 100));
    const expanded = this.expandedGroup === group.id;
    const listId = `${group.id}-files`;
    const canPause = group.active > 0 || group.counts.queued > 0;
    const unfinished = groupUnfinished(group);
    const button = (label: string, action: () => void, part: string) =>
      html`<button
        type="button"
        part="button ${part}"
        aria-label=${t.actionsFor(label, name)}
        @click=${action}
      >
        ${label}
      </button>`;
    return html`<li
      part="group"
      class="group ${status}"
      data-id=${group.id}
      data-kind=${group.kind}
      data-status=${status}
    >
      <div class="head">
        <span part="name" class="name" title=${name}>${name}</span>
        <span part="size" class="size">${formatBytes(group.bytesTotal, locale)}</span>
      </div>
      <div
        part="progress"
        class="progress"
        role="progressbar"
        aria-label=${t.progressLabel(name)}
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow=${percent}
        aria-valuetext=${t.progressText(percent, formatBytes(group.bytesAcked, locale), formatBytes(group.bytesTotal, locale))}
      >
        <div
          part="progress-acked"
          class="acked"
          style=${styleMap({ width: `${(fraction * 100).toFixed(2)}%` })}
        ></div>
      </div>
      <div class="meta">
        <span part="files-count" class="files-count" data-done=${done} data-total=${total}
          >${t.filesDone(formatCount(done, locale), formatCount(total, locale))}</span
        >
        <span part="bytes-count" class="bytes-count"
          >${t.bytesDone(formatBytes(group.bytesAcked, locale), formatBytes(group.bytesTotal, locale))}</span
        >
        ${failed > 0 ? html`<span part="failures" class="failures" data-failed=${failed}>${t.failures(formatCount(failed, locale))}</span>` : nothing}
        ${refused > 0 ? html`<span part="refused-count" class="refused-count">${t.refusedCount(formatCount(refused, locale))}</span>` : nothing}
        <span part="status" class="state" aria-live="polite"
          >${status === 'failed' ? t.someFailed : t[status]}</span
        >
      </div>
      <div class="actions">
        <button
          type="button"
          part="button expand-button"
          aria-expanded=${expanded ? 'true' : 'false'}
          aria-controls=${listId}
          aria-label=${t.actionsFor(expanded ? t.hideFiles : t.showFiles, name)}
          @click=${() => this.toggleGroup(group.id)}
        >
          ${expanded ? t.hideFiles : t.showFiles}
        </button>
        ${canPause ? button(t.pause, () => c.pauseGroup(group.id), 'pause-button') : nothing}
        ${group.counts.paused > 0 ? button(t.resume, () => c.resumeGroup(group.id), 'resume-button') : nothing}
        ${failed > 0 ? button(t.retryFailed, () => c.retryFailed(group.id), 'retry-failed-button') : nothing}
        ${unfinished > 0 ? button(t.cancel, () => void c.cancelGroup(group.id), 'cancel-button') : nothing}
        ${group.active + group.counts.queued + group.counts.paused === 0 ? button(t.remove, () => c.removeGroup(group.id), 'remove-button') : nothing}
      </div>
      ${expanded ? this.renderGroupFiles(group, name, t) : nothing}
    </li>`;
  }

  /** One page of a group's file rows (all of them, or the failed ones), with page controls. */
  private renderGroupFiles(group: UploadGroup, name: string, t: Strings): TemplateResult {
    const locale = this.locale;
    const size = this.pageSize;
    const failedOnly = this.failedOnly.has(group.id) && group.counts.failed > 0;
    const total = failedOnly ? group.counts.failed : group.members.length;
    const lastStart = total > 0 ? Math.floor((total - 1) / size) * size : 0;
    const start = Math.min(this.pageStart.get(group.id) ?? 0, lastStart);
    let shown: UploadItem[];
    if (failedOnly) {
      shown = [];
      let at = 0;
      for (const item of group.failed) {
        if (at++ < start) continue;
        shown.push(item);
        if (shown.length === size) break;
      }
    } else {
      shown = group.members.slice(start, start + size);
    }
    const pageButton = (label: string, disabled: boolean, by: number) =>
      html`<button
        type="button"
        part="button page-button"
        aria-label=${t.actionsFor(label, name)}
        ?disabled=${disabled}
        @click=${() => this.movePage(group, by)}
      >
        ${label}
      </button>`;
    return html`<div class="group-files" id=${`${group.id}-files`}>
      <div part="pager" class="pager">
        <span class="range"
          >${t.pageRange(formatCount(total === 0 ? 0 : start + 1, locale), formatCount(start + shown.length, locale), formatCount(total, locale))}</span
        >
        ${pageButton(t.previousPage, start === 0, -size)}
        ${pageButton(t.nextPage, start + size >= total, size)}
        ${
          group.counts.failed > 0
            ? html`<button
                type="button"
                part="button filter-button"
                aria-pressed=${failedOnly ? 'true' : 'false'}
                @click=${() => this.toggleFailedOnly(group)}
              >
                ${t.failedOnly}
              </button>`
            : nothing
        }
      </div>
      <ul part="group-list" class="group-list" aria-label=${t.groupFilesLabel(name)}>
        ${repeat(
          shown,
          (i) => i.id,
          (i) => this.renderItem(i, t),
        )}
      </ul>
    </div>`;
  }
}
