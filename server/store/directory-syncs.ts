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
 * Directories whose failed fsync is remembered, at most (a folder per batch comes and goes; past
 * this many, every directory of the store counts as failed: the disk is failing anyway).
 */
export const MAX_FAILED_DIRECTORIES = 256;

/**
 * Group commit for directory fsyncs (issue 16, group-commit.ts): many uploads creating and
 * completing at once each need uploads/ and files/ flushed after their own entry changed, and N
 * concurrent completions cost about two fsyncs of each shared directory instead of N. Each caller
 * still waits for a sync that started after its change (SPEC.md 8: RESULT only after the file is
 * durably in place).
 *
 * A failed fsync is final for its directory (until the process restarts): the kernel reports a
 * writeback error once, so a later fsync that succeeds says nothing about the entries the failed
 * one was writing, which may be any caller's change made before it, including callers that joined
 * the next sync or ask only later. Every later sync of that directory fails with the first error,
 * and no completion claims durability on it. Only the fsync itself counts: a directory that cannot
 * be opened (removed) has no unknown state, and its next sync tries again.
 */
export class DirectorySyncs {
  private readonly entries = new Map<string, GroupCommit>();
  /** Directories whose fsync failed, with the first error; see MAX_FAILED_DIRECTORIES. */
  private readonly failed = new Map<string, Error>();
  /** Set once more than MAX_FAILED_DIRECTORIES failed: every directory fails with it. */
  private failedEverywhere: Error | undefined;
  /** fsyncs actually issued (tests and metrics). */
  issued = 0;

  /** Directories with a sync running or waiting: what this holds (tests). */
  get tracked(): number {
    return this.entries.size;
  }

  /** What /healthz reports (no path: it may be public): undefined while no fsync failed. */
  get failure(): string | undefined {
    const [first] = this.failed.values();
    const failed = this.failedEverywhere ?? first;
    if (!failed) return undefined;
    const code = (failed as NodeJS.ErrnoException).code ?? 'an error';
    return this.failedEverywhere
      ? `fsyncs of more than ${MAX_FAILED_DIRECTORIES} directories failed (${code}); restart the server`
      : `an fsync of ${this.failed.size === 1 ? 'a directory' : `${this.failed.size} directories`} failed (${code}); restart the server`;
  }

  /** Throws (as `sync` would reject) when an fsync of `path` failed in this process. */
  assertNotFailed(path: string): void {
    const earlier = this.earlierFailure(path);
    if (earlier) throw earlier;
  }

  sync(path: string): Promise<void> {
    const earlier = this.earlierFailure(path);
    if (earlier) return Promise.reject(earlier);
    let entry = this.entries.get(path);
    if (!entry) {
      // Kept only while in use: folders come and go (one per folder upload), the map must not.
      const made: GroupCommit = new GroupCommit(
        () => this.fsyncOnce(path),
        () => {
          if (this.entries.get(path) === made) this.entries.delete(path);
        },
      );
      entry = made;
      this.entries.set(path, entry);
    }
    return entry.request();
  }

  private async fsyncOnce(path: string): Promise<void> {
    // Checked again here: callers that joined the sync waiting behind a failed one land here.
    const earlier = this.earlierFailure(path);
    if (earlier) throw earlier;
    this.issued++;
    const handle = await open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    try {
      await handle.sync().catch((error: unknown) => {
        this.remember(path, error);
        throw error;
      });
    } finally {
      await handle.close();
    }
  }

  private remember(path: string, error: unknown): void {
    const failure = error instanceof Error ? error : new Error(String(error));
    if (this.failed.size >= MAX_FAILED_DIRECTORIES) {
      this.failedEverywhere ??= failure;
      this.failed.clear();
    } else if (!this.failed.has(path)) this.failed.set(path, failure);
  }

  private earlierFailure(path: string): Error | undefined {
    const first = this.failedEverywhere ?? this.failed.get(path);
    if (!first) return undefined;
    const code = (first as NodeJS.ErrnoException).code;
    // Always EIO: the first failure's own code (ENOSPC, EDQUOT) would tell clients that freeing
    // space helps, and it does not until the restart.
    return Object.assign(
      new Error(
        `an earlier fsync of ${this.failedEverywhere ? 'a directory of this store' : path} failed (${code ?? first.message}): the durability of its entries is unknown until the server restarts`,
        { cause: first },
      ),
      { code: 'EIO' },
    );
  }
}
