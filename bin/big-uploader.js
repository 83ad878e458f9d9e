#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=536870912 node --initial-old-space-size=64
// Runs the TypeScript sources directly (through tsx), so `npx big-uploader` works right after
// `npm install` or `npm ci` with no build step. The malloc settings and the node flag in the first
// line are chosen for the server (see server/node-flags.ts); the other subcommands get them too,
// harmlessly. Kernels before 5.1 read only 127 bytes of this line: keep it shorter.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
