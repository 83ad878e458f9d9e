/** File-system error classes a store and its callers decide on. */

/** The file system is out of space or quota (ENOSPC, EDQUOT). */
export function isOutOfSpace(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}
