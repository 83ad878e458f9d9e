/** Fault injection for directory fsyncs (server/store/directory-syncs.ts). */
import { readlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * Make FileHandle.sync fail with EIO (after `delayMs`) for the first `times` syncs of a directory
 * whose path `matches` accepts (the path read back from /proc/self/fd); resolves to the undo.
 * `anyDir`: an existing directory, opened once to reach the FileHandle prototype.
 */
export async function failDirectorySyncs(
  anyDir: string,
  matches: (path: string) => boolean,
  times: number,
  delayMs: number,
): Promise<() => void> {
  const probe = await open(anyDir, 'r');
  const proto = Object.getPrototypeOf(probe) as { sync: (this: FileHandle) => Promise<void> };
  await probe.close();
  const original = proto.sync;
  let failures = 0;
  proto.sync = async function (this: FileHandle): Promise<void> {
    if (failures < times && matches(readlinkSync(`/proc/self/fd/${this.fd}`))) {
      failures++;
      if (delayMs > 0) await delay(delayMs);
      throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    }
    return original.call(this);
  };
  return () => {
    proto.sync = original;
  };
}
