/**
 * Messages between the page and the upload worker, posted as arrays: the messages queued until the
 * next task go in one postMessage. A folder of small files sent eight messages per file from the
 * worker to the page, each a task of its own on the page's main thread (issue 16). The flush runs
 * as a task of a MessageChannel of its own rather than a timer, which a hidden page throttles to
 * once a second or less: an upload goes on in a background tab.
 */
export function batchedPost<T>(post: (messages: T[]) => void): (message: T) => void {
  let queued: T[] = [];
  let wake: MessagePort | undefined;
  return (message) => {
    queued.push(message);
    if (queued.length > 1) return;
    if (!wake) {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const messages = queued;
        queued = [];
        post(messages);
      };
      wake = channel.port2;
    }
    wake.postMessage(null);
  };
}
