/** `s3://BUCKET[/PREFIX]` and key prefixes (no SDK import: the CLI parses these in any mode). */

/** Parse `s3://BUCKET[/PREFIX]`; undefined when `url` is not one. */
export function parseS3Url(url: string): { bucket: string; prefix: string } | undefined {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  const bucket = match?.[1];
  if (bucket === undefined) return undefined;
  return { bucket, prefix: normalizePrefix(match?.[2] ?? '') };
}

export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}
