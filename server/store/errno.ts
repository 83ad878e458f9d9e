/** File-system error classes a store and its callers decide on. */

/** The file system is out of space or quota (ENOSPC, EDQUOT). */
export function isOutOfSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** No hard link can be made there: another filesystem, one without links, or too many links. */
export function isNoHardLink(error: unknown): boolean {
  return isErrno(error, 'EPERM') || isErrno(error, 'EXDEV') || isErrno(error, 'EMLINK');
}

/** The error is the system error `code` (ENOENT, EEXIST, ...). */
export function isErrno(error: unknown, code: string): boolean {
  return (
    typeof error === 'object' && error !== null && (error as NodeJS.ErrnoException).code === code
  );
}
