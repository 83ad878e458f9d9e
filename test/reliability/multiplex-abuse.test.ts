/**
 * Attacks on the per-connection resources bigup.2 adds (SPEC.md 16.7): streams open at once
 * (`maxStreamsPerConnection`, which also bounds the OPENs pending per connection) and upload slots
 * taken by many streams over many connections (`maxUploads`). Each test ends with a well-behaved
 * client being served.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Capability, Errors } from '../../protocol/index.js';
import { SERVER_DEFAULTS } from '../../server/index.js';
import { RawClientV2 } from '../helpers/protocol-client-v2.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

async function wellBehaved(wsUrl: string): Promise<void> {
  const client = await RawClientV2.connect(wsUrl);
  client.hello();
  client.open(1, { fileSize: 3 });
  await client.expect(1, 'accept');
  client.data(1, 0, Uint8Array.of(1, 2, 3));
  client.complete(1);
  await client.expect(1, 'result');
  client.close();
}

describe('abuse: bigup.2 streams are bounded per connection and in all', () => {
  let tmp: TempDir;
  let server: TestServer;

  beforeEach(async () => {
    tmp = await makeTempDir();
  });

  afterEach(async () => {
    await server.close();
    await tmp.cleanup();
  });

  it('asking for 2^32-1 streams gets the default; one OPEN past it closes the connection (LIMIT_EXCEEDED)', async () => {
    server = await startServer({ dir: tmp.path });
    const bound = SERVER_DEFAULTS.maxStreamsPerConnection;
    expect(bound).toBe(16);
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello([{ id: Capability.MULTIPLEX, value: 0xffff_ffff }]);
    const welcome = await client.waitFor((f) => f.message.type === 'welcome');
    expect(welcome.message).toEqual({
      type: 'welcome',
      capabilities: [{ id: Capability.MULTIPLEX, value: bound }],
    });
    // Every stream holds an upload that never receives a byte: pending OPENs, then held slots.
    for (let stream = 1; stream <= bound + 1; stream++) client.open(stream, { fileSize: 1024 });
    const refusal = await client.waitFor((f) => f.message.type === 'error');
    expect(refusal.stream).toBe(0);
    expect(refusal.message).toMatchObject({ code: Errors.LIMIT_EXCEEDED.code, fatal: true });
    expect((await client.closed).code).toBe(1008);
    await wellBehaved(server.wsUrl);
  });

  it('streams over many connections cannot take more than maxUploads slots; refusals end streams, not connections', async () => {
    server = await startServer({ dir: tmp.path, maxUploads: 8, maxStreamsPerConnection: 6 });
    const clients = await Promise.all([1, 2, 3].map(() => RawClientV2.connect(server.wsUrl)));
    for (const client of clients) {
      client.hello();
      for (let stream = 1; stream <= 6; stream++) client.open(stream, { fileSize: 1024 });
    }
    const answers = await Promise.all(
      clients.flatMap((client) =>
        [1, 2, 3, 4, 5, 6].map((stream) =>
          client.waitFor(
            (f) =>
              f.stream === stream && (f.message.type === 'accept' || f.message.type === 'error'),
          ),
        ),
      ),
    );
    const accepted = answers.filter((a) => a.message.type === 'accept').length;
    const refused = answers.filter(
      (a) => a.message.type === 'error' && a.message.code === Errors.TOO_MANY_UPLOADS.code,
    ).length;
    expect(accepted).toBe(8);
    expect(refused).toBe(18 - 8);
    for (const client of clients) expect(client.ws.readyState).toBe(client.ws.OPEN);
    for (const client of clients) client.destroy();
    await wellBehaved(server.wsUrl);
  });

  it('a flood of OPENs over several-stream connections: past multiplexedOpensPerSecond they are refused (TOO_MANY_UPLOADS)', async () => {
    server = await startServer({
      dir: tmp.path,
      multiplexedOpensPerSecond: 5,
      opensPerSecond: 1000,
      openBurst: 1000,
    });
    const client = await RawClientV2.connect(server.wsUrl);
    // Asking for 2 streams is enough to be counted against this bucket, not opensPerSecond.
    client.hello([{ id: Capability.MULTIPLEX, value: 2 }]);
    let accepted = 0;
    let refused = 0;
    const started = Date.now();
    for (let pair = 0; pair < 30; pair++) {
      const streams = [2 * pair + 1, 2 * pair + 2];
      for (const stream of streams) client.open(stream, { fileSize: 10 });
      for (const stream of streams) {
        const answer = await client.waitFor(
          (f) => f.stream === stream && (f.message.type === 'accept' || f.message.type === 'error'),
        );
        if (answer.message.type === 'accept') {
          accepted++;
          client.terminate(stream);
          await client.expect(stream, 'terminated');
        } else if (answer.message.type === 'error') {
          expect(answer.message.code).toBe(Errors.TOO_MANY_UPLOADS.code);
          refused++;
        }
      }
    }
    // A burst of 5, plus what the bucket refilled while the 60 OPENs ran (however slow the disk).
    const seconds = (Date.now() - started) / 1000;
    expect(accepted).toBeGreaterThanOrEqual(5);
    expect(accepted).toBeLessThanOrEqual(5 + Math.ceil(5 * seconds) + 1);
    expect(refused).toBe(60 - accepted);
    expect(refused).toBeGreaterThan(0);
    client.close();
    // The bound is per address, and the well-behaved client shares this one: once it refilled.
    await new Promise((resolve) => setTimeout(resolve, 400));
    await wellBehaved(server.wsUrl);
  });

  it('guessing tokens on one connection: past maxRefusedMessages refused authorizations the connection closes', async () => {
    server = await startServer({
      dir: tmp.path,
      // Each upload is authorized by its OPEN's token (an app's per-upload check).
      authorizeUpload: ({ token }) => token === 'the-right-one',
      maxRefusedMessages: 10,
    });
    const client = await RawClientV2.connect(server.wsUrl);
    client.hello();
    let stream = 1;
    const refusals: number[] = [];
    for (; stream <= 40 && client.ws.readyState === client.ws.OPEN; stream += 1) {
      client.open(stream, { fileSize: 10, token: `guess-${stream}` });
      const answer = await client
        .waitFor((f) => (f.stream === stream || f.stream === 0) && f.message.type === 'error')
        .catch(() => undefined);
      if (!answer || answer.message.type !== 'error') break;
      refusals.push(answer.message.code);
      if (answer.stream === 0) break;
    }
    expect(refusals.slice(0, 10).every((code) => code === Errors.UNAUTHORIZED.code)).toBe(true);
    expect(refusals[10]).toBe(Errors.LIMIT_EXCEEDED.code);
    expect((await client.closed).code).toBe(1008);
    await wellBehavedWithToken(server.wsUrl, 'the-right-one');
  });
});

async function wellBehavedWithToken(wsUrl: string, token: string): Promise<void> {
  const client = await RawClientV2.connect(wsUrl);
  client.hello();
  client.open(1, { fileSize: 3, token });
  await client.expect(1, 'accept');
  client.data(1, 0, Uint8Array.of(1, 2, 3));
  client.complete(1);
  await client.expect(1, 'result');
  client.close();
}
