#!/usr/bin/env node
// Runs the TypeScript sources directly (through tsx), so `npx big-uploader` works right after
// `npm install` or `npm ci` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
