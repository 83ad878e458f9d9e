import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_ENV, SERVER_NODE_FLAGS } from '../../server/node-flags.js';

// The flags live in three places that cannot import them; this keeps them in step.
describe('server node flags', () => {
  it('are on the bin shebang and in npm start', async () => {
    const root = new URL('../../', import.meta.url);
    const bin = await readFile(new URL('bin/big-uploader.js', root), 'utf8');
    const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const shebang = bin.split('\n')[0];
    // Linux before 5.1 (RHEL 8, Debian 10) silently cuts a shebang line at 127 bytes.
    expect(Buffer.byteLength(shebang)).toBeLessThanOrEqual(127);
    expect(SERVER_NODE_FLAGS.length).toBeGreaterThan(0);
    for (const flag of SERVER_NODE_FLAGS) {
      expect(shebang.split(/\s+/)).toContain(flag);
      expect(pkg.scripts.start.split(/\s+/)).toContain(flag);
    }
    expect(Object.keys(SERVER_NODE_ENV).length).toBeGreaterThan(0);
    for (const [name, value] of Object.entries(SERVER_NODE_ENV)) {
      // Assignments before `node`: env(1) in the shebang, the shell in npm start.
      const assignment = `${name}=${value}`;
      expect(shebang.split(/\s+/).indexOf(assignment)).toBeLessThan(
        shebang.split(/\s+/).indexOf('node'),
      );
      expect(shebang.split(/\s+/)).toContain(assignment);
      expect(pkg.scripts.start.split(/\s+/).indexOf(assignment)).toBeGreaterThanOrEqual(0);
      expect(pkg.scripts.start.split(/\s+/).indexOf(assignment)).toBeLessThan(
        pkg.scripts.start.split(/\s+/).indexOf('node'),
      );
    }
  });
});
