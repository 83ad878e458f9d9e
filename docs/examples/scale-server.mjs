// The same plugin on an S3-compatible bucket, with upload records in Redis: run it on several
// machines behind a load balancer and any of them resumes any upload (docs/scaling.md).
// Credentials come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
import Fastify from 'fastify';
import { bigUploader, createRedisRegistry, createS3Store } from 'big-uploader/server';

const store = await createS3Store({
  bucket: process.env.S3_BUCKET ?? 'uploads',
  prefix: 'incoming/',
  region: process.env.AWS_REGION ?? 'eu-west-1',
  endpoint: process.env.S3_ENDPOINT, // unset for AWS S3; MinIO, R2, Ceph RGW: their URL
  forcePathStyle: process.env.S3_ENDPOINT !== undefined,
  registry: await createRedisRegistry({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0' }),
});
const app = Fastify({ logger: true });
await app.register(bigUploader, {
  store,
  token: process.env.UPLOAD_TOKEN,
  maxCommittedBytes: 2 * 2 ** 40, // unfinished uploads may hold 2 TiB in the bucket, cluster-wide
  onUploadComplete: async (upload) => app.log.info({ id: upload.id, location: upload.location }, 'stored'),
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    await app.close(); // let uploads settle and give their leases back
    await store.close(); // then the S3 sockets and the Redis connection
  });
}
console.log(`listening on ${await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })}`);
