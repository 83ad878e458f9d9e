/**
 * The batch uploader's files sent whole in their OPEN (SPEC.md 16.11) against a scripted bigup.2
 * server, for answers a real server does not give on cue: a file dropped while its OPEN is out and
 * then refused with a non-fatal ERROR (its stream is over: the batch must not wait for an ACCEPT
 * that never comes), and a connection lost while a small file is being read (the next connection,
 * before its WELCOME, must not send the data read for the last one).
 */
import { describe, expect, it } from 'vitest';
import {
  Capability,
  Errors,
  MessageType,
  OpenFlags,
  SUBPROTOCOL_V2,
  decodeClientFrame,
  encodeError,
  encodeWelcome,
  withStream,
  type CapabilityEntry,
} from '../../protocol/index.js';
import { BatchUploader, type BatchEntry } from '../../client/core/index.js';
import type { Connection, ConnectionHandlers, Transport } from '../../client/core/types.js';
import { memorySource, until } from './fakes.js';
import { loadNodeHasher } from '../../protocol/native-hasher.js';

interface Scripted {
  readonly opens: Array<{ connection: number; flags: number; stream: number }>;
  readonly connections: Array<{ handlers: ConnectionHandlers; closed: boolean }>;
}

/** A bigup.2 server that grants OPEN_WITH_DATA and answers OPENs only through `script`. */
function scriptedServer(grantInline: (connection: number) => boolean): Transport & Scripted {
  const opens: Scripted['opens'] = [];
  const connections: Scripted['connections'] = [];
  return {
    opens,
    connections,
    connect(_url, _protocols, handlers): Connection {
      const index = connections.length;
      const state = { handlers, closed: false };
      connections.push(state);
      setTimeout(() => handlers.onOpen(SUBPROTOCOL_V2), 0);
      return {
        bufferedAmount: 0,
        reportsDrain: false,
        send(data: Uint8Array) {
          if (state.closed) return;
          const frame = decodeClientFrame(data);
          if (frame.message.type === 'hello') {
            const granted: CapabilityEntry[] = [{ id: Capability.MULTIPLEX, value: 4 }];
            if (grantInline(index)) granted.push({ id: Capability.OPEN_WITH_DATA, value: 65_536 });
            setTimeout(() => handlers.onMessage(encodeWelcome(granted)), 0);
          } else if (data[0] === MessageType.OPEN) {
            opens.push({ connection: index, flags: data[1] ?? 0, stream: frame.stream });
          }
        },
        close() {
          if (state.closed) return;
          state.closed = true;
          setTimeout(() => handlers.onClose({ code: 1000, reason: '' }), 0);
        },
      };
    },
  };
}

const entry = (bytes: Uint8Array, label: string, delay = 0): BatchEntry => ({
  label,
  open: async () => {
    await new Promise((resolve) => setTimeout(resolve, delay));
    return memorySource(bytes, label);
  },
});

describe('batch uploader: OPEN with data against a scripted server', () => {
  it('a file dropped while its OPEN is out, then refused with a non-fatal ERROR, is reported at once', async () => {
    const server = scriptedServer(() => true);
    const results: Array<{ index: number; state: string }> = [];
    const batch = new BatchUploader({
      endpoint: 'ws://scripted/upload',
      transport: server,
      loadHasher: loadNodeHasher,
      backoff: { maxAttempts: 0 },
      onResult: (r) => results.push({ index: r.index, state: r.state }),
    });
    // The first file is too big to carry data: its OPEN stays unanswered, keeping the connection
    // busy. The second one carries its data.
    const run = batch.run([
      entry(new Uint8Array(70_000), 'first'),
      entry(new Uint8Array(10), 'second', 50),
    ]);
    await until(() => server.opens.some((o) => (o.flags & OpenFlags.WITH_DATA) !== 0));
    const inline = server.opens.find((o) => (o.flags & OpenFlags.WITH_DATA) !== 0);
    batch.drop(1);
    server.connections[0].handlers.onMessage(
      withStream(inline?.stream ?? 0, encodeError({ code: Errors.DIGEST_MISMATCH.code })),
    );
    // Its stream is over: no ACCEPT will come to be terminated.
    await until(() => results.some((r) => r.index === 1), 2000);
    expect(results).toEqual([{ index: 1, state: 'cancelled' }]);
    const plain = server.opens.find((o) => (o.flags & OpenFlags.WITH_DATA) === 0);
    server.connections[0].handlers.onMessage(
      withStream(plain?.stream ?? 0, encodeError({ code: Errors.UNAUTHORIZED.code })),
    );
    expect(await run).toMatchObject({ cancelled: 1, failed: 1 });
  });

  it('after a connection lost while a small file was read, the next connection sends no stale data before its WELCOME', async () => {
    // The second connection grants nothing: an OPEN with data there is a protocol violation.
    const server = scriptedServer((connection) => connection === 0);
    const batch = new BatchUploader({
      endpoint: 'ws://scripted/upload',
      transport: server,
      loadHasher: loadNodeHasher,
      backoff: { maxAttempts: 3, initial: 1, max: 1 },
    });
    const run = batch.run([
      entry(new Uint8Array(0), 'first'),
      entry(new Uint8Array(10), 'slow', 200),
    ]);
    await until(() => server.opens.length >= 1);
    // WELCOME (granting data) has arrived; the slow file is being read. Cut the connection now.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const first = server.connections[0];
    first.closed = true;
    first.handlers.onClose({ code: 1006, reason: '' });
    await until(() => server.opens.some((o) => o.connection === 1), 5000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const later = server.opens.filter((o) => o.connection === 1);
    expect(later.length).toBeGreaterThan(0);
    for (const o of later) expect(o.flags & OpenFlags.WITH_DATA).toBe(0);
    batch.stop();
    for (const c of server.connections) c.handlers.onClose({ code: 1000, reason: '' });
    void run.catch(() => undefined);
  });
});
