/**
 * Recognizing the object store's errors. The SDK throws S3ServiceException subclasses whose
 * `name` is the S3 error code (NoSuchUpload, SlowDown, ...); network faults and timeouts are plain
 * errors. All of them reach the client through storage-errors.ts: a failed UploadPart is
 * STORAGE_ERROR (retryable: the client resumes and sends the chunk again), after the SDK's own
 * retries (`s3MaxAttempts`) for 5xx, SlowDown and timeouts.
 */

/** The S3 error code of `error` (its `name`), or undefined for a non-S3 fault. */
export function s3ErrorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const meta = (error as { $metadata?: unknown }).$metadata;
  const name = (error as { name?: unknown }).name;
  return meta !== undefined && typeof name === 'string' ? name : undefined;
}

export function isS3Error(error: unknown, code: string): boolean {
  return s3ErrorCode(error) === code;
}

/** A short label for metrics: the S3 code, "timeout", or "network". */
export function errorLabel(error: unknown): string {
  const code = s3ErrorCode(error);
  if (code !== undefined) return code;
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network';
}
