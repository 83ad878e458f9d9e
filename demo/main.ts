// Demo page script: registers <big-uploader>, points it at this server's /upload, logs its events.
import '../client/component/define.js';

const uploader = document.querySelector('big-uploader');
const endpoint = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/upload`;
const params = new URLSearchParams(location.search);
if (uploader) {
  uploader.endpoint = endpoint;
  // ?token=... for servers started with --token; ?lang=zh-CN to try the Chinese strings.
  const token = params.get('token');
  if (token) uploader.token = token;
  const lang = params.get('lang');
  if (lang) uploader.language = lang;
}
const shown = document.querySelector('#endpoint');
if (shown) shown.textContent = endpoint;

const log = document.querySelector('#log');
const write = (line: string): void => {
  if (!log) return;
  log.textContent = `${new Date().toLocaleTimeString()} ${line}\n${log.textContent ?? ''}`.slice(
    0,
    20_000,
  );
};
document.addEventListener('upload-start', (e) =>
  write(`start ${e.detail.name} (resumed ${e.detail.resumedBytes} bytes)`),
);
document.addEventListener('upload-complete', (e) =>
  write(`complete ${e.detail.name} digest ${e.detail.digest}`),
);
document.addEventListener('upload-error', (e) =>
  write(`error ${e.detail.name}: ${e.detail.message}`),
);
document.addEventListener('upload-refused', (e) =>
  write(`refused ${e.detail.name}: ${e.detail.reason}`),
);
