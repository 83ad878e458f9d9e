/** An in-memory ResumeStore: for tests, and for apps that only want in-session resume. */
import type { ResumeRecord, ResumeStore } from './types.js';

export class MemoryResumeStore implements ResumeStore {
  readonly records = new Map<string, ResumeRecord>();

  async get(fingerprint: string): Promise<ResumeRecord | undefined> {
    return this.records.get(fingerprint);
  }

  async set(fingerprint: string, record: ResumeRecord): Promise<void> {
    this.records.set(fingerprint, record);
  }

  async remove(fingerprint: string): Promise<void> {
    this.records.delete(fingerprint);
  }

  async entries(): Promise<ReadonlyArray<readonly [string, ResumeRecord]>> {
    return [...this.records.entries()];
  }
}
