/**
 * Directory fsyncs: one directory's, and group commit of many callers' (issue 16).
 */
import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';

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
 * Group commit for directory fsyncs (issue 16): many uploads creating and completing at once each
 * need uploads/ and files/ flushed after their own entry changed. A caller's change is covered by
 * any fsync of the directory that *starts* after the change, so a caller that arrives while one
 * runs joins the next one (at most one running and one waiting per directory), and N concurrent
 * completions cost about two fsyncs of each shared directory instead of N. Each caller's promise
 * still resolves only once a sync that started after its change has succeeded (SPEC.md 8: RESULT
 * only after the file is durably in place), and a failed sync rejects every caller that joined it.
 */
export class DirectorySyncs {
  private readonly entries = new Map<
    string,
    { running: Promise<void> | undefined; waiting: Promise<void> | undefined }
  >();
  /** fsyncs actually issued (tests and metrics). */
  issued = 0;

  /** Directories with a sync running or waiting: what this holds (tests). */
  get tracked(): number {
    return this.entries.size;
  }

  sync(path: string): Promise<void> {
    let entry = this.entries.get(path);
    if (!entry) {
      entry = { running: undefined, waiting: undefined };
      this.entries.set(path, entry);
    }
    const current = entry;
    const running = current.running;
    if (!running) return this.start(path, current);
    current.waiting ??= running
      .catch(() => undefined)
      .then(() => {
        current.waiting = undefined;
        return this.start(path, current);
      });
    return current.waiting;
  }

  private start(
    path: string,
    entry: { running: Promise<void> | undefined; waiting: Promise<void> | undefined },
  ): Promise<void> {
    this.issued++;
    const run: Promise<void> = fsyncDir(path).finally(() => {
      if (entry.running === run) entry.running = undefined;
      // Kept only while in use: folders come and go (one per folder upload), the map must not.
      if (!entry.running && !entry.waiting && this.entries.get(path) === entry)
        this.entries.delete(path);
    });
    entry.running = run;
    return run;
  }
}
