/**
 * Debian's nginx as the load balancer in front of big-uploader nodes: a temp prefix with its own
 * config (WebSocket upgrade passed through, round robin over the upstreams, a node that refuses
 * connections skipped), a random port, no daemon, logs in the temp dir. `stop` ends only it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, type TempDir } from './temp-dir.js';
import { freePort } from './redis.js';

export const NGINX = '/usr/sbin/nginx';

export interface NginxProcess {
  readonly port: number;
  readonly url: string;
  readonly config: string;
  stop(): Promise<void>;
}

/** The http block the test runs (docs/scaling.md shows the same shape for production). */
export function nginxConfig(port: number, upstreams: readonly number[], dir: string): string {
  const temp = (name: string): string => `${name}_temp_path ${join(dir, name)};`;
  // One process (no master and workers): stop() kills it with SIGKILL and nothing is left
  // listening (a killed master leaves its worker behind).
  return `master_process off;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream bigup {
${upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=1s;`).join('\n')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bigup;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
      proxy_next_upstream error timeout;
    }
  }
}
`;
}

export async function startNginx(upstreams: readonly number[]): Promise<NginxProcess> {
  const tmp: TempDir = await makeTempDir('bigup-nginx-');
  for (const name of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    await mkdir(join(tmp.path, name));
  const port = await freePort();
  const config = join(tmp.path, 'nginx.conf');
  await writeFile(config, nginxConfig(port, upstreams, tmp.path));
  const child: ChildProcess = spawn(
    NGINX,
    ['-p', tmp.path, '-c', config, '-e', join(tmp.path, 'error.log')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  // nginx prints nothing when it starts: wait until the port answers.
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited:\n${output}`);
    try {
      await fetch(`http://127.0.0.1:${port}/healthz`);
      break;
    } catch {
      if (Date.now() - started > 10_000) throw new Error(`nginx did not answer:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    config,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      await tmp.cleanup();
    },
  };
}
