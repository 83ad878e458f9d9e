/**
 * Node flags the server should run with. Every DATA message arrives in a fresh buffer from the
 * WebSocket layer; the ones still waiting for their write get promoted to V8's old space, and with
 * V8's small default old-space start size that triggers a full mark-compact every ~16 MiB
 * received (measured: ~60 per GiB, about a third of the server's CPU). Starting the old space at
 * 64 MiB cuts that to ~10 per GiB for ~25 MiB more peak RSS.
 *
 * `npm start`, the `big-uploader` bin (its shebang) and the bench start the server with these;
 * an application that registers the plugin in its own process should pass them to node too.
 * test/server/node-flags.test.ts keeps those places in step with this list.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];
