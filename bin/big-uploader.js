#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=536870912 node --initial-old-space-size=64
// Runs the compiled CLI (dist/, built by `npm run build`, and before every `npm pack`). The
// malloc settings and the node flag in the first line are chosen for the server (see
// server/node-flags.ts); the other subcommands get them too, harmlessly. Kernels before 5.1 read
// only 127 bytes of this line: keep it shorter.
import { existsSync } from 'node:fs';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(
    'big-uploader: dist/ is missing: run `npm run build` in this checkout first\n',
  );
  process.exit(1);
}
await import(main.href);
