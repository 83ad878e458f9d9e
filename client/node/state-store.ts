/**
 * ResumeStore in a small JSON state file, so re-running the same `big-uploader send` resumes.
 *
 * Location (first that applies): the `path` you pass (CLI `--state FILE`), `$BIG_UPLOADER_STATE`,
 * `$XDG_STATE_HOME/big-uploader/state.json`, `~/.big-uploader/state.json`.
 *
 * The file holds resume secrets, so it is created with mode 0600. Every change re-reads the file,
 * applies one edit and replaces the file atomically (write a temp file in the same directory,
 * fsync, rename), so a crash never leaves a torn file and two processes sending different files
 * mostly keep each other's records (edits are serialised within a process; across processes the
 * window for a lost update is one read-modify-rename).
 */
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ResumeRecord, ResumeStore } from '../core/types.js';

export function defaultStatePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BIG_UPLOADER_STATE) return env.BIG_UPLOADER_STATE;
  if (env.XDG_STATE_HOME) return join(env.XDG_STATE_HOME, 'big-uploader', 'state.json');
  return join(homedir(), '.big-uploader', 'state.json');
}

interface StateFile {
  version: 1;
  records: Record<string, ResumeRecord>;
}

export class JsonFileResumeStore implements ResumeStore {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string = defaultStatePath()) {}

  private async load(): Promise<StateFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return { version: 1, records: Object.create(null) as Record<string, ResumeRecord> };
      throw error;
    }
    try {
      const parsed = JSON.parse(text) as Partial<StateFile>;
      if (parsed.version === 1 && parsed.records && typeof parsed.records === 'object') {
        return {
          version: 1,
          records: Object.assign(
            Object.create(null) as Record<string, ResumeRecord>,
            parsed.records,
          ),
        };
      }
    } catch {
      // A damaged state file costs at most a fresh upload; never refuse to send because of it.
    }
    return { version: 1, records: Object.create(null) as Record<string, ResumeRecord> };
  }

  private async save(state: StateFile): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temp = `${this.path}.${process.pid}.${Date.now()}.tmp`;
    const fh = await open(temp, 'w', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(temp, this.path);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }

  private edit<T>(fn: (state: StateFile) => T): Promise<T> {
    const next = this.chain.then(async () => {
      const state = await this.load();
      const result = fn(state);
      await this.save(state);
      return result;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  async get(fingerprint: string): Promise<ResumeRecord | undefined> {
    await this.chain;
    return (await this.load()).records[fingerprint];
  }

  set(fingerprint: string, record: ResumeRecord): Promise<void> {
    return this.edit((state) => {
      state.records[fingerprint] = record;
    });
  }

  remove(fingerprint: string): Promise<void> {
    return this.edit((state) => {
      delete state.records[fingerprint];
    });
  }

  async entries(): Promise<ReadonlyArray<readonly [string, ResumeRecord]>> {
    await this.chain;
    return Object.entries((await this.load()).records);
  }
}
