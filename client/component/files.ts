/**
 * Turning a drop into files: plain files, and whole folders walked through the (non-standard but
 * universal) `webkitGetAsEntry` API. Everything the DataTransfer offers must be taken synchronously
 * inside the drop event; the walk itself is asynchronous.
 */
import { handlePromise, type FileHandleLike } from './platform.js';

export interface CollectedFiles {
  readonly files: File[];
  /** Path inside the dropped folder, for files that came from one. */
  readonly paths: Map<File, string>;
  /** File System Access handles of top-level dropped files, where the browser offers them. */
  readonly handles: Map<File, FileHandleLike>;
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function entryFile(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

/** Unreadable entries (vanished file, permissions) are skipped; the rest of the folder still counts. */
async function walk(entry: FileSystemEntry, prefix: string, out: CollectedFiles): Promise<void> {
  if (entry.isFile) {
    let file: File;
    try {
      file = await entryFile(entry as FileSystemFileEntry);
    } catch {
      return;
    }
    out.files.push(file);
    if (prefix) out.paths.set(file, `${prefix}${file.name}`);
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries returns at most ~100 entries per call: keep reading until it returns none.
    for (;;) {
      let batch: FileSystemEntry[];
      try {
        batch = await readEntries(reader);
      } catch {
        break; // keep what this folder listed so far
      }
      if (batch.length === 0) break;
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
    }
  }
}

/** Collect files (recursing into folders) from a drop's DataTransfer. Call inside the drop handler. */
export function collectDrop(data: DataTransfer): Promise<CollectedFiles> {
  const out: CollectedFiles = { files: [], paths: new Map(), handles: new Map() };
  const items = Array.from(data.items).filter((i) => i.kind === 'file');
  const entries = items.map((i) =>
    typeof i.webkitGetAsEntry === 'function' ? i.webkitGetAsEntry() : null,
  );
  const handles = items.map((i) => handlePromise(i));
  const plain = Array.from(data.files);
  return (async () => {
    if (entries.every((e) => e === null)) {
      out.files.push(...plain);
      return out;
    }
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (!entry) continue;
      const before = out.files.length;
      await walk(entry, '', out);
      if (entry.isFile && out.files.length > before) {
        const handle = await handles[i];
        const file = out.files[before];
        if (handle && handle.kind === 'file' && file) out.handles.set(file, handle);
      }
    }
    return out;
  })();
}
