/**
 * Directory fsyncs: one directory's, and group commit of many callers' (issue 16).
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { GroupCommit } from './group-commit.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fsConstants;

/** fsync a directory, so the entries created or renamed in it survive a power loss. */
export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Group commit for directory fsyncs (issue 16, group-commit.ts): many uploads creating and
 * completing at once each need uploads/ and files/ flushed after their own entry changed, and N
 * concurrent completions cost about two fsyncs of each shared directory instead of N. Each caller
 * still waits for a sync that started after its change (SPEC.md 8: RESULT only after the file is
 * durably in place).
 */
export class DirectorySyncs {
  private readonly entries = new Map<string, GroupCommit>();
  /** fsyncs actually issued (tests and metrics). */
  issued = 0;

  /** Directories with a sync running or waiting: what this holds (tests). */
  get tracked(): number {
    return this.entries.size;
  }

  sync(path: string): Promise<void> {
    let entry = this.entries.get(path);
    if (!entry) {
      // Kept only while in use: folders come and go (one per folder upload), the map must not.
      const made: GroupCommit = new GroupCommit(
        () => {
          this.issued++;
          return fsyncDir(path);
        },
        () => {
          if (this.entries.get(path) === made) this.entries.delete(path);
        },
      );
      entry = made;
      this.entries.set(path, entry);
    }
    return entry.request();
  }
}
