/**
 * FallbackTransport (client/browser/transports.ts, `auto`): the first transport until it fails
 * before any answer came through it, then the second for good. A close the client itself asked
 * for (a pause or cancel while the WebSocket is still connecting, which a browser reports as 1006)
 * is not such a failure: the next connection still tries the first transport.
 */
import { describe, expect, it } from 'vitest';
import { FallbackTransport } from '../../client/browser/transports.js';
import type {
  CloseInfo,
  Connection,
  ConnectionHandlers,
  Transport,
} from '../../client/core/types.js';
import { ABNORMAL_CLOSURE } from '../../client/core/types.js';

/** A transport whose connections never open; a close, or `drop()`, ends them with 1006. */
class NeverOpens implements Transport {
  readonly sendsHeaders = false;
  readonly handlers: ConnectionHandlers[] = [];
  connect(_url: string, _protocols: readonly string[], handlers: ConnectionHandlers): Connection {
    this.handlers.push(handlers);
    return {
      send: () => undefined,
      bufferedAmount: 0,
      reportsDrain: false,
      close: () => queueMicrotask(() => handlers.onClose({ code: ABNORMAL_CLOSURE, reason: '' })),
    };
  }
  drop(index: number): void {
    this.handlers[index]?.onClose({ code: ABNORMAL_CLOSURE, reason: '', error: 'refused' });
  }
}

const handlers = (closes: CloseInfo[]): ConnectionHandlers => ({
  onOpen: () => undefined,
  onMessage: () => undefined,
  onClose: (info) => closes.push(info),
});

describe('FallbackTransport', () => {
  it('a close asked for by the client while connecting keeps the first transport', async () => {
    const first = new NeverOpens();
    const second = new NeverOpens();
    const fallback = new FallbackTransport(first, second);
    const closes: CloseInfo[] = [];
    fallback.connect('ws://host/upload', [], handlers(closes)).close();
    await Promise.resolve();
    expect(closes).toHaveLength(1);
    expect(fallback.active).toBe(first);
  });

  it('a connection that fails on its own before any answer switches to the second, for good', () => {
    const first = new NeverOpens();
    const second = new NeverOpens();
    const fallback = new FallbackTransport(first, second);
    const closes: CloseInfo[] = [];
    fallback.connect('ws://host/upload', [], handlers(closes));
    first.drop(0);
    expect(closes[0]?.reason).toMatch(/falling back/);
    expect(fallback.active).toBe(second);
  });
});
