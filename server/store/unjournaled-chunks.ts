/**
 * The chunk records of an upload that completes in the server step that created it (an OPEN with
 * data, SPEC.md 16.11), held in memory only. Nothing of such an upload is acked before its
 * completion, so no record has to outlive a crash, and the journal file it would otherwise get
 * (an inode made and freed per small file, issue 16) is never made. A crash before the
 * completion leaves an upload with no journal: one that stored nothing (disk-store.ts), swept
 * after `emptyUploadTtl`.
 */
import type { ChunkRecord } from './types.js';
import type { ChunkLog } from './journal.js';

export class UnjournaledChunks implements ChunkLog {
  readonly persistent = false;
  private readonly records: ChunkRecord[] = [];

  get count(): number {
    return this.records.length;
  }

  /** Nothing to mark: no record of it is kept across a crash anyway. */
  get unmarked(): boolean {
    return false;
  }

  /** Records in memory need no slot. */
  claimSlots(): Promise<void> {
    return Promise.resolve();
  }

  appendChunks(chunks: readonly ChunkRecord[]): Promise<void> {
    this.records.push(...chunks);
    return Promise.resolve();
  }

  appendSync(): Promise<boolean> {
    return Promise.resolve(true);
  }

  noteFlushed(): void {}

  /** After a failed completion nothing is kept: the upload was never acked, and is discarded. */
  rollback(): Promise<ChunkRecord[]> {
    this.records.length = 0;
    return Promise.resolve([]);
  }

  retractChunks(indexes: readonly number[]): Promise<void> {
    const withdrawn = new Set(indexes);
    const kept = this.records.filter((record) => !withdrawn.has(record.index));
    this.records.splice(0, this.records.length, ...kept);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
