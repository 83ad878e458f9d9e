#!/usr/bin/env -S node --initial-old-space-size=64
// Runs the TypeScript sources directly (through tsx), so `npx big-uploader` works right after
// `npm install` or `npm ci` with no build step. The node flag in the first line is the server's
// (see server/node-flags.ts).
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
