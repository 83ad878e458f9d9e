/**
 * Every user-visible string of <big-uploader>, in one place. English and Simplified Chinese are
 * built in; the language comes from the `lang` attribute when set, else from navigator.language.
 * Numbers, sizes and durations go through Intl so digits and separators follow the locale too.
 */

export type Locale = 'en' | 'zh-CN';

export interface Strings {
  readonly dropHint: string;
  readonly pick: string;
  readonly pickFolder: string;
  readonly dropHere: string;
  readonly start: string;
  readonly pause: string;
  readonly resume: string;
  readonly cancel: string;
  readonly retry: string;
  readonly remove: string;
  readonly queued: string;
  readonly hashing: string;
  readonly connecting: string;
  readonly uploading: string;
  readonly paused: string;
  readonly completing: string;
  readonly done: string;
  readonly cancelled: string;
  readonly retryingIn: (seconds: number) => string;
  readonly failed: (reason: string) => string;
  readonly resumingAt: (percent: number) => string;
  /** The re-picked file differs from what an earlier session sent: it is uploaded again from the start. */
  readonly sourceChanged: string;
  /** Some parts the earlier session sent had changed: only those are sent again. */
  readonly changedPartsResent: string;
  readonly refusedTooLarge: (max: string) => string;
  readonly refusedType: (accept: string) => string;
  readonly progressLabel: (name: string) => string;
  readonly progressText: (percent: number, acked: string, total: string) => string;
  readonly eta: (duration: string) => string;
  readonly rate: (perSecond: string) => string;
  readonly filesLabel: string;
  readonly unfinished: string;
  readonly resumeUnfinished: (name: string) => string;
  readonly forget: string;
  readonly actionsFor: (action: string, name: string) => string;
  readonly noEndpoint: string;
}

const en: Strings = {
  dropHint: 'Drag files or folders here, or',
  pick: 'Choose files',
  pickFolder: 'Choose a folder',
  dropHere: 'Drop to upload',
  start: 'Start upload',
  pause: 'Pause',
  resume: 'Resume',
  cancel: 'Cancel',
  retry: 'Retry',
  remove: 'Remove',
  queued: 'Queued',
  hashing: 'Hashing…',
  connecting: 'Connecting…',
  uploading: 'Uploading',
  paused: 'Paused',
  completing: 'Finishing…',
  done: 'Done',
  cancelled: 'Cancelled',
  retryingIn: (s) => `Retrying in ${s} s`,
  failed: (reason) => `Failed: ${reason}`,
  resumingAt: (p) => `Resuming at ${p}%`,
  sourceChanged: 'The file changed since the earlier upload; uploading it again from the start',
  changedPartsResent:
    'Parts of the file changed since the earlier upload; sending only those again',
  refusedTooLarge: (max) => `Not uploaded: larger than the limit of ${max}`,
  refusedType: (accept) => `Not uploaded: file type not accepted (allowed: ${accept})`,
  progressLabel: (name) => `Upload progress of ${name}`,
  progressText: (p, acked, total) => `${p}% (${acked} of ${total})`,
  eta: (d) => `${d} left`,
  rate: (r) => `${r}/s`,
  filesLabel: 'Uploads',
  unfinished: 'Unfinished uploads from an earlier visit',
  resumeUnfinished: (name) => `Resume ${name}`,
  forget: 'Forget',
  actionsFor: (action, name) => `${action} ${name}`,
  noEndpoint: 'No upload endpoint configured',
};

const zhCN: Strings = {
  dropHint: '将文件或文件夹拖到此处，或',
  pick: '选择文件',
  pickFolder: '选择文件夹',
  dropHere: '松开即可上传',
  start: '开始上传',
  pause: '暂停',
  resume: '继续',
  cancel: '取消',
  retry: '重试',
  remove: '移除',
  queued: '排队中',
  hashing: '正在计算校验…',
  connecting: '正在连接…',
  uploading: '上传中',
  paused: '已暂停',
  completing: '正在完成…',
  done: '已完成',
  cancelled: '已取消',
  retryingIn: (s) => `${s} 秒后重试`,
  failed: (reason) => `失败：${reason}`,
  resumingAt: (p) => `从 ${p}% 处继续`,
  sourceChanged: '文件自上次上传后已更改，正在从头重新上传',
  changedPartsResent: '文件的部分内容自上次上传后已更改，仅重新发送这些部分',
  refusedTooLarge: (max) => `未上传：超过 ${max} 的大小限制`,
  refusedType: (accept) => `未上传：不接受此文件类型（允许：${accept}）`,
  progressLabel: (name) => `${name} 的上传进度`,
  progressText: (p, acked, total) => `${p}%（${acked} / ${total}）`,
  eta: (d) => `剩余 ${d}`,
  rate: (r) => `${r}/秒`,
  filesLabel: '上传列表',
  unfinished: '上次访问未完成的上传',
  resumeUnfinished: (name) => `继续上传 ${name}`,
  forget: '忽略',
  actionsFor: (action, name) => `${action} ${name}`,
  noEndpoint: '未配置上传地址',
};

const TABLE: Record<Locale, Strings> = { en, 'zh-CN': zhCN };

/** Map any BCP 47 tag to a built-in locale: every `zh*` tag gets Simplified Chinese, the rest English. */
export function resolveLocale(tag: string | undefined | null): Locale {
  return tag && /^zh\b/i.test(tag.trim()) ? 'zh-CN' : 'en';
}

export function stringsFor(locale: Locale): Strings {
  return TABLE[locale];
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** 1536 -> "1.5 KiB". Binary units because file sizes on every OS people meet here are binary. */
export function formatBytes(bytes: number, locale: Locale): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 ? 0 : value < 10 ? 2 : value < 100 ? 1 : 0;
  return `${new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value)} ${UNITS[unit]}`;
}

/** Seconds -> "1 h 2 min" / "45 s" (zh: "1 小时 2 分" / "45 秒"). */
export function formatDuration(seconds: number, locale: Locale): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const [uh, um, us] = locale === 'zh-CN' ? [' 小时', ' 分', ' 秒'] : [' h', ' min', ' s'];
  if (h > 0) return `${h}${uh} ${m}${um}`;
  if (m > 0) return `${m}${um} ${sec}${us}`;
  return `${sec}${us}`;
}
