/**
 * Issue 18 B: re-uploading a file the server already holds. One server, one file of --size
 * (default 8 GiB, random bytes): `big-uploader send` of it as a new upload (the bytes go over
 * the socket), then `send` of the same file again as another new upload, which the server
 * answers with a proof-of-possession challenge and completes as an instant upload (the client
 * hashes the whole file and a few ranges, no bytes sent). Alternated with `--no-instant` sends of
 * the same file, so "instant" is compared with "send it" in the same run. Every run's stored file
 * is checked by size and inode link (an instant upload is a hard link to the held file).
 * Prints JSON lines: seconds per run and the medians' ratio.
 *
 *   npm run build && npx tsx bench/instant-upload.ts --size 8GiB --runs 3
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from './product.js';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '8GiB' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: join(tmpdir(), `bigup-instant-${process.pid}`) },
  },
});
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const sizeText = values.size;
const size = /GiB$/.test(sizeText)
  ? Number(sizeText.slice(0, -3)) * GiB
  : /MiB$/.test(sizeText)
    ? Number(sizeText.slice(0, -3)) * MiB
    : Number(sizeText);
const runs = Number(values.runs);
const root = values.dir;
const repo = new URL('..', import.meta.url).pathname;
const cli = join(repo, 'dist/cli/main.js');

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

interface Report {
  id: string;
  size: number;
  bytesSent: number;
  seconds: number;
  instant?: boolean;
  state: string;
}

function send(url: string, file: string, extra: string[]): { seconds: number; report: Report } {
  const t0 = performance.now();
  const out = execFileSync(
    process.execPath,
    [cli, 'send', '--url', url, '--quiet', '--json', '--no-resume', ...extra, file],
    { encoding: 'utf8', maxBuffer: 1 << 20 },
  );
  const seconds = (performance.now() - t0) / 1000;
  const report = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Report;
  if (report.state !== 'done' || report.size !== size)
    throw new Error(`send did not finish: ${out}`);
  return { seconds, report };
}

async function main(): Promise<void> {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  const file = join(root, 'big.bin');
  const t0 = performance.now();
  // Random bytes, so nothing in the path can shortcut on zeros.
  execFileSync('sh', [
    '-c',
    `head -c ${size} /dev/urandom > ${file} 2>/dev/null || openssl rand -out ${file} ${size}`,
  ]);
  console.error(`made ${size} B in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const data = join(root, 'data');
  // The product server as `npm start` runs it (bench/product.ts).
  // `send` has no subject: the server lets it find its address's content (not the default).
  const server = await startServer(repo, data, ['--instant-upload', 'address']);
  const url = server.url;
  try {
    const first = send(url, file, []);
    console.log(JSON.stringify({ run: 'first send (held from now on)', seconds: first.seconds }));
    const heldInode = statSync(join(data, 'files', first.report.id, 'big.bin')).ino;
    const sent: number[] = [];
    const instant: number[] = [];
    for (let i = 0; i < runs; i++) {
      const plain = send(url, file, ['--no-instant']);
      if (plain.report.bytesSent !== size) throw new Error('--no-instant did not send the bytes');
      sent.push(plain.seconds);
      rmSync(join(data, 'files', plain.report.id), { recursive: true, force: true });
      const quick = send(url, file, []);
      const stored = statSync(join(data, 'files', quick.report.id, 'big.bin'));
      if (quick.report.instant !== true || stored.size !== size || stored.ino !== heldInode)
        throw new Error(`not an instant upload: ${JSON.stringify(quick.report)}`);
      instant.push(quick.seconds);
      console.log(
        JSON.stringify({ run: i + 1, sendSeconds: plain.seconds, instantSeconds: quick.seconds }),
      );
    }
    console.log(
      JSON.stringify({
        scenario: `re-upload of a held ${sizeText} file`,
        runs,
        medianSendSeconds: Number(median(sent).toFixed(2)),
        medianInstantSeconds: Number(median(instant).toFixed(2)),
        instantOverSend: Number((median(instant) / median(sent)).toFixed(3)),
      }),
    );
  } finally {
    await server.child.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
