// Your app's backend mints short-lived upload tickets; browsers never see a server token.
import Fastify from 'fastify';
import { bigUploader, mintUploadTicket } from 'big-uploader/server';

const TICKET_SECRET = process.env.TICKET_SECRET; // 32+ random characters, shared with the plugin
const app = Fastify();
await app.register(bigUploader, { dir: './uploads', ticketSecret: TICKET_SECRET, adminToken: process.env.ADMIN_TOKEN });

app.post('/upload-ticket', async (request, reply) => {
  const user = request.headers['x-user']; // replace with your own session check
  if (!user) return reply.code(401).send({ error: 'log in first' });
  const ticket = mintUploadTicket(TICKET_SECRET, { sub: String(user), maxSize: 10 * 2 ** 30 }, 15 * 60);
  return { ticket, endpoint: '/upload' };
});

// In the page: const { ticket } = await (await fetch('/upload-ticket', { method: 'POST' })).json();
//              uploader.setAttribute('token', ticket);
console.log(`listening on ${await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })}`);
