// Upload one file from Node: node node-client.mjs FILE ws://127.0.0.1:3000/files/upload
import { openUploader } from 'big-uploader/client';

const [file, endpoint] = process.argv.slice(2);
const uploader = await openUploader({ file, endpoint, token: process.env.UPLOAD_TOKEN });
uploader.on('progress', (p) => process.stderr.write(`\r${((100 * p.bytesAcked) / p.total).toFixed(1)}%`));
const outcome = await uploader.start();
if (outcome.state !== 'done') {
  console.error(`\nupload ${outcome.state}:`, outcome.error?.message ?? '');
  process.exit(1);
}
console.log(`\nstored as ${outcome.result.uploadId}, digest ${outcome.result.digest}`);
