/**
 * Resolves in a later task of the event loop, so the page can paint and other work (socket
 * messages, the worker's answers) runs in between. A MessageChannel message rather than a timer: a
 * hidden page throttles timers to once a second or less, and uploads go on in a background tab.
 */
export function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}
