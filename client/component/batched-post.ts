/**
 * Messages between the page and the upload worker, posted as arrays: the messages queued until the
 * next task go in one postMessage. A folder of small files sent eight messages per file from the
 * worker to the page, each a task of its own on the page's main thread (issue 16).
 */
import { nextTask } from './next-task.js';

export function batchedPost<T>(post: (messages: T[]) => void): (message: T) => void {
  let queued: T[] = [];
  return (message) => {
    queued.push(message);
    if (queued.length > 1) return;
    void nextTask().then(() => {
      const messages = queued;
      queued = [];
      post(messages);
    });
  };
}
