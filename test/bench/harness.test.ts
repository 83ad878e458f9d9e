import { mkdtemp, open, rm, copyFile } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limitNetDisk } from '../../bench/contenders/limits.js';
import {
  addRatios,
  runContenders,
  summarize,
  type BenchResult,
  type ContenderSummary,
  type RunRecord,
} from '../../bench/harness.js';
import { parseSendOutput } from '../../bench/product.js';
import {
  KEPT_MARKER,
  keptWriteUps,
  renderJson,
  renderResultsMarkdown,
  renderSvg,
  renderTable,
} from '../../bench/report.js';
import { median, spread } from '../../bench/stats.js';
import type { Contender } from '../../bench/types.js';
import { run as benchCli } from '../../cli/bench.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const MiB = 2 ** 20;

describe('bench statistics', () => {
  it('takes medians and ranges of finite values only', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
    expect(spread([5, undefined, Number.NaN, 1, 3])).toEqual({ median: 3, min: 1, max: 5, n: 3 });
    expect(spread([undefined])).toBeUndefined();
  });

  it('reports a contender with any failed run as FAILED, without figures', () => {
    const ok = (run: number, seconds: number): RunRecord => ({
      status: 'ok',
      run,
      seconds,
      bytes: 100e6,
      serverCpuSeconds: 0.1,
      clientCpuSeconds: 0.05,
      serverPeakRssBytes: 50 * MiB,
    });
    const good = summarize({ id: 'limit-netdisk', label: 'ref', kind: 'limit' }, [
      ok(1, 1),
      ok(2, 0.5),
      ok(3, 0.25),
    ]);
    expect(good.status).toBe('ok');
    expect(good.mbps).toEqual({ median: 200, min: 100, max: 400, n: 3 });
    expect(good.serverPeakRssMiB).toBe(50);
    // CPU per GiB moved: 0.05 s for 100 MB is 0.537 s/GiB.
    expect(good.clientCpuPerGiB?.median).toBeCloseTo(0.05 / (100e6 / 2 ** 30), 6);
    const bad = summarize({ id: 'x', label: 'x', kind: 'peer' }, [
      ok(1, 1),
      { status: 'failed', run: 2, reason: 'received file differs' },
    ]);
    expect(bad.status).toBe('failed');
    expect(bad.mbps).toBeUndefined();
    const half = summarize({ id: 'y', label: 'y', kind: 'peer' }, [ok(1, 2)]);
    const rows = [good, bad, half];
    addRatios(rows);
    expect(half.ratioToReference).toBeCloseTo(0.25);
    expect(bad.ratioToReference).toBeUndefined();
  });

  it('reads send --json as one document, an array, a wrapper or JSON lines', () => {
    const rec = {
      id: 'a',
      name: 'f',
      size: 3,
      bytesSent: 3,
      bytesSkipped: 0,
      seconds: 1,
      MBps: 0,
      digest: 'd',
    };
    expect(parseSendOutput(JSON.stringify(rec))).toEqual([rec]);
    expect(parseSendOutput(JSON.stringify([rec, rec]))).toHaveLength(2);
    expect(parseSendOutput(JSON.stringify({ files: [rec] }))).toEqual([rec]);
    expect(parseSendOutput(`progress 50%\n${JSON.stringify(rec)}\n`)).toEqual([rec]);
    expect(parseSendOutput('')).toEqual([]);
  });
});

describe('bench harness end to end (4 MiB)', () => {
  let workDir: string;
  let tmpRoot: string;
  beforeAll(async () => {
    // Its own cache dir: the harness keeps one source per dir and must not evict the real bench's.
    workDir = await mkdtemp(join(os.tmpdir(), 'bench-test-work-'));
    tmpRoot = await mkdtemp(join(os.tmpdir(), 'bench-test-runs-'));
  });
  afterAll(async () => {
    await rm(workDir, { recursive: true, force: true });
    await rm(tmpRoot, { recursive: true, force: true });
  });

  /** A contender that stores a copy of the source with one byte flipped, as a buggy upload would. */
  const corrupting: Contender = {
    id: 'corrupt',
    label: 'Corrupting copy',
    kind: 'peer',
    verifies: true,
    run: async (ctx) => {
      const dest = join(ctx.runDir, 'copy.bin');
      await copyFile(ctx.source, dest);
      const h = await open(dest, 'r+');
      const b = Buffer.alloc(1);
      await h.read(b, 0, 1, 12345);
      b[0] = b[0] ^ 0xff;
      await h.write(b, 0, 1, 12345);
      await h.close();
      return { status: 'ok', seconds: 0.001, bytes: ctx.size, received: dest };
    },
  };

  it('times a real contender, and reports a corrupted received file as FAILED', async () => {
    const lines: string[] = [];
    const result = await runContenders([limitNetDisk, corrupting], {
      repoRoot,
      size: 4 * MiB,
      runs: 1,
      workDir,
      tmpRoot,
      warmBytes: 0,
      timeoutMs: 20_000,
      log: (l) => lines.push(l),
    });
    const [ref, bad] = result.contenders;
    expect(ref.status, ref.reason).toBe('ok');
    expect(ref.mbps!.median).toBeGreaterThan(0);
    expect(ref.ratioToReference).toBe(1);
    expect(ref.serverPeakRssMiB).toBeGreaterThan(10);
    expect(bad.status).toBe('failed');
    expect(bad.reason).toMatch(/differs.*offset 12345/);
    expect(bad.mbps).toBeUndefined();

    const table = renderTable(result);
    expect(table).toMatch(/^\| # \| Contender \| MB\/s/);
    expect(table).toContain('| 2 | Corrupting copy | **FAILED** |');
    const md = renderResultsMarkdown(
      result,
      [{ id: 'sweep', title: 'Sweep', status: 'skipped', reason: 'no flags' }],
      'results.svg',
      ['not official'],
    );
    expect(md).toContain('> **not official**');
    expect(md).toContain('**Could not run:** no flags');
    // A rewrite keeps the single-scenario write-ups below the marker, and only those.
    expect(md.trimEnd().endsWith(KEPT_MARKER)).toBe(true);
    const writeUps = `${KEPT_MARKER}\n\n### Browser, by hand\n\n| a | b |\n`;
    const rewritten = renderResultsMarkdown(
      result,
      [],
      'results.svg',
      [],
      undefined,
      keptWriteUps(`old run\n${writeUps}`),
    );
    expect(rewritten).toContain('### Browser, by hand');
    expect(rewritten).not.toContain('old run');
    expect(keptWriteUps(rewritten)).toBe(writeUps.trimEnd());
    expect(keptWriteUps('no marker here')).toBe('');
    expect(renderSvg(result, [])).toMatch(/^<svg[^]*<\/svg>\n$/);
    expect(JSON.parse(renderJson(result, [])).contenders).toHaveLength(2);
    // No temp dir of a run is left behind.
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(tmpRoot)).toEqual([]);
  });

  it('rejects bad flags with a usage error', async () => {
    await expect(benchCli(['--only', 'nope', '--no-write'])).rejects.toThrow(/unknown contender/);
    await expect(benchCli(['--runs', '0'])).rejects.toThrow(/--runs/);
  });
});

describe('machine-wide CPU', () => {
  it('turns two /proc/stat readings into busy cores, and refuses a reading it cannot order', async () => {
    const { busyCores, machineCpu } = await import('../../bench/machine.js');
    expect(
      busyCores({ busySeconds: 10, atMs: 1000 }, { busySeconds: 11.5, atMs: 2000 }),
    ).toBeCloseTo(1.5);
    expect(
      busyCores({ busySeconds: 10, atMs: 1000 }, { busySeconds: 11, atMs: 1000 }),
    ).toBeUndefined();
    expect(busyCores(undefined, { busySeconds: 1, atMs: 1 })).toBeUndefined();
    const now = machineCpu();
    expect(now === undefined || now.busySeconds > 0).toBe(true);
  });
});

describe('targets', () => {
  it('explains each missed target from the run figures, and explains nothing that was met', async () => {
    const { checkTargets } = await import('../../bench/report.js');
    const s = (median: number) => ({ median, min: median, max: median, n: 1 });
    const row = (
      id: string,
      mb: number,
      server?: number,
      client?: number,
      busyCores?: number,
    ): ContenderSummary => ({
      id,
      label: id,
      kind: 'limit' as const,
      status: 'ok' as const,
      runs: 1,
      mbps: s(mb),
      ...(server !== undefined ? { serverCpuPerGiB: s(server) } : {}),
      ...(client !== undefined ? { clientCpuPerGiB: s(client) } : {}),
      extra: busyCores !== undefined ? { busyCores: s(busyCores) } : {},
      notes: [],
    });
    const result: BenchResult = {
      machine: {
        date: '',
        cpus: 2,
        cpuModel: '',
        memoryGiB: 1,
        node: '',
        os: '',
        disk: '',
        loadAverage: '0 0 0',
      },
      size: 1,
      runs: 1,
      warmBytes: 0,
      startedAt: '',
      seconds: 1,
      records: {},
      contenders: [
        row('limit-netdisk', 1000, 1.0, 0.6, 1.6),
        row('limit-disk-sync', 1400),
        row('ours', 750, 1.3, 0.8, 1.5),
        row('ours-durable', 800),
        row('tus', 400),
        row('tus-8m', 250),
        row('naive', 90),
      ],
    };
    const byWhat = Object.fromEntries(checkTargets(result).map((t) => [t.what, t]));
    const vsLimit = byWhat['big-uploader / limit 2 (network + disk)'];
    expect(vsLimit.ok).toBe(false);
    // (1.5 / 2.1) / (1.6 / 1.6) = 0.71: the CPU per GiB and the cores kept busy.
    expect(vsLimit.why).toContain("client + server CPU 2.10 s/GiB against the limit pipe's 1.60");
    expect(vsLimit.why).toContain('accounts for a ratio of 0.71');
    expect(byWhat['big-uploader / tus one PATCH'].why).toBe(
      "needs 800 MB/s against this run's 400; big-uploader ran at 750; the network + disk limit itself is 2.50x it, so the target needs 0.80 of the limit (see the first row)",
    );
    expect(byWhat['big-uploader / tus 8 MiB chunks'].ok).toBe(true);
    expect(byWhat['big-uploader / tus 8 MiB chunks'].why).toBeUndefined();
    expect(byWhat['big-uploader --durable / disk + fdatasync'].why).toContain(
      'no upload over this path can reach 0.9 of it',
    );
    expect(byWhat['big-uploader server CPU s/GiB'].ok).toBe(true);
    expect(byWhat['big-uploader server CPU s/GiB'].why).toBeUndefined();
    const heavy = {
      ...result,
      contenders: result.contenders.map((c) =>
        c.id === 'ours' ? { ...c, serverCpuPerGiB: { median: 1.6, min: 1.4, max: 1.7, n: 3 } } : c,
      ),
    };
    const cpu = checkTargets(heavy).find((t) => t.what === 'big-uploader server CPU s/GiB')!;
    expect(cpu.ok).toBe(false);
    expect(cpu.why).toContain(
      "runs ranged 1.40-1.70; the limit pipe's server, which only receives and writes, took 1.00",
    );
    expect(cpu.why).toContain('the other 0.60 s/GiB');
  });
});
