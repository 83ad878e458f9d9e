import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseServeArgs } from '../../cli/serve.js';
import { UsageError } from '../../cli/units.js';
import { startChildServer } from '../helpers/server.js';
import { makeTempDir } from '../helpers/tmp.js';

describe('big-uploader serve', () => {
  it('parses options with units, and environment variables with the command line winning', () => {
    const parsed = parseServeArgs(
      [
        '--port',
        '4000',
        '--max-size',
        '10GiB',
        '--ttl',
        '2h',
        '--origin',
        'https://a.example',
        '--origin',
        'https://b.example',
        '--durable',
        '--window',
        '8MiB',
        '--max-uploads-per-address',
        '8',
        '--instant-upload',
        'address',
      ],
      {
        BIG_UPLOADER_PORT: '5000',
        BIG_UPLOADER_TOKEN: 't1,t2',
        BIG_UPLOADER_IDLE_TIMEOUT: '90s',
        BIG_UPLOADER_TRUST_PROXY: '10.0.0.5, 10.1.0.0/16',
      },
    );
    if (parsed.help) throw new Error('unexpected help');
    expect(parsed.port).toBe(4000);
    expect(parsed.host).toBe('127.0.0.1');
    expect(parsed.app).toMatchObject({
      maxUploadSize: 10 * 1024 ** 3,
      ttl: 2 * 3_600_000,
      origins: ['https://a.example', 'https://b.example'],
      durable: true,
      window: 8 * 1024 * 1024,
      token: ['t1', 't2'],
      idleTimeout: 90_000,
      maxUploadsPerAddress: 8,
      instantUpload: 'address',
      trustProxy: ['10.0.0.5', '10.1.0.0/16'],
    });
  });

  it('parses the registry options of the object store', () => {
    const parsed = parseServeArgs(
      [
        '--store',
        's3://bkt/p',
        '--registry',
        'redis://r:6379/0',
        '--registry-max-memory',
        '256MiB',
      ],
      { BIG_UPLOADER_REGISTRY_TIMEOUT: '2s' },
    );
    if (parsed.help) throw new Error('unexpected help');
    expect(parsed.backend?.registry).toEqual({
      url: 'redis://r:6379/0',
      commandTimeout: 2000,
      maxMemory: 256 * 1024 * 1024,
    });
    expect(() =>
      parseServeArgs(['--store', 's3://bkt', '--registry-max-memory', '1GiB'], {}),
    ).toThrow(/needs --registry/);
  });

  it('fails with a UsageError naming the option', () => {
    expect(() => parseServeArgs(['--max-size', 'lots'], {})).toThrow(UsageError);
    expect(() => parseServeArgs(['--max-size', 'lots'], {})).toThrow(/--max-size/);
    expect(() => parseServeArgs(['--bogus'], {})).toThrow(UsageError);
    expect(() => parseServeArgs(['--instant-upload', 'everyone'], {})).toThrow(/--instant-upload/);
    const off = parseServeArgs(['--instant-upload', 'off'], {});
    expect(!off.help && off.app.instantUpload).toBe(false);
    expect(parseServeArgs(['--help'], {})).toEqual({ help: true });
  });

  it('refuses a non-loopback address without a token, unless --insecure-no-token is given', async () => {
    const tmp = await makeTempDir();
    try {
      await expect(startChildServer(['--dir', tmp.path, '--host', '0.0.0.0'])).rejects.toThrow(
        /exited \(2\)[\s\S]*refusing to listen on 0\.0\.0\.0 without a token/,
      );
    } finally {
      await tmp.cleanup();
    }
  });

  it('with --insecure-no-token warns loudly, serves the page, and still refuses foreign Host names', async () => {
    const tmp = await makeTempDir();
    const child = await startChildServer([
      '--dir',
      tmp.path,
      '--host',
      '0.0.0.0',
      '--insecure-no-token',
    ]);
    try {
      expect(child.output()).toMatch(/WARNING.*WITHOUT a token/s);
      const base = child.url.replace('0.0.0.0', '127.0.0.1');
      const page = await fetch(base);
      expect(page.status).toBe(200);
      // The built demo page: the component wired to this server.
      expect(await page.text()).toMatch(/<big-uploader[\s>]/);
      // A rebound name reaches the port but is not answered.
      const port = new URL(base).port;
      const rebound = await rawHttp(
        Number(port),
        `GET /healthz HTTP/1.1\r\nHost: attacker.example:${port}\r\nConnection: close\r\n\r\n`,
      );
      expect(rebound).toMatch(/^HTTP\/1\.1 403/);
      expect(rebound).toMatch(/HOST_NOT_ALLOWED/);
    } finally {
      child.kill('SIGTERM');
      expect(await child.exited).toBe(0);
      await tmp.cleanup();
    }
  });
});

/** One raw HTTP exchange (fetch cannot set Host). */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.write(request);
  });
}
