/**
 * tus-js-client (Node) resuming against our tus endpoint: after its connection is cut mid-PATCH,
 * and after the server is SIGKILLed mid-PATCH and restarted on the same data directory. The client
 * resumes from what HEAD reports (it never resends bytes below that offset), so a byte-identical
 * file proves that no offset the server reported covered bytes it did not have.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  startChildServer,
  startServer,
  type ChildServer,
  type TestServer,
} from '../helpers/server.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { tusRequest, tusUpload } from '../helpers/tus.js';

const MiB = 1024 * 1024;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('tus-js-client resumes', () => {
  let tmp: TempDir;
  let server: TestServer | undefined;
  let proxy: FaultProxy | undefined;
  let child: ChildServer | undefined;
  beforeEach(async () => {
    tmp = await makeTempDir('bigup-tus-resume-');
  });
  afterEach(async () => {
    await proxy?.close();
    await server?.close();
    child?.kill('SIGKILL');
    await child?.exited;
    proxy = server = child = undefined;
    await tmp.cleanup();
  });

  it('after its connection is cut twice mid-PATCH: resumes from the server offset, file identical', async () => {
    server = await startServer({ dir: tmp.path, defaultChunkSize: MiB });
    const port = Number(new URL(server.url).port);
    proxy = await startFaultProxy(port);
    // Slow enough that each cut lands mid-PATCH: unthrottled, a quiet machine stored all 24 MiB
    // before the server's offset was first polled, and no cut was made.
    proxy.trickle(8 * MiB);
    const data = randomBytes(24 * MiB + 4321);
    const cutsAt = [5 * MiB, 14 * MiB];
    const patchOffsets: number[] = [];
    let cuts = 0;
    let cutting = false;
    let uploadUrl = '';
    const direct = server.url;
    /** The server's offset, asked directly (not through the proxy). */
    const serverOffset = async (): Promise<number> => {
      const path = new URL(uploadUrl).pathname;
      const head = await tusRequest(`${direct}${path}`, 'HEAD');
      return Number(head.headers.get('upload-offset'));
    };
    const result = await tusUpload(
      data,
      {
        endpoint: `http://127.0.0.1:${proxy.port}/files/`,
        metadata: { filename: 'cut.bin' },
        onBeforeRequest: (request) => {
          if (request.getMethod() === 'PATCH')
            patchOffsets.push(Number(request.getHeader('Upload-Offset')));
        },
        onProgress: (sent) => {
          if (cutting || cuts >= cutsAt.length || sent < cutsAt[cuts]) return;
          cutting = true;
          // "Sent" counts bytes handed to the socket, which kernel buffers may still hold: cut
          // only once the server stored past the last resume point, so a resume must start above.
          void (async () => {
            const from = patchOffsets[patchOffsets.length - 1] ?? 0;
            while ((await serverOffset()) <= from) await new Promise((r) => setTimeout(r, 20));
            cuts++;
            cutting = false;
            proxy!.cutAll('rst');
          })().catch(() => undefined);
        },
      },
      (upload) => {
        upload.options.onUploadUrlAvailable = () => {
          uploadUrl = upload.url ?? '';
        };
      },
    );
    expect(cuts).toBe(2);
    // Three PATCHes at least; the ones after a cut start where the server said, above 0.
    expect(patchOffsets.length).toBeGreaterThanOrEqual(3);
    expect(patchOffsets[0]).toBe(0);
    expect(patchOffsets[1]).toBeGreaterThan(0);
    expect(patchOffsets[2]).toBeGreaterThan(patchOffsets[1]);
    expect((await readFile(join(tmp.path, 'files', result.id, 'cut.bin'))).equals(data)).toBe(true);
  });

  it('after the server is SIGKILLed three times mid-PATCH and restarted: file identical', async () => {
    const port = await freePort();
    const start = async () => {
      child = await startChildServer(['--dir', tmp.path, '--port', String(port), '--no-page']);
    };
    await start();
    const data = randomBytes(40 * MiB + 999);
    const killsAt = [6 * MiB, 18 * MiB, 30 * MiB];
    const headOffsets: number[] = [];
    let kills = 0;
    let restarting: Promise<void> | undefined;
    const result = await tusUpload(data, {
      endpoint: `http://127.0.0.1:${port}/files/`,
      metadata: { filename: 'kill.bin' },
      chunkSize: 3 * MiB + 5,
      retryDelays: [300, 600, 1000, 1000, 2000, 2000, 4000, 4000, 8000],
      onAfterResponse: (request, response) => {
        if (request.getMethod() === 'HEAD')
          headOffsets.push(Number(response.getHeader('Upload-Offset')));
      },
      onProgress: (sent) => {
        if (kills < killsAt.length && sent >= killsAt[kills] && restarting === undefined) {
          kills++;
          const victim = child!;
          victim.kill('SIGKILL');
          restarting = victim.exited.then(start).finally(() => {
            restarting = undefined;
          });
        }
      },
    });
    expect(kills).toBe(3);
    // Each restart is followed by a HEAD (one may be refused while the server starts; it is retried).
    expect(headOffsets.length).toBeGreaterThanOrEqual(2);
    // Progress survived the crashes, tails included: PATCHes of 3 MiB + 5 end off the 4 MiB grid.
    expect(Math.max(...headOffsets)).toBeGreaterThan(6 * MiB);
    expect(headOffsets.some((offset) => offset % (4 * MiB) !== 0)).toBe(true);
    expect((await readFile(join(tmp.path, 'files', result.id, 'kill.bin'))).equals(data)).toBe(
      true,
    );
  }, 90_000);
});
