/**
 * SPEC.md and the code must say the same thing. The tables are parsed from the Markdown and
 * compared with protocol/constants.ts and protocol/errors.ts field by field, so an edit to either
 * side alone fails here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_MESSAGE_TYPES,
  CloseCode,
  Limits,
  MAX_U64_VALUE,
  MessageType,
  SERVER_MESSAGE_TYPES,
  SUBPROTOCOL_V1,
  allErrors,
  loadHasher,
} from '../../protocol/index.js';
import {
  buildExamples,
  dissect,
  extractGenerated,
  renderErrorTable,
  renderExamples,
  type VectorFile,
} from '../../protocol/vectors/build.js';

const spec = readFileSync(
  fileURLToPath(new URL('../../protocol/SPEC.md', import.meta.url)),
  'utf8',
);

/** Rows of the first Markdown table after `heading`, as arrays of trimmed cells (header and rule skipped). */
function tableAfter(heading: string): string[][] {
  const start = spec.indexOf(heading);
  if (start < 0) throw new Error(`no heading ${heading}`);
  const lines = spec.slice(start).split('\n');
  // A table is a '|' line followed by its '|---' rule; byte diagrams also start lines with '|'.
  const first = lines.findIndex((l, i) => l.startsWith('|') && /^\|\s*-/.test(lines[i + 1] ?? ''));
  const rows: string[][] = [];
  for (let i = first + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const cells = lines[i]
      .replace(/\\\|/g, '\u0000')
      .split('|')
      .slice(1, -1)
      // eslint-disable-next-line no-control-regex -- NUL is the placeholder this test put there
      .map((c) => c.trim().replace(/\u0000/g, '|'));
    rows.push(cells);
  }
  return rows;
}
const number = (cell: string): number => Number(cell.replace(/,/g, '').match(/^[0-9]+/)?.[0]);

describe('SPEC.md error registry', () => {
  const rows = tableAfter('<!-- BEGIN GENERATED: error-registry -->');
  const errors = allErrors();

  it('has one row per registry entry, in code order', () => {
    expect(rows.map((r) => r[1])).toEqual(errors.map((e) => e.name));
  });

  for (const e of allErrors()) {
    it(`${e.name} row matches protocol/errors.ts`, () => {
      const row = rows.find((r) => r[1] === e.name);
      expect(row).toBeDefined();
      const [code, , fatal, retryable, close, meaning, action] = row!;
      expect(Number.parseInt(code, 16)).toBe(e.code);
      expect(fatal).toBe(e.fatal ? 'yes' : 'no');
      expect(retryable).toBe(e.retryable ? 'yes' : 'no');
      if (e.fatal) expect(number(close)).toBe(e.closeCode);
      else expect(close).toBe('-');
      expect(meaning).toBe(e.meaning);
      expect(action).toBe(e.clientAction);
    });
  }

  it('is byte for byte what the generator renders', () => {
    expect(extractGenerated(spec, 'error-registry')).toBe(renderErrorTable());
  });

  it('every error name is used in the prose outside the table too', () => {
    const prose = spec.replace(extractGenerated(spec, 'error-registry'), '');
    for (const e of errors) expect(prose, e.name).toMatch(new RegExp(`\\b${e.name}\\b`));
  });
});

describe('SPEC.md tables match protocol/constants.ts', () => {
  it('message types: code, name and sender', () => {
    const rows = tableAfter('### 4.2. Message types');
    expect(rows).toHaveLength(Object.keys(MessageType).length);
    for (const [code, name, sender] of rows) {
      expect(MessageType[name as keyof typeof MessageType], name).toBe(Number.parseInt(code, 16));
      const value = Number.parseInt(code, 16);
      expect(sender).toBe(
        CLIENT_MESSAGE_TYPES.has(value)
          ? 'client'
          : SERVER_MESSAGE_TYPES.has(value)
            ? 'server'
            : '?',
      );
    }
  });

  it('every message has its section 6 heading with the right code and direction', () => {
    for (const [name, code] of Object.entries(MessageType)) {
      const direction = CLIENT_MESSAGE_TYPES.has(code) ? 'client -> server' : 'server -> client';
      const heading = `${name} (0x${code.toString(16).padStart(2, '0')}, ${direction})`;
      expect(spec, heading).toMatch(
        new RegExp(`### 6\\.\\d+\\. ${heading.replace(/[()>-]/g, '\\$&')}`),
      );
    }
  });

  it('limits: every Limits constant is in the table with its value', () => {
    const rows = tableAfter('## 9. Limits');
    for (const [name, value] of Object.entries(Limits)) {
      const row = rows.find((r) => r[0] === `\`Limits.${name}\``);
      expect(row, name).toBeDefined();
      expect(number(row![1]), name).toBe(value);
    }
    const u53 = rows.find((r) => r[0] === '`MAX_U64_VALUE`');
    expect(u53?.[1]).toContain('9,007,199,254,740,991');
    expect(MAX_U64_VALUE).toBe(9_007_199_254_740_991);
  });

  it('close codes: every CloseCode is in the table with its name', () => {
    const rows = tableAfter('## 11. WebSocket close codes');
    expect(rows).toHaveLength(Object.keys(CloseCode).length);
    for (const [code, name] of rows)
      expect(CloseCode[name as keyof typeof CloseCode], name).toBe(Number(code));
  });

  it('names the subprotocol', () => {
    expect(spec).toContain(`\`${SUBPROTOCOL_V1}\``);
    expect(spec).toContain(`Bigup-Versions: ${SUBPROTOCOL_V1}`);
  });
});

describe('SPEC.md Appendix A', () => {
  it('is what the generator renders from the examples', async () => {
    const rendered = renderExamples(buildExamples(await loadHasher()));
    expect(extractGenerated(spec, 'examples')).toBe(rendered);
    expect(rendered).toContain('### A.1.');
    expect(rendered).toContain('**RESULT**');
  });
});

describe('SPEC.md section 6 field tables match the bytes the codec writes', () => {
  const dir = fileURLToPath(new URL('../../protocol/vectors/', import.meta.url));
  for (const [name, code] of Object.entries(MessageType)) {
    it(`${name}: every fixed-offset row names a field at that offset and size`, () => {
      const vectors = JSON.parse(
        readFileSync(`${dir}${name.toLowerCase()}.json`, 'utf8'),
      ) as VectorFile;
      // The richest valid vector: the one with the most fields.
      const bytesOf = (hex: string): Uint8Array =>
        Uint8Array.from(hex.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
      const fields = vectors.valid
        .map((v) => dissect(bytesOf(v.hex)))
        .sort((a, b) => b.length - a.length)[0];
      const starts: { at: number; size: number }[] = [];
      let at = 0;
      for (const f of fields) {
        starts.push({ at, size: f.hex.length / 2 });
        at += f.hex.length / 2;
      }
      const rows = tableAfter(`${name} (0x${code.toString(16).padStart(2, '0')}`);
      const fixed = rows.filter(([offset, size]) => /^\d+$/.test(offset) && /^\d+$/.test(size));
      expect(fixed.length).toBeGreaterThanOrEqual(2); // at least type and flags
      for (const [offset, size, , field] of fixed) {
        expect(starts, `${name} ${field} at ${offset}`).toContainEqual({
          at: Number(offset),
          size: Number(size),
        });
      }
    });
  }
});
