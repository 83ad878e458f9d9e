/**
 * Issue 13, point 8: upload tickets (HMAC-signed, expiring, with size/name/type claims and a
 * subject for quotas) in place of a shared server token, and an admin token for management.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Errors, bytesToHex } from '../../protocol/index.js';
import { mintUploadTicket, verifyUploadTicket } from '../../server/index.js';
import { RawClient } from '../helpers/protocol-client.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, type TempDir } from '../helpers/tmp.js';

const SECRET = 'k'.repeat(40);
const OTHER = 'o'.repeat(40);
const MiB = 1024 * 1024;

describe('upload tickets: mint and verify', () => {
  it('verifies its own tickets, and nothing tampered, expired or signed with another secret', () => {
    const ticket = mintUploadTicket(SECRET, { sub: 'user-1', maxSize: 10 });
    expect(verifyUploadTicket(ticket, [SECRET])).toMatchObject({ sub: 'user-1', maxSize: 10 });
    expect(verifyUploadTicket(ticket, [OTHER, SECRET])).toBeDefined(); // rotation: any listed secret
    expect(verifyUploadTicket(ticket, [OTHER])).toBeUndefined();
    const [prefix, body, sig] = ticket.split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'user-1', maxSize: 1e12, exp: 9e9 })).toString(
      'base64url',
    );
    expect(verifyUploadTicket(`${prefix}.${forged}.${sig}`, [SECRET])).toBeUndefined();
    expect(verifyUploadTicket(`${prefix}.${body}.${sig.slice(0, -2)}`, [SECRET])).toBeUndefined();
    expect(
      verifyUploadTicket(mintUploadTicket(SECRET, { exp: Math.floor(Date.now() / 1000) - 1 }), [
        SECRET,
      ]),
    ).toBeUndefined();
    expect(verifyUploadTicket('not a ticket', [SECRET])).toBeUndefined();
    expect(() => mintUploadTicket('short', {})).toThrow(/32/);
  });
});

describe('upload tickets and the admin token against the server', () => {
  let tmp: TempDir;
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await tmp.cleanup();
  });
  const serve = async (): Promise<TestServer> => {
    tmp = await makeTempDir('bigup-tickets-');
    server = await startServer({
      dir: join(tmp.path, 'data'),
      ticketSecret: SECRET,
      adminToken: 'admin-token',
      maxCommittedBytesPerClient: 3 * MiB,
      preallocate: false,
    });
    return server;
  };

  it('the upgrade needs a valid ticket; OPEN is held to its claims', async () => {
    const srv = await serve();
    expect((await RawClient.refused(srv.wsUrl)).status).toBe(401);
    expect(
      (await RawClient.refused(srv.wsUrl, { token: mintUploadTicket(OTHER, {}) })).status,
    ).toBe(403);
    expect(
      (await RawClient.refused(srv.wsUrl, { token: mintUploadTicket(SECRET, { exp: 1 }) })).status,
    ).toBe(403);
    const ticket = mintUploadTicket(SECRET, {
      sub: 'alice',
      maxSize: 2 * MiB,
      name: 'report.pdf',
      type: 'application/pdf',
    });
    const tooBig = await RawClient.connect(srv.wsUrl, {
      headers: { Authorization: `Bearer ${ticket}` },
    });
    tooBig.open({ fileSize: 3 * MiB, name: 'report.pdf', contentType: 'application/pdf' });
    await tooBig.expectError(Errors.FILE_TOO_LARGE.code);
    const otherName = await RawClient.connect(srv.wsUrl, { token: ticket });
    otherName.open({ fileSize: 10, name: 'evil.exe', contentType: 'application/pdf' });
    await otherName.expectError(Errors.UNAUTHORIZED.code);
    const ok = await RawClient.connect(srv.wsUrl, { token: ticket });
    ok.open({ fileSize: 2 * MiB, name: 'report.pdf', contentType: 'application/pdf' });
    await ok.expect('accept');
    ok.close();
  });

  it("a subject's quota spans its tickets and connections", async () => {
    const srv = await serve();
    const open = async (sub: string, size: number) => {
      const client = await RawClient.connect(srv.wsUrl, {
        token: mintUploadTicket(SECRET, { sub }),
      });
      client.open({ fileSize: size });
      const answer = await client.next();
      client.destroy();
      return answer.type === 'accept' ? 'accept' : answer.type === 'error' ? answer.code : -1;
    };
    expect(await open('bob', 2 * MiB)).toBe('accept');
    expect(await open('bob', 2 * MiB)).toBe(Errors.INSUFFICIENT_STORAGE.code); // 4 MiB > 3 MiB quota
    expect(await open('carol', 2 * MiB)).toBe('accept'); // someone else's quota
  });

  it('a ticket or an upload secret manages one upload at most; the admin token manages any', async () => {
    const srv = await serve();
    const ticket = mintUploadTicket(SECRET, { sub: 'dave' });
    const client = await RawClient.connect(srv.wsUrl, { token: ticket });
    client.open({ fileSize: 10 });
    const accept = await client.expect('accept');
    client.close();
    const id = bytesToHex(accept.uploadId);
    const get = (headers: Record<string, string>) =>
      fetch(`${srv.url}/uploads/${id}`, { headers }).then((r) => r.status);
    expect(await get({ Authorization: `Bearer ${ticket}` })).toBe(404);
    expect(await get({ 'Bigup-Secret': bytesToHex(accept.secret) })).toBe(200);
    expect(await get({ Authorization: 'Bearer admin-token' })).toBe(200);
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(404); // metrics off
    expect((await fetch(`${srv.url}/healthz`)).status).toBe(401);
    expect(
      (await fetch(`${srv.url}/healthz`, { headers: { Authorization: 'Bearer admin-token' } }))
        .status,
    ).toBe(200);
  });
});
