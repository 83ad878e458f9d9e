/**
 * The disk store's metadata format (disk-store.ts header): JSON lines, the last whole record wins.
 * A line that does not parse, or is not a record, is an append a crash cut short and is passed over.
 * `mentions`: text every wanted record contains (an upload id, a digest); only lines holding it
 * are parsed, found from the end with `lastIndexOf`, which keeps a read of a ledger shared by many
 * uploads (completion-ledger.ts) about as cheap as a read of one upload's file.
 */
export function lastRecord<T>(
  text: string,
  isRecord: (value: unknown) => value is T,
  mentions?: string,
): T | undefined {
  return lastRecords(text, isRecord, 1, mentions)[0];
}

/** Up to `limit` records, the last first (see `lastRecord`). */
export function lastRecords<T>(
  text: string,
  isRecord: (value: unknown) => value is T,
  limit: number,
  mentions?: string,
): T[] {
  const found: T[] = [];
  // The end of the part still to search: lines before it only.
  let end = text.length;
  while (found.length < limit && end > 0) {
    let start: number;
    let stop: number;
    if (mentions === undefined) {
      start = text.lastIndexOf('\n', end - 1) + 1;
      stop = end;
    } else {
      const at = text.lastIndexOf(mentions, end - 1);
      if (at < 0) break;
      start = text.lastIndexOf('\n', at) + 1;
      const newline = text.indexOf('\n', at);
      stop = newline < 0 ? text.length : newline;
    }
    try {
      const value: unknown = JSON.parse(text.slice(start, stop));
      if (isRecord(value)) found.push(value);
    } catch {
      // A torn or foreign line: passed over.
    }
    end = start - 1;
  }
  return found;
}
