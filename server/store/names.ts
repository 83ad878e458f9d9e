/**
 * Client file names are metadata; this turns one into a single safe path component for the
 * completed file. Whatever the input, the result:
 * - has no separators, no `..`, and no character that looks like a separator (fullwidth, division
 *   and fraction slashes, fullwidth backslash);
 * - has no control characters (C0, C1, line and paragraph separators) and no invisible format
 *   characters (bidi overrides such as `invoice\u202Efdp.exe` shown as "invoiceexe.pdf",
 *   zero-width spaces and joiners, BOM, soft hyphen): those are removed, so the name shows what it is;
 * - does not start with a dot, nor end with a dot or a space (Windows drops those, so two names
 *   would collide or a name would change its extension on the way to a Windows share);
 * - is not a Windows reserved device name (`CON`, `nul.txt`, `COM1.log`, `lpt²`): those get `_` in
 *   front, since opening them on Windows reaches a device, not a file;
 * - is NFC, at most 200 bytes of UTF-8, and never empty (`file`).
 * The name the client sent is kept apart (UploadInfo.originalName) for display and audit.
 */
// eslint-disable-next-line no-control-regex -- control characters are exactly what this removes
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029/\\:*?"<>|]/g;
/** Characters drawn like `/` or `\`. */
const SLASH_LOOKALIKES = /[\u2044\u2215\u29f5\u29f8\u29f9\uff0f\uff3c\u2571\u2572]/g;
/** Unicode format characters (general category Cf): invisible, and able to reorder what is shown. */
const FORMAT = /\p{Cf}/gu;
/** Windows device names, with or without an extension (`NUL.txt`, `com1.tar.gz`, `CON .txt`). */
const RESERVED =
  /^(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]|CONIN\$|CONOUT\$)[ .]*(?:\..*)?$/i;
const MAX_BYTES = 200;

/** Drop trailing dots and whitespace (after a cut too, which can expose them again). */
function trimEnd(name: string): string {
  return name.replace(/[.\s]+$/u, '');
}

export function sanitizeName(name: string): string {
  // Keep only the last path component a client may have sent (`C:\dir\a.txt`, `../../etc/passwd`).
  const last = name.split(/[/\\]/).pop() ?? '';
  let clean = last
    .normalize('NFC')
    .replace(FORMAT, '')
    .replace(SLASH_LOOKALIKES, '_')
    .replace(UNSAFE, '_')
    .trim();
  clean = trimEnd(clean.replace(/^\.+/, '').trimStart());
  if (RESERVED.test(clean)) clean = `_${clean}`;
  const encoder = new TextEncoder();
  if (encoder.encode(clean).byteLength > MAX_BYTES) {
    const chars = Array.from(clean);
    while (encoder.encode(chars.join('')).byteLength > MAX_BYTES) chars.pop();
    clean = trimEnd(chars.join(''));
  }
  return clean.length === 0 ? 'file' : clean;
}

/** Deepest folder structure kept from a client's relative path; deeper parts are joined into the name. */
export const MAX_PATH_DEPTH = 32;
/**
 * Most bytes of folder names (with their separators) kept from a client's relative path; the
 * folders past it are joined into the name. 32 folders of 200-byte names made a path longer than
 * Linux's 4,096 (found by an attack helper: every COMPLETE then failed with a retryable error);
 * this leaves the data directory's own path about 2.8 KB.
 */
export const MAX_FOLDER_PATH_BYTES = 1024;

/**
 * The place of a completed file inside its upload's folder: the client's relative path (upload
 * metadata `relativePath`, e.g. `photos/2024/a.jpg` from a folder upload) with every component
 * made safe by `sanitizeName`, `.` and `..` and empty components dropped, at most
 * MAX_PATH_DEPTH folders deep and MAX_FOLDER_PATH_BYTES of folder names. Without a usable
 * relative path, the sanitized name alone.
 */
export function safeRelativePath(name: string, relativePath: string | undefined): string[] {
  const parts = (relativePath ?? '')
    .split(/[/\\]/)
    .map((part) => part.normalize('NFC').trim())
    .filter((part) => part !== '' && part !== '.' && part !== '..')
    .map(sanitizeName);
  if (parts.length === 0) return [sanitizeName(name)];
  const folders = parts.slice(0, -1);
  const file = parts[parts.length - 1];
  const encoder = new TextEncoder();
  let keep = 0;
  for (let bytes = 0; keep < Math.min(folders.length, MAX_PATH_DEPTH); keep++) {
    bytes += encoder.encode(folders[keep]).byteLength + 1;
    if (bytes > MAX_FOLDER_PATH_BYTES) break;
  }
  if (keep < folders.length)
    return [...folders.slice(0, keep), sanitizeName(`${folders.slice(keep).join('_')}_${file}`)];
  return [...folders, file];
}
