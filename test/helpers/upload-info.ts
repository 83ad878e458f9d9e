/** An UploadInfo for store tests: a one-chunk upload of 64 KiB named f.bin, unless overridden. */
import type { UploadInfo } from '../../server/index.js';

export function uploadInfo(overrides: Partial<UploadInfo> & Pick<UploadInfo, 'id'>): UploadInfo {
  return {
    secretHash: '0'.repeat(64),
    fileSize: 65_536,
    chunkSize: 65_536,
    name: 'f.bin',
    contentType: '',
    metadata: {},
    createdAt: Date.now(),
    ...overrides,
  };
}
