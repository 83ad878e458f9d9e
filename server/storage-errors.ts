/**
 * Store faults as the client sees them, decided in one place. A store throws what the file system
 * threw (or a ProtocolError it chose, such as UPLOAD_DAMAGED); the session and the upload turn it
 * into a wire error here, by the step that failed:
 *
 * | step      | out of space (ENOSPC, EDQUOT)          | any other fault            |
 * |-----------|----------------------------------------|----------------------------|
 * | `create`  | INSUFFICIENT_STORAGE (the file does not fit; fatal) | INTERNAL_ERROR |
 * | `write`   | STORAGE_FULL (retryable)               | STORAGE_ERROR (retryable)  |
 * | `other`   | INSUFFICIENT_STORAGE                   | INTERNAL_ERROR             |
 *
 * No errno, path or message of the fault reaches the client; the caller logs it.
 */
import { Errors, ProtocolError } from '../protocol/index.js';
import { isOutOfSpace } from './store/errno.js';

export type StorageStep = 'create' | 'write' | 'other';

export function storageErrorFor(error: unknown, step: StorageStep): ProtocolError {
  if (error instanceof ProtocolError) return error;
  if (step === 'write') {
    return isOutOfSpace(error)
      ? new ProtocolError(Errors.STORAGE_FULL, 'the server ran out of space')
      : new ProtocolError(Errors.STORAGE_ERROR, 'a write or flush failed on the server');
  }
  return isOutOfSpace(error)
    ? new ProtocolError(Errors.INSUFFICIENT_STORAGE, 'not enough free space')
    : new ProtocolError(Errors.INTERNAL_ERROR, 'unexpected server fault');
}
