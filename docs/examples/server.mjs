// A Fastify app with big-uploader's routes under /files (WebSocket endpoint /files/upload).
import Fastify from 'fastify';
import { bigUploader } from 'big-uploader/server';

const app = Fastify({ logger: true });
await app.register(bigUploader, {
  prefix: '/files',
  dir: process.env.UPLOAD_DIR ?? './uploads',
  maxUploadSize: 50 * 2 ** 30,
  token: process.env.UPLOAD_TOKEN,
  onUploadComplete: async (upload) => app.log.info({ id: upload.id, location: upload.location }, 'stored'),
});
app.get('/', async () => 'my app, with uploads at /files/upload');
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) });
