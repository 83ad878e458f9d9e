/**
 * The <big-uploader> component, without registering the tag (import `./define.js` for that, or
 * call `customElements.define` with your own name).
 */
export { BigUploaderElement } from './big-uploader.js';
export { UploadController, ItemStatus, accepts, defaultEndpoint } from './controller.js';
export type { UploadItem, UploadHost, UploaderFactory } from './controller.js';
export type * from './events.js';
export { resolveLocale, stringsFor, formatBytes, formatDuration } from './i18n.js';
export type { Locale, Strings } from './i18n.js';
export { styles } from './styles.js';
