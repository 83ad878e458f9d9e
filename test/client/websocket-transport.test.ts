/**
 * The browser transport's seam: DATA handed over with `sendChunk` goes out as the core's header
 * plus the named range of the file (a Blob slice), without the transport reading the header.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BrowserWebSocketTransport,
  chooseTransport,
  sendsBytesRead,
} from '../../client/browser/index.js';
import { HeaderSize, encodeData, loadHasher } from '../../protocol/index.js';

class FakeSocket {
  static readonly OPEN = 1;
  readonly OPEN = 1;
  readonly CONNECTING = 0;
  readyState = 1;
  binaryType = 'blob';
  protocol = 'bigup.1';
  bufferedAmount = 0;
  readonly sent: Array<Uint8Array | Blob> = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    sockets.push(this);
  }
  send(data: Uint8Array | Blob): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = 3;
  }
}
const sockets: FakeSocket[] = [];

describe('BrowserWebSocketTransport', () => {
  it('sends a chunk as header + Blob slice of the named range when it has the file, else the core bytes', async () => {
    const hasher = await loadHasher();
    const file = new Uint8Array(1000).map((_, i) => i % 251);
    const blob = new Blob([file]);
    const payload = file.slice(200, 500);
    const { header, payload: body } = encodeData(200, hasher.h64(payload), payload);
    const message = new Uint8Array([...header, ...body]);
    const handlers = {
      onOpen: () => undefined,
      onMessage: () => undefined,
      onClose: () => undefined,
    };
    const withFile = new BrowserWebSocketTransport(FakeSocket as unknown as typeof WebSocket, {
      dataFrom: blob,
    }).connect('ws://x/upload', ['bigup.1'], handlers);
    withFile.sendChunk!(message, 200, 500);
    const sent = sockets.at(-1)!.sent[0];
    expect(sent).toBeInstanceOf(Blob);
    const bytes = new Uint8Array(await (sent as Blob).arrayBuffer());
    expect(bytes.byteLength).toBe(HeaderSize.DATA + 300);
    expect([...bytes]).toEqual([...message]);
    const plain = new BrowserWebSocketTransport(FakeSocket as unknown as typeof WebSocket).connect(
      'ws://x/upload',
      ['bigup.1'],
      handlers,
    );
    plain.sendChunk!(message, 200, 500);
    expect(sockets.at(-1)!.sent[0]).toBe(message);
  });
});

describe('chooseTransport: what the WebSocket sends, by engine', () => {
  afterEach(() => vi.unstubAllGlobals());

  async function sentFor(nav: object): Promise<Uint8Array | Blob> {
    vi.stubGlobal('navigator', nav);
    vi.stubGlobal('WebSocket', FakeSocket);
    const hasher = await loadHasher();
    const file = new Uint8Array(1000).map((_, i) => i % 251);
    const payload = file.slice(200, 500);
    const { header, payload: body } = encodeData(200, hasher.h64(payload), payload);
    const message = new Uint8Array([...header, ...body]);
    const connection = chooseTransport('websocket', new Blob([file])).connect(
      'ws://x/upload',
      ['bigup.1'],
      { onOpen: () => undefined, onMessage: () => undefined, onClose: () => undefined },
    );
    connection.sendChunk!(message, 200, 500);
    return sockets.at(-1)!.sent[0];
  }

  it('Chromium (navigator.userAgentData): the bytes the core read, not a second read of the file', async () => {
    expect(sendsBytesRead({ userAgentData: { brands: [] } })).toBe(true);
    expect(await sentFor({ userAgentData: { brands: [] } })).toBeInstanceOf(Uint8Array);
  });

  it('other engines (no userAgentData): a Blob slice of the file', async () => {
    expect(sendsBytesRead({})).toBe(false);
    expect(sendsBytesRead(undefined)).toBe(false);
    expect(await sentFor({})).toBeInstanceOf(Blob);
  });
});
