/**
 * Registers <big-uploader>. The only module of the component with a side effect: import it once
 * (or load the standalone bundle) to use the tag. Safe to import twice (e.g. two bundles).
 */
import { BigUploaderElement } from './big-uploader.js';
import type { BigUploaderEventMap } from './events.js';

export const TAG = 'big-uploader';

if (!customElements.get(TAG)) customElements.define(TAG, BigUploaderElement);

declare global {
  interface HTMLElementTagNameMap {
    'big-uploader': BigUploaderElement;
  }
  // Typed `addEventListener('upload-progress', e => e.detail.bytesAcked)` on any element/document.
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- declaration merging
  interface GlobalEventHandlersEventMap extends BigUploaderEventMap {}
}

export { BigUploaderElement };
