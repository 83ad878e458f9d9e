/**
 * Hostile input against a live child-process server: a seeded codec fuzzer (random and mutated
 * frames), WebSocket-level limits, and the handshake / id-as-path attacks. The server must never
 * crash, must answer every input with a registry ERROR or a close code, and must keep its memory
 * bounded; refusals must not allocate the size a client claims.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Errors,
  encodeComplete,
  encodeData,
  encodeOpen,
  encodeResume,
  encodeTerminate,
  errorByCode,
  loadHasher,
  type Hasher,
} from '../../protocol/index.js';
import { MAX_MESSAGE_BEFORE_ACCEPT } from '../../server/session.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startChildServer, startServer, type ChildServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';
import { recordFigures } from './lib/figures.js';
import { rssBytes, sampleRss } from './lib/proc.js';
import { frame, rawConnect } from './lib/raw-ws.js';
import { seeded, suiteSeed, type Rng } from './lib/rng.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CASES = 2500;
/** Close codes a server may end a hostile connection with (RFC 6455 and SPEC.md section 11). */
const CLOSE_CODES = new Set([
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 4001, 4002, 4003, 4004,
]);

function mutate(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes);
  switch (rng.int(0, 6)) {
    case 0: // flip bytes
      for (let n = rng.int(1, 4); n > 0; n--)
        out[rng.int(0, out.byteLength - 1)] ^= 1 << rng.int(0, 7);
      return out;
    case 1: // truncate
      return out.subarray(0, rng.int(0, Math.max(0, out.byteLength - 1)));
    case 2: // trailing garbage
      return Buffer.concat([out, Buffer.from(rng.bytes(rng.int(1, 64)))]);
    case 3: // a length or u16 field blown up
      if (out.byteLength > 4) out.writeUInt16BE(0xffff, rng.int(2, out.byteLength - 2));
      return out;
    case 4: // a u64 above 2^53 at a random 8-byte position
      if (out.byteLength >= 10) out.writeUInt32BE(0xffffffff, rng.int(2, out.byteLength - 8));
      return out;
    case 5: // reserved flag bits
      if (out.byteLength > 1) out[1] = rng.int(1, 255);
      return out;
    default: // random type byte
      out[0] = rng.int(0, 255);
      return out;
  }
}

function hostileOpen(rng: Rng): Uint8Array {
  const metadata: Record<string, string> = JSON.parse(
    '{"__proto__":"x","constructor":"y","toString":"z"}',
  ) as Record<string, string>;
  const bytes = encodeOpen({
    fileSize: rng.int(0, 4 * MiB),
    chunkSize: rng.pick([0, 1, 65_536, 0xffffffff]),
    name: rng.pick([
      'a.bin',
      '../../etc/passwd',
      '/abs/path',
      'C:\\x',
      'x'.repeat(1024),
      '\u202e.exe',
    ]),
    contentType: '',
    token: '',
    metadata: rng.chance(0.5) ? metadata : {},
  });
  if (rng.chance(0.2)) {
    // Invalid UTF-8 in the name: overwrite its first bytes with a lone continuation byte and 0xff.
    const out = Buffer.from(bytes);
    out[24] = 0x80;
    if (out.byteLength > 25) out[25] = 0xff;
    return out;
  }
  return bytes;
}

/** What the fuzzer saw for one input. */
type Outcome = 'error' | 'close' | 'reply' | 'silent';

async function fuzzCase(url: string, rng: Rng, hasher: Hasher): Promise<Outcome> {
  const client = await RawClient.connect(url);
  try {
    const kind = rng.int(0, 9);
    let needsUpload = false;
    let payload: Uint8Array | string;
    if (kind === 0) payload = rng.chance(0.5) ? 'hello' : '\u0000{"type":"open"}';
    else if (kind === 1) payload = rng.bytes(rng.int(1, 300));
    else if (kind === 2) payload = hostileOpen(rng);
    else if (kind === 3) payload = mutate(rng, hostileOpen(rng));
    else if (kind === 4)
      payload = mutate(
        rng,
        encodeResume({ uploadId: rng.bytes(16), secret: rng.bytes(32), token: '' }),
      );
    else if (kind === 5)
      payload = mutate(rng, rng.pick([encodeComplete(), encodeComplete(123n), encodeTerminate()]));
    else {
      // DATA against a real upload: valid header with bad fields, or mutated.
      needsUpload = true;
      const body = rng.bytes(rng.pick([1, 100, 65_536, 65_537]));
      const offset = rng.pick([0, 65_536, 7, 2 ** 53 - 1, 2 ** 40]);
      const hash = rng.chance(0.5) ? hasher.h64(body) : 0n;
      const { header } = encodeData(Math.min(offset, 2 ** 53 - 1 - body.byteLength), hash, body);
      const whole = Buffer.concat([header, body]);
      payload = kind >= 8 ? mutate(rng, whole) : whole;
    }
    if (needsUpload) {
      client.open({ fileSize: 256 * KiB, chunkSize: 65_536 });
      await client.expect('accept', 5000);
    }
    client.send(payload);
    const answer = await Promise.race([
      client.next(3000).then(
        (m) => {
          if (m.type === 'error') {
            // Every code the server sends is in the registry, with the registry's flags.
            const def = errorByCode(m.code);
            expect(def, `unregistered error code 0x${m.code.toString(16)}`).toBeDefined();
            expect(m.fatal).toBe(def!.fatal);
            return 'error' as const;
          }
          return 'reply' as const;
        },
        () => 'silent' as const,
      ),
    ]);
    if (answer === 'silent' && client.ws.readyState >= 2) {
      const { code } = await client.closed;
      expect(CLOSE_CODES.has(code), `close code ${code}`).toBe(true);
      return 'close';
    }
    return answer;
  } finally {
    client.destroy();
  }
}

describe('hostile input', () => {
  let tmp: TempDir;
  let child: ChildServer;
  let hasher: Hasher;
  const figures: Record<string, number | string> = {};
  beforeAll(async () => {
    hasher = await loadHasher();
    tmp = await makeTempDir('bigup-rel-hostile-');
    await mkdir(join(tmp.path, 'data'));
    // The fuzzer opens thousands of uploads from one address: the quotas and the OPEN rate that
    // would stop it (abuse.test.ts) are lifted, so every input reaches the codec and the session.
    child = await startChildServer([
      '--dir',
      join(tmp.path, 'data'),
      '--max-size',
      '64MiB',
      '--no-preallocate',
      '--max-connections',
      '400',
      '--max-uploads',
      '64',
      '--max-chunk-size',
      '1MiB',
      '--idle-timeout',
      '5s',
      '--max-unfinished-per-client',
      '1000000',
      '--max-unfinished',
      '1000000',
      '--max-committed-per-client',
      '1TiB',
      '--opens-per-second',
      '0',
    ]);
  });
  afterAll(async () => {
    child.kill('SIGKILL');
    await child.exited;
    await tmp.cleanup();
    recordFigures('hostile', figures);
  });

  it(`codec fuzz: ${CASES} seeded random and mutated inputs, zero crashes, every one answered, memory bounded`, async () => {
    const rng = seeded(suiteSeed(0x66757a7a));
    const pid = child.process.pid!;
    const before = rssBytes(pid);
    const sampler = sampleRss(pid);
    const outcomes: Record<Outcome, number> = { error: 0, close: 0, reply: 0, silent: 0 };
    const started = Date.now();
    let next = 0;
    // Eight connections at a time; each case gets its own connection (most inputs are fatal).
    await Promise.all(
      [...Array(8)].map(async () => {
        while (next < CASES) {
          next++;
          outcomes[await fuzzCase(child.wsUrl, rng, hasher)]++;
        }
      }),
    );
    const peak = sampler.stop();
    expect(outcomes.silent, 'inputs the server neither answered nor closed on').toBe(0);
    expect(child.process.exitCode, 'server process exited').toBeNull();
    expect((await fetch(`${child.url}/healthz`)).status).toBe(200);
    expect(peak - before, 'server RSS growth during the fuzz').toBeLessThan(150 * MiB);
    Object.assign(figures, {
      seed: rng.seed,
      fuzzCases: CASES,
      answeredWithError: outcomes.error,
      answeredWithClose: outcomes.close,
      answeredWithReply: outcomes.reply,
      unanswered: outcomes.silent,
      crashes: 0,
      fuzzRssBeforeMiB: Math.round(before / MiB),
      fuzzRssPeakMiB: Math.round(peak / MiB),
      fuzzSeconds: Math.round((Date.now() - started) / 100) / 10,
    });
  }, 120_000);

  it('a frame above maxPayload is refused at its header (1009) without buffering it', async () => {
    const pid = child.process.pid!;
    const before = rssBytes(pid);
    for (const claimed of [BigInt(MiB + 18 + 1), 2n ** 40n, 2n ** 62n]) {
      const ws = await rawConnect(Number(new URL(child.url).port));
      expect(ws.status).toBe(101);
      ws.socket.write(frame(0x2, new Uint8Array(16), { claimedLength: BigInt(claimed) }));
      expect([1009, 1002]).toContain(await ws.closed);
    }
    expect(rssBytes(pid) - before).toBeLessThan(32 * MiB);
    figures.oversizeFramesRefused = 3;
  });

  it('5,000 tiny fragments form one DATA message that is acked; fragments past the limit close 1009', async () => {
    const port = Number(new URL(child.url).port);
    const ws = await rawConnect(port);
    ws.socket.write(
      frame(
        0x2,
        encodeOpen({
          fileSize: 65_536,
          chunkSize: 65_536,
          name: 'f',
          contentType: '',
          token: '',
          metadata: {},
        }),
      ),
    );
    // DATA only after ACCEPT (DATA while the OPEN is being answered is UNEXPECTED_MESSAGE).
    for (let t = 0; !ws.frames.some((f) => f.payload[0] === 0x03) && t < 500; t++)
      await new Promise((r) => setTimeout(r, 10));
    const body = randomBytes(65_536);
    const { header } = encodeData(0, hasher.h64(body), body);
    const message = Buffer.concat([header, body]);
    const parts = 5000;
    const size = Math.floor(message.byteLength / parts);
    const frames: Buffer[] = [];
    for (let i = 0; i * size < message.byteLength; i++) {
      frames.push(
        frame(i === 0 ? 0x2 : 0x0, message.subarray(i * size, (i + 1) * size), {
          fin: (i + 1) * size >= message.byteLength,
        }),
      );
    }
    ws.socket.write(Buffer.concat(frames));
    const deadline = Date.now() + 5000;
    while (!ws.frames.some((f) => f.payload[0] === 0x11) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(ws.frames.map((f) => f.payload[0])).toEqual([0x03, 0x11]);
    ws.socket.destroy();
    // Fragments adding up past the limit (before ACCEPT: MAX_MESSAGE_BEFORE_ACCEPT, plus a bigup.2
    // stream header at most). Only just past it: the server has then read every byte sent when it
    // closes, so no reset over unread bytes races its close frame (seen as 1006 on a loaded host).
    const flood = await rawConnect(port);
    const chunks = [
      frame(0x2, Buffer.alloc(MAX_MESSAGE_BEFORE_ACCEPT - 100), { fin: false }),
      frame(0x0, Buffer.alloc(50), { fin: false }),
      frame(0x0, Buffer.alloc(200), { fin: false }),
    ];
    flood.socket.write(Buffer.concat(chunks));
    expect(await flood.closed).toBe(1009);
    figures.fragmentsInOneMessage = frames.length;
  });

  it('permessage-deflate is declined; a compressed (RSV1) frame is a protocol error', async () => {
    const ws = await rawConnect(Number(new URL(child.url).port), {
      headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits' },
    });
    expect(ws.status).toBe(101);
    expect(ws.headers['sec-websocket-extensions']).toBeUndefined();
    ws.socket.write(frame(0x2, new Uint8Array([0x20, 0]), { rsv: 4 }));
    expect(await ws.closed).toBe(1002);
  });

  it('more uploads than allowed: TOO_MANY_UPLOADS; a size above max or above free space: refused, nothing allocated', async () => {
    // A quiet server of its own, so no other test's uploads move the counts.
    const dataDir = join(tmp.path, 'limits');
    const limited = await startServer({
      dir: dataDir,
      maxUploads: 4,
      maxUploadSize: 64 * MiB,
      logLevel: false,
    });
    try {
      const holders: RawClient[] = [];
      for (let i = 0; i < 4; i++) {
        const c = await RawClient.connect(limited.wsUrl);
        c.open({ fileSize: 65_536 });
        await c.expect('accept');
        holders.push(c);
      }
      const fifth = await RawClient.connect(limited.wsUrl);
      fifth.open({ fileSize: 65_536 });
      await fifth.expectError(Errors.TOO_MANY_UPLOADS.code);
      expect((await fifth.closed).code).toBe(1000);
      for (const c of holders) c.destroy();

      const entries = async () => (await readdir(join(dataDir, 'uploads'))).length;
      const before = await entries();
      const big = await RawClient.connect(limited.wsUrl);
      big.open({ fileSize: Number.MAX_SAFE_INTEGER });
      await big.expectError(Errors.FILE_TOO_LARGE.code);
      expect(await entries()).toBe(before);
      // Above free space but under the max: a second server with the default 100 GiB max and a
      // claim larger than the disk.
      const free = (await statfs(dataDir)).bavail * (await statfs(dataDir)).bsize;
      const server = await startServer({
        dir: join(tmp.path, 'data2'),
        maxUploadSize: Number.MAX_SAFE_INTEGER,
        logLevel: false,
      });
      try {
        const c = await RawClient.connect(server.wsUrl);
        c.open({ fileSize: free * 4 });
        await c.expectError(Errors.INSUFFICIENT_STORAGE.code);
        expect(await readdir(join(tmp.path, 'data2', 'uploads'))).toEqual([]);
        c.destroy();
      } finally {
        await server.close();
      }
      figures.limitRefusals = 3;
    } finally {
      await limited.close();
    }
  });
});

describe('handshake and ids as paths', () => {
  it('Origin, token, foreign upload ids and path-like ids: refused before the upgrade or 404, no oracle, canary untouched', async () => {
    const tmp = await makeTempDir('bigup-rel-hs-');
    const canary = join(tmp.path, 'canary.txt');
    await writeFile(canary, 'do not touch');
    const canaryBefore = await stat(canary);
    const server = await startServer({
      dir: join(tmp.path, 'data'),
      token: 'right-token',
      origins: ['https://app.example'],
      logLevel: false,
    });
    let refusals = 0;
    try {
      const port = Number(new URL(server.url).port);
      const upgrade = async (headers: Record<string, string>, path = '/upload') =>
        (await rawConnect(port, { headers, path })).status;
      expect(await upgrade({ Authorization: 'Bearer right-token' })).toBe(101); // no Origin: not a browser
      expect(
        await upgrade({ Authorization: 'Bearer right-token', Origin: 'https://app.example' }),
      ).toBe(101);
      expect(
        await upgrade({ Authorization: 'Bearer right-token', Origin: 'https://evil.example' }),
      ).toBe(403);
      expect(await upgrade({ Authorization: 'Bearer right-token', Origin: 'null' })).toBe(403);
      expect(await upgrade({})).toBe(401);
      expect(await upgrade({ Authorization: 'Bearer wrong' })).toBe(403);
      expect(await upgrade({}, '/upload?token=wrong')).toBe(403);
      refusals += 5;

      // Another user's upload: wrong secret and unknown id are the same NOT_FOUND.
      const owner = await RawClient.connect(server.wsUrl, { token: 'right-token' });
      owner.open({ fileSize: 65_536, name: 'mine.bin' });
      const accept = await owner.expect('accept');
      const texts: string[] = [];
      for (const [id, secret] of [
        [accept.uploadId, randomBytes(32)],
        [randomBytes(16), randomBytes(32)],
      ] as const) {
        const other = await RawClient.connect(server.wsUrl, { token: 'right-token' });
        other.resume(id, secret);
        texts.push((await other.expectError(Errors.NOT_FOUND.code)).message);
        other.destroy();
      }
      expect(texts[0]).toBe(texts[1]);
      const hex = Buffer.from(accept.uploadId).toString('hex');

      // HTTP state routes: no auth, a wrong secret, unknown, malformed and path-like ids all
      // answer the same 404.
      const bodies = new Set<string>();
      const ids = [
        hex,
        '0'.repeat(32),
        '../x',
        '..%2Fx',
        '%2e%2e%2f%2e%2e%2fcanary.txt',
        '..%2F..%2Fcanary.txt',
        '%2Fetc%2Fpasswd',
        `${encodeURIComponent(canary)}`,
        'a'.repeat(4096),
        hex.toUpperCase(),
      ];
      for (const id of ids) {
        for (const method of ['GET', 'DELETE']) {
          const res = await fetch(`${server.url}/uploads/${id}`, {
            method,
            headers: { 'Bigup-Secret': 'ab'.repeat(32) },
          });
          if (id.length > 1000) {
            // Refused by the HTTP layer before routing (414), whatever the id: no oracle either.
            expect([404, 414], `${method} 4 KB id`).toContain(res.status);
          } else {
            expect(res.status, `${method} /uploads/${id.slice(0, 40)}`).toBe(404);
            // The real id, an unknown id and a malformed hex id reach the route: their answers
            // must be identical (path-shaped ids may get the router's own 404, existence-blind).
            if (/^[0-9a-zA-Z]+$/.test(id)) bodies.add(`${method} ${await res.text()}`);
          }
          refusals++;
        }
      }
      expect(bodies.size, 'different 404 bodies would be an existence oracle').toBe(2);
      for (const path of [
        '/..%2Fcanary.txt',
        '/..%2F..%2Fcanary.txt',
        '/%2e%2e/canary.txt',
        `/${encodeURIComponent(canary)}`,
      ]) {
        const res = await fetch(`${server.url}${path}`);
        expect(res.status, path).toBe(404);
        expect(await res.text()).not.toContain('do not touch');
      }
      // The owner still owns it; the canary is untouched.
      owner.destroy();
      expect(await readFile(canary, 'utf8')).toBe('do not touch');
      expect((await stat(canary)).mtimeMs).toBe(canaryBefore.mtimeMs);
    } finally {
      await server.close();
      await tmp.cleanup();
    }
    recordFigures('handshake', {
      refusals,
      distinct404BodiesPerMethod: 1,
      canaryTouched: false,
      crashes: 0,
    });
  });
});
