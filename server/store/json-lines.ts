/**
 * The disk store's metadata format (disk-store.ts header): JSON lines, the last whole record wins.
 * A line that does not parse, or is not a record, is an append a crash cut short and is passed over.
 * `mentions`: text every wanted record contains (an upload id); lines without it are not parsed,
 * which keeps a read of a shared ledger of records (completion-ledger.ts) cheap.
 */
export function lastRecord<T>(
  text: string,
  isRecord: (value: unknown) => value is T,
  mentions?: string,
): T | undefined {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (mentions !== undefined && !lines[i].includes(mentions)) continue;
    let value: unknown;
    try {
      value = JSON.parse(lines[i]);
    } catch {
      continue;
    }
    if (isRecord(value)) return value;
  }
  return undefined;
}
