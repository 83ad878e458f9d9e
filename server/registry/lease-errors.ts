/** The two ways a fenced registry write is refused, as the client sees them (types.ts). */
import { Errors, ProtocolError } from '../../protocol/index.js';

/** Another node (or connection) acquired the upload since: this one must stop (fatal for the client). */
export function leaseTakenOver(): ProtocolError {
  return new ProtocolError(
    Errors.TAKEN_OVER,
    'another connection resumed this upload on another node',
  );
}

/**
 * Our lease ran out (the node was paused or cut off from the registry) and nobody took the upload:
 * nothing more is acked here; the client resumes and whichever node it reaches acquires anew.
 */
export function leaseExpired(): ProtocolError {
  return new ProtocolError(
    Errors.STORAGE_ERROR,
    'this node lost its lease on the upload; resume to continue',
  );
}
