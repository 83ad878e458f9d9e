/**
 * ResumeStore in IndexedDB (database `big-uploader`, object store `resume`, key = fingerprint).
 * IndexedDB rather than localStorage: it is asynchronous (no jank on the main thread) and has no
 * 5 MB cap shared with the rest of the origin.
 */
import type { ResumeRecord, ResumeStore } from '../core/types.js';

const DB = 'big-uploader';
const STORE = 'resume';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

export class IndexedDbResumeStore implements ResumeStore {
  private db: Promise<IDBDatabase> | undefined;

  constructor(
    private readonly factory: IDBFactory = globalThis.indexedDB,
    private readonly name = DB,
  ) {}

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = this.factory.open(this.name, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
    return this.db;
  }

  private async store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
    return (await this.open()).transaction(STORE, mode).objectStore(STORE);
  }

  async get(fingerprint: string): Promise<ResumeRecord | undefined> {
    return (await request((await this.store('readonly')).get(fingerprint))) as
      ResumeRecord | undefined;
  }

  async set(fingerprint: string, record: ResumeRecord): Promise<void> {
    await request((await this.store('readwrite')).put(record, fingerprint));
  }

  async remove(fingerprint: string): Promise<void> {
    await request((await this.store('readwrite')).delete(fingerprint));
  }
}
