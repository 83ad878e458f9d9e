/**
 * Where a completed upload's file lands under files/, and the folders on its way made durable.
 *
 * An upload lands in files/<id>/<relative path>: its own folder, so equal names of different
 * uploads stay apart. An upload of a batch (`UploadInfo.batch`: the uploads with a relative path
 * on one bigup.2 connection, i.e. a folder sent at once) lands in files/<batch>/<relative path>
 * instead, so the files of one folder upload share their folders: a folder of small files then
 * makes no folder per file, and the fsyncs of the folder they land in are shared by the files
 * landing at once (issue 16; one folder per file cost two mkdirs and two fsyncs no other file
 * could share).
 *
 * A shared place that is taken (an equal relative path twice in one batch, names equal after
 * sanitizing, a file where the path needs a folder, anything else found there) falls back to
 * files/<id>/. No upload's file ever replaces another's: a shared place is claimed in memory
 * before it is used (so concurrent completions in this process never pick the same one), and the
 * file is moved into it with link(2) and unlink(2), which fail on an existing name where a rename
 * would replace it (so neither a crash's repair nor anything put there by hand is overwritten).
 */
import { link, lstat, mkdir, realpath, rename, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { DirectorySyncs } from './directory-syncs.js';
import { isErrno } from './errno.js';
import { GroupCommit } from './group-commit.js';
import { safeRelativePath } from './names.js';
import type { UploadInfo } from './types.js';

/**
 * Shared folders known to be made and flushed in their parents by this process, so the next file
 * of the batch skips their mkdir and the parents' fsyncs (bounded: cleared whole past this many).
 */
export const DURABLE_FOLDERS_KEPT = 4096;

/** A place for one completed file, held until `release`. */
export interface Place {
  readonly location: string;
  /** In a batch folder (files/<batch>/), shared with the batch's other uploads. */
  readonly shared: boolean;
  release(): void;
}

export interface DeliveredFilesLogger {
  warn(message: string): void;
}

export class DeliveredFiles {
  /** Shared places claimed by completions in progress. */
  private readonly claimedFiles = new Set<string>();
  /** Folders on the way to a claimed shared place, with how many claims need them. */
  private readonly claimedFolders = new Map<string, number>();
  private readonly durableFolders = new Set<string>();
  /** files/ with the symlinks of the data directory's own path resolved (operators use them). */
  private realFilesDir: string | undefined;
  /** Checks of a folder running or waiting, shared by the files landing in it meanwhile. */
  private readonly checks = new Map<string, GroupCommit<boolean>>();
  /** Checks of a landing folder actually made (tests). */
  checksIssued = 0;

  constructor(
    private readonly dataDir: string,
    private readonly filesDir: string,
    private readonly dirMode: number,
    private readonly syncs: DirectorySyncs,
    private readonly logger?: DeliveredFilesLogger,
  ) {}

  /** files/<id>/<relative path>: never shared, always free for this upload. */
  ownPlace(info: UploadInfo): Place {
    return {
      location: join(
        this.filesDir,
        info.id,
        ...safeRelativePath(info.name, info.metadata.relativePath),
      ),
      shared: false,
      release: () => undefined,
    };
  }

  /** The place for `info`'s file: its batch folder's when free, else its own. */
  async claim(info: UploadInfo): Promise<Place> {
    if (info.batch === undefined) return this.ownPlace(info);
    const location = join(
      this.filesDir,
      info.batch,
      ...safeRelativePath(info.name, info.metadata.relativePath),
    );
    const place = this.claimShared(location);
    if (!place) return this.ownPlace(info);
    // Free on disk too: nothing at the place, and each folder on the way a folder or absent (but
    // files/<batch> itself, which `makeFolders` makes ours whatever was planted there).
    const unknownFolders = this.foldersOf(location)
      .slice(1)
      .filter((f) => !this.durableFolders.has(f));
    // Folders made before (a batch's files mostly land in those): the place itself is not looked
    // at, since the move's link fails with EEXIST on anything there and the completion then goes
    // to the upload's own folder (`moveIn`, DiskStore.relocate). One call per file saved.
    if (unknownFolders.length === 0 && this.durableFolders.has(dirname(location))) return place;
    const found = await Promise.all(
      [location, ...unknownFolders].map((path) =>
        lstat(path).then(
          (stats) => (path === location ? 'taken' : stats.isDirectory() ? 'folder' : 'taken'),
          // ENOTDIR (a file on the way), ELOOP and the like: not a place for this file.
          (error: unknown) => (isErrno(error, 'ENOENT') ? 'free' : 'taken'),
        ),
      ),
    );
    if (found[0] === 'free' && !found.includes('taken')) return place;
    place.release();
    return this.ownPlace(info);
  }

  /**
   * Claim a recorded shared place again (a completion a crash interrupted, see
   * DiskStore.repairCompletion): undefined when a completion in progress holds it or its way.
   */
  reclaim(location: string): Place | undefined {
    return this.claimShared(location);
  }

  /** Whether `location` lies in the batch folder of `info`. */
  isShared(info: UploadInfo, location: string): boolean {
    return info.batch !== undefined && location.startsWith(join(this.filesDir, info.batch) + sep);
  }

  private claimShared(location: string): Place | undefined {
    const folders = this.foldersOf(location);
    if (
      this.claimedFiles.has(location) ||
      this.claimedFolders.has(location) ||
      folders.some((folder) => this.claimedFiles.has(folder))
    )
      return undefined;
    this.claimedFiles.add(location);
    for (const folder of folders)
      this.claimedFolders.set(folder, (this.claimedFolders.get(folder) ?? 0) + 1);
    let held = true;
    return {
      location,
      shared: true,
      release: () => {
        if (!held) return;
        held = false;
        this.claimedFiles.delete(location);
        for (const folder of folders) {
          const count = (this.claimedFolders.get(folder) ?? 1) - 1;
          if (count > 0) this.claimedFolders.set(folder, count);
          else this.claimedFolders.delete(folder);
        }
      },
    };
  }

  /** files/<top>, files/<top>/a, ... down to the folder `location` lands in. */
  private foldersOf(location: string): string[] {
    const parts = location
      .slice(this.filesDir.length + 1)
      .split(sep)
      .slice(0, -1);
    return parts.map((_, i) => join(this.filesDir, ...parts.slice(0, i + 1)));
  }

  /**
   * Make the folders down to the place, each made without following links, then every new entry
   * flushed in its parent (the parents' fsyncs at once, group-committed: a folder another
   * completion just made counts as new, since its flush may still be running). The top folder
   * (files/<id> or files/<batch>) is made ours whatever was planted there (a symlink, which would
   * send the file outside the data directory, or a file is removed); an existing real folder (a
   * completion a crash interrupted, or the batch's) is kept.
   */
  async makeFolders(place: Place): Promise<void> {
    const chain = this.foldersOf(place.location);
    const parents = new Set<string>();
    for (const [depth, folder] of chain.entries()) {
      if (place.shared && this.durableFolders.has(folder)) continue;
      if (depth === 0) await this.makeTop(folder);
      else
        try {
          await mkdir(folder, { mode: this.dirMode });
        } catch (error) {
          if (!isErrno(error, 'EEXIST') || !(await lstat(folder)).isDirectory()) throw error;
        }
      parents.add(dirname(folder));
    }
    await Promise.all([...parents].map((parent) => this.syncs.sync(parent)));
    if (!place.shared) return;
    if (this.durableFolders.size + chain.length > DURABLE_FOLDERS_KEPT) this.durableFolders.clear();
    for (const folder of chain) this.durableFolders.add(folder);
  }

  /** Forget which folders are made (one was removed by hand): the next files make them again. */
  forgetFolders(): void {
    this.durableFolders.clear();
  }

  /**
   * Move the file at `from` (the upload's data file) to its place. False when a shared place
   * turned out taken: the file is still at `from`, and nothing was replaced.
   */
  async moveIn(from: string, place: Place): Promise<boolean> {
    if (!place.shared) {
      await rename(from, place.location);
      return true;
    }
    // The remembered folders are not looked at again: a symlink put in their place since (by
    // hand, someone with access to files/) would send the file outside. The folder the file
    // lands in must resolve to where it is named.
    if (!(await this.checkInPlace(dirname(place.location)))) {
      this.forgetFolders();
      return false;
    }
    try {
      await link(from, place.location);
    } catch (error) {
      if (isErrno(error, 'EEXIST')) return false;
      throw error;
    }
    // The old name's removal is not flushed: a power loss may bring it back next to the new one,
    // which readState recognizes (both names on one file) and repairs.
    await unlink(from);
    return true;
  }

  /**
   * `resolvesInPlace`, one check shared by the files that land in `folder` at once: a caller
   * gets the answer of a check that started after it asked (group-commit.ts), as if it had made
   * its own. A check costs a readlink per component of the path and a call handed to the thread
   * pool, which one per small file repeated (issue 16).
   */
  private checkInPlace(folder: string): Promise<boolean> {
    let check = this.checks.get(folder);
    if (!check) {
      const made: GroupCommit<boolean> = new GroupCommit(
        () => {
          this.checksIssued++;
          return this.resolvesInPlace(folder);
        },
        () => {
          if (this.checks.get(folder) === made) this.checks.delete(folder);
        },
      );
      this.checks.set(folder, made);
      check = made;
    }
    return check.request();
  }

  /** Whether `folder` (under files/) is a real folder at that path (no symlink on the way), or gone. */
  private async resolvesInPlace(folder: string): Promise<boolean> {
    this.realFilesDir ??= await realpath(this.filesDir);
    let real: string;
    try {
      real = await realpath(folder);
    } catch (error) {
      // Gone (removed by hand): the link fails with ENOENT and the folders are made again.
      return isErrno(error, 'ENOENT');
    }
    return real === join(this.realFilesDir, relative(this.filesDir, folder));
  }

  /** After `moveIn`: the new entry flushed in the folder it landed in. */
  landed(location: string): Promise<void> {
    return this.syncs.sync(dirname(location));
  }

  private async makeTop(dir: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dir, { mode: this.dirMode });
        return;
      } catch (error) {
        if (isErrno(error, 'ENOENT') && attempt === 0) {
          // An operator removed files/ itself (moving delivered files away): make it again, as
          // init does, rather than fail every completion with STORAGE_ERROR until a restart.
          await mkdir(this.filesDir, { mode: this.dirMode }).catch((made: unknown) => {
            if (!isErrno(made, 'EEXIST')) throw made;
          });
          if (!(await lstat(this.filesDir)).isDirectory())
            throw new Error(`${this.filesDir} must be a directory, not a symlink or a file`, {
              cause: error,
            });
          await this.syncs.sync(this.dataDir);
          this.logger?.warn(`disk store: ${this.filesDir} was missing; made it again`);
          continue;
        }
        if (!isErrno(error, 'EEXIST') || attempt > 0) throw error;
      }
      const found = await lstat(dir);
      if (found.isDirectory()) return;
      this.logger?.warn(
        `disk store: removed a ${found.isSymbolicLink() ? 'symlink' : 'file'} planted at ${dir}`,
      );
      await unlink(dir);
    }
  }
}
