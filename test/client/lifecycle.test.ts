import { describe, expect, it } from 'vitest';
import { ChunksInFlight } from '../../client/core/chunks-in-flight.js';
import { Lifecycle, type StateChange } from '../../client/core/lifecycle.js';

function lifecycle(): { life: Lifecycle; changes: StateChange[] } {
  const changes: StateChange[] = [];
  return { life: new Lifecycle((change) => changes.push(change)), changes };
}

describe('Lifecycle', () => {
  it('walks a whole upload through named transitions, announcing each change once', () => {
    const { life, changes } = lifecycle();
    life.go('start');
    life.go('reconnect'); // connecting -> connecting: no event
    life.go('accept');
    life.go('complete');
    life.go('sendAgain');
    life.go('complete');
    life.go('succeed');
    expect(changes.map((c) => `${c.previous}>${c.state}`)).toEqual([
      'idle>connecting',
      'connecting>uploading',
      'uploading>completing',
      'completing>uploading',
      'uploading>completing',
      'completing>done',
    ]);
  });

  it('refuses transitions the table does not list', () => {
    const { life } = lifecycle();
    expect(() => life.go('accept')).toThrow(/cannot accept from idle/);
    life.go('start');
    expect(() => life.go('succeed')).toThrow(/cannot succeed from connecting/);
    life.go('fail');
    expect(() => life.go('pause')).toThrow(/cannot pause from failed/);
    life.go('start'); // failed -> connecting is a retry by the user
    expect(life.state).toBe('connecting');
  });

  it('re-announces retrying with its delay', () => {
    const { life, changes } = lifecycle();
    life.go('start');
    life.go('retry', 250);
    life.go('reconnect');
    life.go('retry', 500);
    expect(changes.filter((c) => c.state === 'retrying').map((c) => c.retryInMs)).toEqual([
      250, 500,
    ]);
  });

  it('keeps a pause request until the uploader rests, and answers every waiter', async () => {
    const { life } = lifecycle();
    const run = life.beginRun();
    life.go('start');
    const first = life.requestPause();
    const second = life.requestPause();
    expect([first.first, second.first]).toEqual([true, false]);
    expect(life.stopping).toBe(true);
    life.go('accept'); // still moving: the request stands
    expect(life.pausing).toBe(true);
    life.go('pause');
    life.settle({ state: 'paused' });
    await Promise.all([first.rested, second.rested]);
    expect(await run).toEqual({ state: 'paused' });
    expect(life.pausing).toBe(false);
  });

  it('cancel is final and silent: later transitions are ignored', () => {
    const { life, changes } = lifecycle();
    life.go('start');
    life.go('cancel');
    const seen = changes.length;
    life.go('accept');
    life.go('fail');
    expect(life.state).toBe('cancelled');
    expect(life.stopping).toBe(true);
    expect(changes.length).toBe(seen);
  });
});

describe('ChunksInFlight', () => {
  it('counts reads against the window and lets one chunk through when nothing is in flight', () => {
    const inFlight = new ChunksInFlight();
    expect(inFlight.fits(100, 10)).toBe(true);
    inFlight.readStarted(8);
    expect(inFlight.fits(4, 10)).toBe(false);
    expect(inFlight.settled).toBe(false);
    inFlight.readEnded(8);
    inFlight.sent(0, 8);
    expect(inFlight.fits(2, 10)).toBe(true);
    expect(inFlight.fits(3, 10)).toBe(false);
  });

  it('settles the chunks an ACK covers whole and skips in-grid bytes never sent', () => {
    const inFlight = new ChunksInFlight<string>();
    inFlight.sent(0, 4, 'a');
    inFlight.sent(8, 4, 'c');
    inFlight.sent(12, 2, 'd');
    const acked = inFlight.acked({ start: 0, end: 12 }, 4);
    expect(acked.map((c) => c.payload)).toEqual(['a', 'c']);
    expect(inFlight.outstanding).toBe(2);
    // A range that covers only part of a chunk settles nothing.
    expect(inFlight.acked({ start: 12, end: 13 }, 4)).toEqual([]);
    expect(inFlight.refused(12)?.payload).toBe('d');
    expect(inFlight.refused(12)).toBeUndefined();
    expect(inFlight.settled).toBe(true);
  });
});
