/**
 * bigup.1 refusals (protocol/errors.ts) as the tus endpoint answers them: the HTTP error of the
 * catalogue (http-errors.ts) whose status a tus client acts on. tus-js-client and Uppy retry 5xx,
 * 409 and 423 and give up on other 4xx, so "retry shortly" is a 503 and "never" a 4xx.
 */
import { Errors, ProtocolError } from '../../protocol/index.js';
import { HttpErrors, type HttpErrorDefinition } from '../http-errors.js';

export function httpErrorFor(error: ProtocolError): HttpErrorDefinition {
  switch (error.code) {
    case Errors.FILE_TOO_LARGE.code:
      return HttpErrors.TUS_TOO_LARGE;
    case Errors.INSUFFICIENT_STORAGE.code:
      // The ledger's quota says "quota:"; the store's free space does not.
      return error.message.startsWith('quota')
        ? HttpErrors.TUS_QUOTA_EXCEEDED
        : HttpErrors.TUS_INSUFFICIENT_STORAGE;
    case Errors.TOO_MANY_UPLOADS.code:
      return HttpErrors.TUS_QUOTA_EXCEEDED;
    case Errors.UNAUTHORIZED.code:
      return HttpErrors.TUS_FORBIDDEN;
    case Errors.NOT_FOUND.code:
    case Errors.UPLOAD_GONE.code:
      return HttpErrors.NOT_FOUND;
    case Errors.UPLOAD_DAMAGED.code:
      return HttpErrors.TUS_UPLOAD_DAMAGED;
    case Errors.SHUTTING_DOWN.code:
      return HttpErrors.SHUTTING_DOWN;
    case Errors.TAKEN_OVER.code:
      return HttpErrors.TUS_LOCKED;
    case Errors.STORAGE_ERROR.code:
    case Errors.STORAGE_FULL.code:
      return HttpErrors.TUS_STORAGE_ERROR;
    default:
      return HttpErrors.INTERNAL_ERROR;
  }
}
