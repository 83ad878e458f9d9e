#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=536870912 MALLOC_TOP_PAD_=67108864 node --initial-old-space-size=64
// Runs the TypeScript sources directly (through tsx), so `npx big-uploader` works right after
// `npm install` or `npm ci` with no build step. The malloc settings and the node flag in the first
// line are the server's (see server/node-flags.ts).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
