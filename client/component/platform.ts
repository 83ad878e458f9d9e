/**
 * Browser features the component uses only where they exist: File System Access handles (kept in
 * IndexedDB so a reloaded page can offer one-click resume) and the Screen Wake Lock. TypeScript's
 * DOM library does not declare all of these yet, so the few members used are typed here; every
 * call is feature-detected and failures degrade to "feature absent".
 */

/** The parts of FileSystemFileHandle we use (permission methods are not in lib.dom yet). */
export interface FileHandleLike {
  readonly kind: 'file' | 'directory';
  readonly name: string;
  getFile(): Promise<File>;
  queryPermission?(descriptor: { mode: 'read' }): Promise<PermissionState>;
  requestPermission?(descriptor: { mode: 'read' }): Promise<PermissionState>;
}

interface PickerWindow {
  showOpenFilePicker?(options: { multiple?: boolean }): Promise<FileHandleLike[]>;
}

interface HandleItem {
  getAsFileSystemHandle?(): Promise<FileHandleLike | null>;
}

/** One remembered file handle: enough to show the row and to check the file did not change. */
export interface SavedHandle {
  readonly key: string;
  readonly endpoint: string;
  readonly name: string;
  readonly size: number;
  readonly lastModified: number;
  readonly handle: FileHandleLike;
  readonly savedAt: number;
}

export function handleKey(
  endpoint: string,
  file: { name: string; size: number; lastModified: number },
): string {
  const q = endpoint.indexOf('?');
  return [q === -1 ? endpoint : endpoint.slice(0, q), file.name, file.size, file.lastModified].join(
    '|',
  );
}

export function canPickHandles(): boolean {
  return typeof (globalThis as PickerWindow).showOpenFilePicker === 'function';
}

/**
 * Open the File System Access picker; undefined when the user dismissed it. The picker is looked
 * up on `globalThis` at call time, so a page (or a test: headless browsers cannot click the native
 * dialog) may substitute a function that resolves to other real FileSystemFileHandles, such as
 * files of the Origin Private File System; everything after the pick is the same code.
 */
export async function pickHandles(multiple: boolean): Promise<FileHandleLike[] | undefined> {
  const picker = (globalThis as PickerWindow).showOpenFilePicker;
  if (!picker) return undefined;
  try {
    return await picker.call(globalThis, { multiple });
  } catch {
    return undefined; // AbortError when dismissed; SecurityError without a user gesture
  }
}

/** Must be called synchronously inside the drop event: the DataTransfer is emptied afterwards. */
export function handlePromise(item: DataTransferItem): Promise<FileHandleLike | null> | undefined {
  const get = (item as unknown as HandleItem).getAsFileSystemHandle;
  if (typeof get !== 'function') return undefined;
  return get.call(item).catch(() => null);
}

/**
 * File handles in IndexedDB (database `big-uploader-handles`, separate from the client's resume
 * records so neither schema has to know the other). Handles are structured-cloneable in Chromium;
 * browsers without File System Access never get here.
 */
export class HandleStore {
  private db: Promise<IDBDatabase> | undefined;

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open('big-uploader-handles', 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains('handles'))
          req.result.createObjectStore('handles', { keyPath: 'key' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
    return this.db;
  }

  private async run<T>(
    mode: IDBTransactionMode,
    work: (store: IDBObjectStore) => IDBRequest<T>,
  ): Promise<T> {
    const store = (await this.open()).transaction('handles', mode).objectStore('handles');
    const req = work(store);
    return new Promise((resolve, reject) => {
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
  }

  async list(): Promise<SavedHandle[]> {
    if (typeof indexedDB === 'undefined') return [];
    try {
      return (await this.run('readonly', (s) => s.getAll())) as SavedHandle[];
    } catch {
      return [];
    }
  }

  async put(entry: SavedHandle): Promise<void> {
    try {
      await this.run('readwrite', (s) => s.put(entry));
    } catch {
      // A handle that cannot be stored only costs the one-click resume, never the upload.
    }
  }

  async remove(key: string): Promise<void> {
    if (typeof indexedDB === 'undefined') return;
    try {
      await this.run('readwrite', (s) => s.delete(key));
    } catch {
      // Same as put: best effort.
    }
  }
}

/** Read permission for a stored handle; asks the user when needed (call from a click handler). */
export async function ensureReadPermission(handle: FileHandleLike): Promise<boolean> {
  try {
    if ((await handle.queryPermission?.({ mode: 'read' })) === 'granted') return true;
    if (!handle.requestPermission) return true; // browsers without the permission API allow reads
    return (await handle.requestPermission({ mode: 'read' })) === 'granted';
  } catch {
    return false;
  }
}

interface WakeLockSentinelLike {
  readonly released: boolean;
  release(): Promise<void>;
  addEventListener(type: 'release', listener: () => void): void;
}

interface WakeLockNavigator {
  wakeLock?: { request(type: 'screen'): Promise<WakeLockSentinelLike> };
}

/**
 * Holds a screen wake lock while `set(true)` and releases it on `set(false)`. The browser drops the
 * lock whenever the page is hidden, so it is requested again when the page becomes visible.
 */
export class WakeLock {
  private sentinel: WakeLockSentinelLike | undefined;
  private wanted = false;
  private pending = false;
  private readonly onVisible = (): void => {
    if (document.visibilityState === 'visible') void this.sync();
  };

  get held(): boolean {
    return this.sentinel !== undefined && !this.sentinel.released;
  }

  set(wanted: boolean): void {
    if (wanted === this.wanted || typeof document === 'undefined') return;
    this.wanted = wanted;
    if (wanted) document.addEventListener('visibilitychange', this.onVisible);
    else document.removeEventListener('visibilitychange', this.onVisible);
    void this.sync();
  }

  private async sync(): Promise<void> {
    const api = (navigator as WakeLockNavigator).wakeLock;
    if (!api || this.pending) return;
    if (this.wanted && !this.held && document.visibilityState === 'visible') {
      this.pending = true;
      try {
        const sentinel = await api.request('screen');
        this.sentinel = sentinel;
        sentinel.addEventListener('release', () => {
          if (this.sentinel === sentinel) this.sentinel = undefined;
        });
      } catch {
        // Refused (no permission, battery saver, headless): uploads work without it.
      } finally {
        this.pending = false;
      }
      if (!this.wanted) await this.sync();
    } else if (!this.wanted && this.sentinel) {
      const sentinel = this.sentinel;
      this.sentinel = undefined;
      await sentinel.release().catch(() => undefined);
    }
  }
}
