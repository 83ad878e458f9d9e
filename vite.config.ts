/**
 * Vite builds of the <big-uploader> web component and its demo page (one config, picked by mode):
 *
 *   vite                      dev server for demo/ with live reload; /upload, /uploads and
 *                             /healthz are proxied to BIG_UPLOADER_URL (default http://127.0.0.1:3000);
 *                             when nothing answers there, an upload server is started in-process
 *                             on that port (data in ./data)
 *   vite build                the demo page -> dist/demo (what `npm start` serves at /)
 *   vite build --mode standalone   one ES module with lit and the upload worker bundled ->
 *                             dist/component/big-uploader.js (embed with a single
 *                             <script type="module">; registers the tag)
 *   vite build --mode lib     library build for bundlers, lit left external, the worker inlined ->
 *                             dist/lib/{index,define}.js
 */
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin, type UserConfig } from 'vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const server = process.env.BIG_UPLOADER_URL ?? 'http://127.0.0.1:3000';

/** Dev only: start the real upload server behind the proxy unless one is already running. */
function uploadServer(): Plugin {
  return {
    name: 'big-uploader-dev-server',
    apply: 'serve',
    async configureServer(dev) {
      // Any HTTP answer (a 401 from a server with a token included) means a server is there.
      const alive = await fetch(`${server}/healthz`).then(
        () => true,
        () => false,
      );
      if (alive) return;
      const url = new URL(server);
      const { buildApp } = await import('./server/index.js');
      const app = await buildApp({
        dir: here('./data'),
        logLevel: 'warn',
        origins: [`http://127.0.0.1:5173`, `http://localhost:5173`],
      });
      await app.listen({ host: url.hostname, port: Number(url.port || 80) });
      dev.config.logger.info(`  big-uploader server started at ${server} (data in ./data)`);
      dev.httpServer?.on('close', () => void app.close());
    },
  };
}

const WORKER_FACTORY = '\0big-uploader-inline-worker';

/**
 * The shipped builds carry the upload worker inside the bundle (a Blob URL), not as a file next to
 * it: a second file breaks when the bundle is copied alone or re-bundled by an app's bundler.
 */
function inlineUploadWorker(): Plugin {
  return {
    name: 'big-uploader-inline-worker',
    enforce: 'pre',
    resolveId(source, importer) {
      if (
        source === './worker-factory.js' &&
        importer?.endsWith('/client/component/worker-uploader.ts')
      )
        return WORKER_FACTORY;
      return undefined;
    },
    load(id) {
      if (id !== WORKER_FACTORY) return undefined;
      const worker = JSON.stringify(`${here('./client/component/upload-worker.ts')}?worker&inline`);
      return `import UploadWorker from ${worker};\nexport function startUploadWorker() { return new UploadWorker({ name: 'big-uploader' }); }\n`;
    },
  };
}

export default defineConfig(({ mode }): UserConfig => {
  if (mode === 'standalone') {
    return {
      publicDir: false,
      base: './',
      plugins: [inlineUploadWorker()],
      worker: { format: 'es' },
      build: {
        outDir: here('./dist/component'),
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: {
          entry: here('./client/component/define.ts'),
          formats: ['es'],
          fileName: () => 'big-uploader.js',
        },
      },
    };
  }
  if (mode === 'lib') {
    return {
      publicDir: false,
      base: './',
      plugins: [inlineUploadWorker()],
      worker: { format: 'es' },
      build: {
        outDir: here('./dist/lib'),
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: {
          entry: {
            index: here('./client/component/index.ts'),
            define: here('./client/component/define.ts'),
          },
          formats: ['es'],
        },
        // Apps that already use lit share one copy.
        rollupOptions: { external: [/^lit($|\/)/, /^@lit\//] },
      },
    };
  }
  return {
    root: here('./demo'),
    publicDir: false,
    base: './',
    build: {
      outDir: here('./dist/demo'),
      emptyOutDir: true,
      target: 'es2022',
      sourcemap: true,
      // One file for the page: the component is small and a single request keeps `npm start` simple.
      assetsInlineLimit: 0,
    },
    plugins: [uploadServer()],
    server: {
      host: '127.0.0.1',
      port: 5173,
      proxy: {
        '/upload': { target: server.replace(/^http/, 'ws'), ws: true, changeOrigin: true },
        '/uploads': { target: server, changeOrigin: true },
        '/healthz': { target: server, changeOrigin: true },
      },
    },
  };
});
