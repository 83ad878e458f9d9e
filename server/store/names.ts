/**
 * Client file names are metadata; this turns one into a single safe path component for the
 * completed file. Whatever the input, the result has no separators, no `..`, no control
 * characters, is at most 200 bytes of UTF-8 and is never empty.
 */
const UNSAFE = /[\u0000-\u001f\u007f/\\:*?"<>|]/g;
const MAX_BYTES = 200;

export function sanitizeName(name: string): string {
  // Keep only the last path component a client may have sent (`C:\dir\a.txt`, `../../etc/passwd`).
  const last = name.split(/[/\\]/).pop() ?? '';
  let clean = last.normalize('NFC').replace(UNSAFE, '_').trim();
  clean = clean.replace(/^\.+/, '');
  const encoder = new TextEncoder();
  while (encoder.encode(clean).byteLength > MAX_BYTES) clean = Array.from(clean).slice(0, -1).join('');
  return clean.length === 0 ? 'file' : clean;
}
