/**
 * Everything the bench writes: the markdown table for stdout, RESULTS.md, the JSON document and an
 * SVG plot. All of it is generated from a BenchResult, so no figure is ever typed by hand.
 */
import type { BenchResult, ContenderSummary } from './harness.js';
import type { Spread } from './stats.js';
import type { ScenarioResult } from './types.js';

const fmt = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

/** "754 (687-820)"; a single run prints just the value. */
export function formatSpread(s: Spread | undefined, digits = 0): string {
  if (!s) return 'n/a';
  return s.n === 1 || s.min === s.max
    ? fmt(s.median, digits)
    : `${fmt(s.median, digits)} (${fmt(s.min, digits)}-${fmt(s.max, digits)})`;
}

const escapeCell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function statusCell(row: ContenderSummary): string {
  if (row.status === 'failed') return '**FAILED**';
  if (row.status === 'unavailable') return 'not run';
  return formatSpread(row.mbps);
}

function notesCell(row: ContenderSummary): string {
  const parts: string[] = [];
  if (row.reason) parts.push(row.reason);
  for (const [key, s] of Object.entries(row.extra)) {
    if (key === 'mergeSeconds') parts.push(`merge ${formatSpread(s, 2)} s`);
    else if (key !== 'bytesSent') parts.push(`${key} ${formatSpread(s, 2)}`);
  }
  parts.push(...row.notes);
  return escapeCell(parts.join('; '));
}

/** The contenders' table, markdown. */
export function renderTable(result: BenchResult): string {
  const lines = [
    '| # | Contender | MB/s median (min-max) | x limit 2 | Server CPU s/GiB | Client CPU s/GiB | Server peak RSS MiB | Client peak RSS MiB | Notes |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  result.contenders.forEach((row, i) => {
    lines.push(
      `| ${i + 1} | ${escapeCell(row.label)} | ${statusCell(row)} | ${row.ratioToReference === undefined ? '' : fmt(row.ratioToReference, 2)} | ` +
        `${formatSpread(row.serverCpuPerGiB, 2)} | ${formatSpread(row.clientCpuPerGiB, 2)} | ${row.serverPeakRssMiB === undefined ? '' : fmt(row.serverPeakRssMiB)} | ` +
        `${row.clientPeakRssMiB === undefined ? '' : fmt(row.clientPeakRssMiB)} | ${notesCell(row)} |`,
    );
  });
  return lines.join('\n');
}

/** One scenario as a markdown section. */
export function renderScenario(s: ScenarioResult): string {
  const lines = [`### ${s.title}`, ''];
  if (s.status !== 'ok')
    lines.push(
      `**${s.status === 'skipped' ? 'Could not run' : 'FAILED'}:** ${s.reason ?? 'no reason given'}`,
      '',
    );
  if (s.headers && s.rows && s.rows.length > 0) {
    lines.push(
      `| ${s.headers.map(escapeCell).join(' | ')} |`,
      `|${s.headers.map(() => '---').join('|')}|`,
    );
    for (const r of s.rows) lines.push(`| ${r.map(escapeCell).join(' | ')} |`);
    lines.push('');
  }
  for (const n of s.notes ?? []) lines.push(`- ${n}`);
  return lines.join('\n').trimEnd();
}

interface Target {
  what: string;
  needed: string;
  measured?: number;
  ok?: boolean;
  /** For a missed target: what this run's own figures say about why (never typed by hand). */
  why?: string;
}

const mbps = (row: ContenderSummary | undefined): number | undefined => row?.mbps?.median;
const totalCpu = (row: ContenderSummary | undefined): number | undefined =>
  row?.serverCpuPerGiB && row.clientCpuPerGiB
    ? row.serverCpuPerGiB.median + row.clientCpuPerGiB.median
    : undefined;
const busy = (row: ContenderSummary | undefined): number | undefined =>
  row?.extra.busyCores?.median;

/**
 * Why big-uploader falls short of the network + disk limit, from the run's figures: on a machine
 * where client and server share the cores, the CPU both spend per GiB bounds the rate at which
 * the cores they keep busy can move it.
 */
function whyBelowLimit(
  ours: ContenderSummary | undefined,
  limit: ContenderSummary | undefined,
  cores: number,
): string | undefined {
  const [o, l] = [totalCpu(ours), totalCpu(limit)];
  if (o === undefined || l === undefined) return undefined;
  const parts = [
    `client + server CPU ${fmt(o, 2)} s/GiB against the limit pipe's ${fmt(l, 2)} (server ${fmt(ours!.serverCpuPerGiB!.median, 2)} vs ${fmt(limit!.serverCpuPerGiB!.median, 2)}, client ${fmt(ours!.clientCpuPerGiB!.median, 2)} vs ${fmt(limit!.clientCpuPerGiB!.median, 2)})`,
  ];
  const [bo, bl] = [busy(ours), busy(limit)];
  if (bo !== undefined && bl !== undefined) {
    // Rate = cores busy / CPU per GiB, exactly when client and server are all the machine runs.
    parts.push(
      `${fmt(bo, 2)} vs ${fmt(bl, 2)} of ${cores} cores busy; cores busy / CPU per GiB accounts for a ratio of ${fmt(bo / o / (bl / l), 2)}`,
    );
  }
  return parts.join('; ');
}

/** The issue's targets, checked against this run's medians (only those this run can judge). */
export function checkTargets(result: BenchResult): Target[] {
  const row = (id: string): ContenderSummary | undefined =>
    result.contenders.find((r) => r.id === id && r.status === 'ok');
  const ours = row('ours');
  const limit = row('limit-netdisk');
  const ratio = (
    a: ContenderSummary | undefined,
    b: ContenderSummary | undefined,
  ): number | undefined => (a?.mbps && b?.mbps ? a.mbps.median / b.mbps.median : undefined);
  const targets: Target[] = [];
  const add = (
    what: string,
    needed: string,
    measured: number | undefined,
    test: (v: number) => boolean,
    why?: () => string | undefined,
  ): void => {
    const ok = measured === undefined ? undefined : test(measured);
    targets.push({ what, needed, measured, ok, ...(ok === false && why ? { why: why() } : {}) });
  };
  /** For a peer ratio: the rate it needs, and how much room the limit pipe itself leaves. */
  const peerWhy = (peer: ContenderSummary | undefined, times: number) => (): string | undefined => {
    const [p, o, l] = [mbps(peer), mbps(ours), mbps(limit)];
    if (p === undefined || o === undefined) return undefined;
    const room =
      l === undefined
        ? ''
        : `; the network + disk limit itself is ${fmt(l / p, 2)}x it, so the target needs ${fmt((times * p) / l, 2)} of the limit`;
    return `needs ${fmt(times * p)} MB/s against this run's ${fmt(p)}; big-uploader ran at ${fmt(o)}${room} (see the first row)`;
  };
  add(
    'big-uploader / limit 2 (network + disk)',
    '>= 0.90',
    ratio(ours, limit),
    (v) => v >= 0.9,
    () => whyBelowLimit(ours, limit, result.machine.cpus),
  );
  add(
    'big-uploader / tus one PATCH',
    '>= 2.0',
    ratio(ours, row('tus')),
    (v) => v >= 2,
    peerWhy(row('tus'), 2),
  );
  add(
    'big-uploader / tus 8 MiB chunks',
    '>= 2.9',
    ratio(ours, row('tus-8m')),
    (v) => v >= 2.9,
    peerWhy(row('tus-8m'), 2.9),
  );
  add(
    'big-uploader / naive recipe',
    '>= 8',
    ratio(ours, row('naive')),
    (v) => v >= 8,
    peerWhy(row('naive'), 8),
  );
  add(
    'big-uploader server CPU s/GiB',
    '<= 1.5',
    ours?.serverCpuPerGiB?.median,
    (v) => v <= 1.5,
    () => {
      const [o, l] = [ours?.serverCpuPerGiB, limit?.serverCpuPerGiB];
      if (!o || !l) return undefined;
      return (
        `runs ranged ${fmt(o.min, 2)}-${fmt(o.max, 2)}; the limit pipe's server, which only receives and writes, took ${fmt(l.median, 2)} ` +
        `(${fmt(l.min, 2)}-${fmt(l.max, 2)}) in this run: the other ${fmt(o.median - l.median, 2)} s/GiB is what our server adds per byte ` +
        '(xxHash64 check, journal records, background flushes, ACKs)'
      );
    },
  );
  const device = row('limit-disk-sync');
  add(
    'big-uploader --durable / disk + fdatasync',
    '>= 0.90',
    ratio(row('ours-durable'), device),
    (v) => v >= 0.9,
    () => {
      const [d, l, od] = [mbps(device), mbps(limit), mbps(row('ours-durable'))];
      if (d === undefined || l === undefined || od === undefined) return undefined;
      return l < 0.9 * d
        ? `the device rate (${fmt(d)} MB/s) is above what the network + disk limit pipe moves at all (${fmt(l)}, ${fmt(l / d, 2)} of it): no upload over this path can reach 0.9 of it; --durable / limit 2 = ${fmt(od / l, 2)}`
        : `--durable ran at ${fmt(od)} MB/s, ${fmt(od / l, 2)} of the network + disk limit`;
    },
  );
  return targets;
}

export function renderTargets(result: BenchResult): string {
  const lines = [
    "| Target | Needed | Measured | Met | Why missed (this run's figures) |",
    '|---|---|---|---|---|',
  ];
  for (const t of checkTargets(result)) {
    lines.push(
      `| ${t.what} | ${t.needed} | ${t.measured === undefined ? 'not measured' : fmt(t.measured, 2)} | ${t.ok === undefined ? '' : t.ok ? 'yes' : '**no**'} | ${escapeCell(t.why ?? '')} |`,
    );
  }
  return lines.join('\n');
}

const sizeText = (bytes: number): string =>
  bytes % 2 ** 30 === 0
    ? `${bytes / 2 ** 30} GiB`
    : bytes % 2 ** 20 === 0
      ? `${bytes / 2 ** 20} MiB`
      : `${bytes} bytes`;

/**
 * The line in RESULTS.md below which the write-ups of single-scenario runs (`--browser`, `--scale`,
 * `--only ...`, by hand, each with its own date and command) stand: a full run rewrites what is
 * above it and keeps them, so one bench run never erases another's evidence.
 */
export const KEPT_MARKER =
  '<!-- Kept below: write-ups of single-scenario runs. `npm run bench` rewrites only what is above this line. -->';

/** The part of an existing RESULTS.md a rewrite keeps: from KEPT_MARKER to the end ('' without it). */
export function keptWriteUps(existing: string): string {
  const at = existing.indexOf(KEPT_MARKER);
  return at < 0 ? '' : existing.slice(at).trimEnd();
}

/**
 * The whole RESULTS.md. `banner` lines go first (e.g. "our contender could not run"); `kept`
 * (keptWriteUps of the file being replaced) goes last.
 */
export function renderResultsMarkdown(
  result: BenchResult,
  scenarios: ScenarioResult[],
  plotFile: string,
  banner: string[] = [],
  revision?: string,
  kept = '',
): string {
  const m = result.machine;
  const out: string[] = [];
  out.push('# Benchmark results', '');
  out.push(
    '<!-- Generated by `npm run bench` (bench/report.ts) down to the marker line below: do not edit that part by hand, rerun the bench. -->',
    '',
  );
  const load = Number(m.loadAverage.split(' ')[0]);
  // The harness cannot stop other work on the machine, but it can say when there was some.
  const warnings =
    Number.isFinite(load) && load > m.cpus
      ? [
          `Load average ${load.toFixed(1)} at start exceeded the ${m.cpus} cores: other work was running, absolute figures are noisy.`,
        ]
      : [];
  for (const b of [...banner, ...warnings]) out.push(`> **${b}**`, '>');
  if (banner.length + warnings.length) out.splice(out.length - 1, 1, '');
  out.push(
    `Run of ${result.startedAt} (contenders took ${fmt(result.seconds)} s): ${sizeText(result.size)} random file, ${result.runs} run(s) per contender, ` +
      `median (min-max). MB/s = 10^6 bytes/s.${revision ? ` Code: ${revision}.` : ''}`,
    '',
    `Machine: ${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}; disk ${m.disk}; load average at start ${m.loadAverage}.`,
    '',
    'Method: server and client as separate Node processes on 127.0.0.1; before every run the source is read into page cache and ' +
      `${sizeText(result.warmBytes)} of scratch data is written and deleted (this VM is slow to hand out idle pages); contenders alternate ` +
      "run by run; timing from connect to the server's final reply; server CPU is user+sys of the server process between the client's " +
      'start and its result (start-up excluded); client CPU is what the client process reports of itself over the same span; ' +
      'busyCores (in the notes) is the CPU time of the whole machine (every process and kernel thread) over that span divided by ' +
      "its length: near the core count, the machine set the pace; RSS peaks are the kernel's VmHWM; every received file is compared byte for byte with the " +
      'source outside the timing, and a contender whose file differs is FAILED, not timed. Every process runs TypeScript through ' +
      "tsx (our CLI does too), which adds the same few tens of MiB to each RSS. big-uploader's server runs as its bin and npm start run it " +
      '(server/node-flags.ts: --initial-old-space-size=64 and glibc malloc settings that reuse heap pages); the limit pipes and the peers run ' +
      'plain node (the malloc settings given to every process moved the limit pipe within its noise). "Disk + fdatasync" is measured at the run\'s file ' +
      'size: on a small file the host may absorb it in a cache, so take the device rate from a 1 GiB run.',
    '',
    renderTable(result),
    '',
    `![MB/s per contender](${plotFile})`,
    '',
    '## Targets (from the issue)',
    '',
    renderTargets(result),
    '',
  );
  if (scenarios.length) {
    out.push('## Further scenarios', '');
    for (const s of scenarios) out.push(renderScenario(s), '');
  }
  out.push(kept || KEPT_MARKER);
  return `${out.join('\n').trimEnd()}\n`;
}

/** Everything as one JSON document for machines. */
export function renderJson(result: BenchResult, scenarios: ScenarioResult[]): string {
  return `${JSON.stringify({ ...result, scenarios, targets: checkTargets(result) }, null, 2)}\n`;
}

const xml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

interface Bar {
  label: string;
  value: number;
  min?: number;
  max?: number;
  kind: string;
}

function barChart(
  title: string,
  unit: string,
  bars: Bar[],
  top: number,
  reference?: { label: string; value: number },
): { svg: string; height: number } {
  const width = 900;
  const labelWidth = 360;
  const plotWidth = width - labelWidth - 90;
  const rowHeight = 24;
  const height = 40 + bars.length * rowHeight + 30;
  const maxValue = Math.max(1, ...bars.map((b) => b.max ?? b.value));
  const scale = plotWidth / maxValue;
  const colors: Record<string, string> = {
    limit: '#9aa5b1',
    ours: '#1f77b4',
    peer: '#e07b39',
    sweep: '#2ca02c',
  };
  const parts: string[] = [
    `<g transform="translate(0,${top})">`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${xml(title)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = 36 + i * rowHeight;
    const w = Math.max(0, b.value * scale);
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 15}" font-size="12" text-anchor="end">${xml(b.label)}</text>`,
    );
    parts.push(
      `<rect x="${labelWidth}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${colors[b.kind] ?? '#777'}"/>`,
    );
    if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
      const x1 = labelWidth + b.min * scale;
      const x2 = labelWidth + b.max * scale;
      const cy = y + rowHeight / 2 - 1;
      parts.push(
        `<path d="M${x1.toFixed(1)} ${cy}H${x2.toFixed(1)}M${x1.toFixed(1)} ${cy - 5}v10M${x2.toFixed(1)} ${cy - 5}v10" stroke="#222" fill="none"/>`,
      );
    }
    parts.push(
      `<text x="${(labelWidth + Math.max(w, (b.max ?? 0) * scale) + 6).toFixed(1)}" y="${y + 15}" font-size="12">${fmt(b.value)} ${xml(unit)}</text>`,
    );
  });
  if (reference) {
    const x = (labelWidth + reference.value * scale).toFixed(1);
    const bottom = 36 + bars.length * rowHeight;
    parts.push(
      `<path d="M${x} 30V${bottom}" stroke="#1f77b4" stroke-dasharray="4 3" fill="none"/>`,
    );
    parts.push(
      `<text x="${x}" y="${bottom + 14}" font-size="11" text-anchor="middle" fill="#1f77b4">${xml(reference.label)}</text>`,
    );
  }
  parts.push('</g>');
  return { svg: parts.join('\n'), height };
}

/** The plot next to RESULTS.md: contenders' MB/s with min-max whiskers, then each scenario that has points. */
export function renderSvg(result: BenchResult, scenarios: ScenarioResult[]): string {
  const sections: string[] = [];
  let top = 0;
  const bars: Bar[] = result.contenders
    .filter((r) => r.status === 'ok' && r.mbps)
    .map((r) => ({
      label: r.label.length > 52 ? `${r.label.slice(0, 50)}...` : r.label,
      value: r.mbps!.median,
      min: r.mbps!.min,
      max: r.mbps!.max,
      kind: r.kind,
    }));
  const title = `MB/s, ${sizeText(result.size)}, median of ${result.runs} (whiskers: min-max), ${result.startedAt.slice(0, 10)}`;
  const ref = result.contenders.find((r) => r.id === 'limit-netdisk' && r.mbps);
  const main = barChart(
    title,
    'MB/s',
    bars,
    top,
    ref?.mbps ? { label: 'limit 2 (network + disk)', value: ref.mbps.median } : undefined,
  );
  sections.push(main.svg);
  top += main.height;
  for (const s of scenarios) {
    if (s.status !== 'ok' || !s.plot || s.plot.points.length === 0) continue;
    const chart = barChart(
      s.plot.title,
      s.plot.unit,
      s.plot.points.map((p) => ({ label: p.label, value: p.value, kind: 'sweep' })),
      top,
    );
    sections.push(chart.svg);
    top += chart.height;
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${top}" viewBox="0 0 900 ${top}" font-family="sans-serif">`,
    `<rect width="900" height="${top}" fill="#fff"/>`,
    ...sections,
    '</svg>',
    '',
  ].join('\n');
}
