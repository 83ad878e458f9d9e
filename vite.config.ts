/**
 * Vite builds of the <big-uploader> web component and its demo page (one config, picked by mode):
 *
 *   vite                      dev server for demo/ with live reload; /upload, /uploads and
 *                             /healthz are proxied to a running server (BIG_UPLOADER_URL, default
 *                             http://127.0.0.1:3000: start one with `npm start` or `big-uploader serve`)
 *   vite build                the demo page -> dist/demo (what `npm start` serves at /)
 *   vite build --mode standalone   one ES module with lit bundled -> dist/component/big-uploader.js
 *                             (embed with a single <script type="module">; registers the tag)
 *   vite build --mode lib     library build, lit left external -> dist/lib/{index,define}.js
 */
import { fileURLToPath } from 'node:url';
import { defineConfig, type UserConfig } from 'vite';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
const server = process.env.BIG_UPLOADER_URL ?? 'http://127.0.0.1:3000';

export default defineConfig(({ mode }): UserConfig => {
  if (mode === 'standalone') {
    return {
      publicDir: false,
      build: {
        outDir: here('./dist/component'),
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: { entry: here('./client/component/define.ts'), formats: ['es'], fileName: () => 'big-uploader.js' },
      },
    };
  }
  if (mode === 'lib') {
    return {
      publicDir: false,
      build: {
        outDir: here('./dist/lib'),
        emptyOutDir: true,
        target: 'es2022',
        sourcemap: true,
        lib: {
          entry: { index: here('./client/component/index.ts'), define: here('./client/component/define.ts') },
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
