/**
 * What `send FILE|DIR...` uploads: files as given, and folders walked recursively in name order.
 * A file found in a folder carries its path relative to the folder's parent (`photos/2024/a.jpg`
 * for `send photos`), which goes to the server as the upload metadata `relativePath`.
 *
 * Symbolic links are skipped unless `follow` is set; then a folder reached twice (a link cycle) is
 * walked once. Entries that cannot be read (a folder without permission, a file that vanished
 * mid-walk) become per-entry problems: the rest of the tree is still sent.
 */
import { opendir, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

export interface SendEntry {
  readonly path: string;
  /** Path inside the uploaded folder, with `/` separators; absent for files named directly. */
  readonly relativePath?: string;
}

export interface WalkResult {
  readonly entries: SendEntry[];
  /** One line per entry that could not be taken (unreadable folder, vanished file, skipped link). */
  readonly problems: string[];
  /** Whether any argument was a folder (the CLI then prints a summary line). */
  readonly sawFolder: boolean;
}

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? 'vanished'
    : code === 'EACCES'
      ? 'permission denied'
      : (error as Error).message;
}

export async function collectEntries(
  args: readonly string[],
  follow: boolean,
): Promise<WalkResult> {
  const entries: SendEntry[] = [];
  const problems: string[] = [];
  const visited = new Set<string>();
  let sawFolder = false;

  async function walk(dir: string, relative: string): Promise<void> {
    if (follow) {
      const real = await realpath(dir).catch(() => dir);
      if (visited.has(real)) return;
      visited.add(real);
    }
    let names: Array<{ name: string; isLink: boolean; isDir: boolean; isFile: boolean }>;
    try {
      names = [];
      for await (const entry of await opendir(dir)) {
        names.push({
          name: entry.name,
          isLink: entry.isSymbolicLink(),
          isDir: entry.isDirectory(),
          isFile: entry.isFile(),
        });
      }
    } catch (error) {
      problems.push(`${dir}: ${reason(error)}`);
      return;
    }
    names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of names) {
      const path = join(dir, entry.name);
      const rel = `${relative}/${entry.name}`;
      let isDir = entry.isDir;
      let isFile = entry.isFile;
      if (entry.isLink) {
        if (!follow) {
          problems.push(`${path}: symbolic link skipped (--follow to follow links)`);
          continue;
        }
        try {
          const target = await stat(path);
          isDir = target.isDirectory();
          isFile = target.isFile();
        } catch (error) {
          problems.push(`${path}: ${reason(error)}`);
          continue;
        }
      }
      if (isDir) await walk(path, rel);
      else if (isFile) entries.push({ path, relativePath: rel });
      else problems.push(`${path}: not a regular file`);
    }
  }

  for (const arg of args) {
    // A path named on the command line is followed (as cp and tar do); links inside folders are not.
    let info;
    try {
      info = await stat(arg);
    } catch (error) {
      problems.push(`${arg}: ${reason(error)}`);
      continue;
    }
    if (info.isDirectory()) {
      sawFolder = true;
      await walk(arg, basename(arg.replace(/[/\\]+$/, '')) || '.');
    } else if (info.isFile()) {
      entries.push({ path: arg });
    } else {
      problems.push(`${arg}: not a regular file or a folder`);
    }
  }
  return { entries, problems, sawFolder };
}
