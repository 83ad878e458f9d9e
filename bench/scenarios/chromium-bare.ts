/**
 * Chromium driven over its DevTools pipe with only the commands a bench needs (a context, a page,
 * navigate, an init script, pick a file, evaluate): no Network domain enabled and no Worker
 * attached, as in a user's browser. Playwright enables the Network domain in every page and
 * Worker, and Chromium then reports each request and WebSocket frame to it, the payload included
 * where it is bytes (not a Blob): under Playwright a PUT of bytes read into JavaScript cost about
 * 10x the Chromium CPU it costs bare (bench/browser-probe.ts, engines `chromium` and
 * `chromium-bare`), so a Playwright-driven bench would measure DevTools, not the page.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CHROMIUM_ARGS, chromiumCpuSeconds, type BenchBrowser, type BenchPage } from './browser.js';

/**
 * Bench code runs under tsx, whose transform names functions with a `__name` helper: a function's
 * source sent to the page refers to it, so the page gets a no-op one (Playwright does the same).
 */
const inPage = (call: string): string => `((__name) => ${call})((f) => f)`;

interface DevtoolsReply {
  id?: number;
  result?: unknown;
  error?: { message: string };
}

interface EvaluateReply<R> {
  result: { value?: R; objectId?: string };
  exceptionDetails?: { exception?: { description?: string }; text: string };
}

/** How long Chromium may take to exit after Browser.close before it is killed. */
const CLOSE_GRACE_MS = 10_000;

export async function launchChromiumBare(executable: string): Promise<BenchBrowser> {
  const userDataDir = await mkdtemp(join(os.tmpdir(), 'bench-chromium-profile-'));
  const child = spawn(
    executable,
    [...CHROMIUM_ARGS, '--remote-debugging-pipe', `--user-data-dir=${userDataDir}`, 'about:blank'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
  );
  const toBrowser = child.stdio[3] as Writable;
  const fromBrowser = child.stdio[4] as Readable;
  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let received = '';
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', (text: string) => {
    received += text;
    for (let end = received.indexOf('\0'); end >= 0; end = received.indexOf('\0')) {
      const message = JSON.parse(received.slice(0, end)) as DevtoolsReply;
      received = received.slice(end + 1);
      const waiter = message.id === undefined ? undefined : pending.get(message.id);
      if (!waiter || message.id === undefined) continue;
      pending.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    }
  });
  const failAll = (reason: string) => {
    for (const waiter of pending.values()) waiter.reject(new Error(reason));
    pending.clear();
  };
  child.once('exit', () => failAll('chromium exited'));
  // A spawn failure or a broken pipe arrives as 'error': without listeners it would end the bench.
  child.on('error', (error) => failAll(`chromium: ${error.message}`));
  toBrowser.on('error', (error) => failAll(`DevTools pipe: ${error.message}`));
  fromBrowser.on('error', (error) => failAll(`DevTools pipe: ${error.message}`));
  const send = <R>(method: string, params: object = {}, sessionId?: string): Promise<R> =>
    new Promise((resolve, reject) => {
      if (child.exitCode !== null) return reject(new Error('chromium exited'));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      toBrowser.write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
    });
  await send('Browser.getVersion');
  return {
    cpuSeconds: chromiumCpuSeconds,
    async close() {
      const exited = new Promise((resolve) =>
        child.exitCode === null ? child.once('exit', resolve) : resolve(0),
      );
      await send('Browser.close').catch(() => undefined);
      const killAfter = setTimeout(() => child.kill('SIGKILL'), CLOSE_GRACE_MS);
      await exited;
      clearTimeout(killAfter);
      await rm(userDataDir, { recursive: true, force: true });
    },
    async newPage() {
      const { browserContextId } = await send<{ browserContextId: string }>(
        'Target.createBrowserContext',
      );
      const { targetId } = await send<{ targetId: string }>('Target.createTarget', {
        url: 'about:blank',
        browserContextId,
      });
      const { sessionId } = await send<{ sessionId: string }>('Target.attachToTarget', {
        targetId,
        flatten: true,
      });
      // For addScriptToEvaluateOnNewDocument; the Page domain reports no network traffic.
      await send('Page.enable', {}, sessionId);
      const run = async <R>(
        expression: string,
        returnByValue = true,
      ): Promise<EvaluateReply<R>> => {
        const reply = await send<EvaluateReply<R>>(
          'Runtime.evaluate',
          { expression, awaitPromise: true, returnByValue },
          sessionId,
        );
        if (reply.exceptionDetails)
          throw new Error(
            reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text,
          );
        return reply;
      };
      const evaluate = async <R>(expression: string): Promise<R> =>
        (await run<R>(expression)).result.value as R;
      const waitForTrue = async (expression: string, timeoutMs: number, pollMs = 100) => {
        const until = Date.now() + timeoutMs;
        while (!(await evaluate<boolean>(expression).catch(() => false))) {
          if (Date.now() > until) throw new Error(`waitFor timed out after ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, pollMs));
        }
      };
      const page: BenchPage = {
        async addInitScript(script) {
          await send(
            'Page.addScriptToEvaluateOnNewDocument',
            { source: inPage(`(${script.toString()})()`) },
            sessionId,
          );
        },
        async goto(url) {
          const { errorText } = await send<{ errorText?: string }>(
            'Page.navigate',
            { url },
            sessionId,
          );
          if (errorText) throw new Error(`navigating to ${url}: ${errorText}`);
          // Page.navigate answers before the new document is the page's: wait for it by its URL.
          const href = JSON.stringify(new URL(url).href);
          await waitForTrue(
            `location.href === ${href} && document.readyState === 'complete'`,
            30_000,
          );
        },
        evaluate: <R, A>(fn: (arg: A) => R, arg?: A) =>
          evaluate<Awaited<R>>(inPage(`(${fn.toString()})(${JSON.stringify(arg)})`)),
        waitFor: (predicate, timeoutMs, pollMs) =>
          waitForTrue(inPage(`(${predicate.toString()})()`), timeoutMs, pollMs),
        async pickFile(path, file) {
          // Each selector in the previous element's shadow root (or the document for the first).
          const steps = JSON.stringify(path);
          const { result } = await run<never>(
            `${steps}.reduce((at, s, i) => (i === 0 ? document : at.shadowRoot).querySelector(s), null)`,
            false,
          );
          if (!result.objectId) throw new Error(`no element at ${path.join(' > ')}`);
          const onElement = async <R>(functionDeclaration: string): Promise<R | undefined> =>
            (
              await send<EvaluateReply<R>>(
                'Runtime.callFunctionOn',
                { functionDeclaration, objectId: result.objectId, returnByValue: true },
                sessionId,
              )
            ).result.value;
          await onElement(
            "function () { this.__benchPicked = false; this.addEventListener('change', () => (this.__benchPicked = true), { once: true }); }",
          );
          await send(
            'DOM.setFileInputFiles',
            { files: [file], objectId: result.objectId },
            sessionId,
          );
          // A folder is listed after the command returns (Playwright waits for it too): until its
          // `change` fires, the input's `files` is empty.
          const until = Date.now() + 60_000;
          while (!(await onElement<boolean>('function () { return this.__benchPicked; }'))) {
            if (Date.now() > until) throw new Error(`nothing picked at ${path.join(' > ')}`);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          await send('Runtime.releaseObject', { objectId: result.objectId }, sessionId);
        },
        async close() {
          await send('Target.disposeBrowserContext', { browserContextId });
        },
      };
      return page;
    },
  };
}
