/**
 * Styles of <big-uploader>. Every color, radius and font comes from a CSS custom property with a
 * default, so pages theme it without ::part for the common cases; the defaults have a light and a
 * dark set (prefers-color-scheme), both at WCAG AA contrast for text.
 */
import { css } from 'lit';

export const styles = css`
  :host {
    --_bg: var(--big-uploader-background, #ffffff);
    --_fg: var(--big-uploader-color, #1f2328);
    --_muted: var(--big-uploader-muted-color, #57606a);
    --_border: var(--big-uploader-border-color, #d0d7de);
    --_accent: var(--big-uploader-accent-color, #0969da);
    --_on-accent: var(--big-uploader-on-accent-color, #ffffff);
    --_track: var(--big-uploader-track-color, #e8ebef);
    --_sent: var(--big-uploader-sent-color, #8fb8ed);
    --_success: var(--big-uploader-success-color, #1a7f37);
    --_error: var(--big-uploader-error-color, #cf222e);
    --_radius: var(--big-uploader-radius, 8px);
    --_bar: var(--big-uploader-bar-height, 8px);
    --_drop-bg: var(--big-uploader-drop-background, #f6f8fa);
    display: block;
    font: var(
      --big-uploader-font,
      14px/1.45 system-ui,
      -apple-system,
      'Segoe UI',
      'PingFang SC',
      'Microsoft YaHei',
      sans-serif
    );
    color: var(--_fg);
    background: var(--_bg);
    border-radius: var(--_radius);
  }
  @media (prefers-color-scheme: dark) {
    :host {
      --_bg: var(--big-uploader-background, #0d1117);
      --_fg: var(--big-uploader-color, #e6edf3);
      --_muted: var(--big-uploader-muted-color, #9198a1);
      --_border: var(--big-uploader-border-color, #3d444d);
      --_accent: var(--big-uploader-accent-color, #4493f8);
      --_on-accent: var(--big-uploader-on-accent-color, #0d1117);
      --_track: var(--big-uploader-track-color, #262c36);
      --_sent: var(--big-uploader-sent-color, #1f4a80);
      --_success: var(--big-uploader-success-color, #3fb950);
      --_error: var(--big-uploader-error-color, #f85149);
      --_drop-bg: var(--big-uploader-drop-background, #151b23);
    }
  }
  [hidden] {
    display: none !important;
  }
  .dropzone {
    display: flex;
    flex-wrap: wrap;
    gap: 0.5rem 0.75rem;
    align-items: center;
    justify-content: center;
    padding: 1.5rem 1rem;
    border: 2px dashed var(--_border);
    border-radius: var(--_radius);
    background: var(--_drop-bg);
    text-align: center;
    transition:
      border-color 0.15s,
      background-color 0.15s;
  }
  .dropzone.dragging {
    border-color: var(--_accent);
  }
  .hint {
    margin: 0;
    color: var(--_muted);
  }
  button {
    font: inherit;
    cursor: pointer;
    border-radius: calc(var(--_radius) - 2px);
    border: 1px solid var(--_border);
    background: var(--_bg);
    color: var(--_fg);
    padding: 0.3rem 0.8rem;
    min-height: 2rem;
  }
  button.primary {
    background: var(--_accent);
    border-color: var(--_accent);
    color: var(--_on-accent);
    font-weight: 600;
  }
  button:hover {
    border-color: var(--_accent);
  }
  button:focus-visible {
    outline: 2px solid var(--_accent);
    outline-offset: 2px;
  }
  .toolbar {
    display: flex;
    justify-content: flex-end;
    margin-top: 0.5rem;
  }
  ul {
    list-style: none;
    margin: 0.75rem 0 0;
    padding: 0;
    display: grid;
    gap: 0.5rem;
  }
  li {
    border: 1px solid var(--_border);
    border-radius: var(--_radius);
    padding: 0.6rem 0.75rem;
    display: grid;
    gap: 0.35rem;
  }
  .head,
  .meta {
    display: flex;
    gap: 0.75rem;
    align-items: baseline;
    min-width: 0;
  }
  .name {
    font-weight: 600;
    overflow: hidden;
    text-overflow: ellipsis;
    white-space: nowrap;
    flex: 1 1 auto;
    min-width: 0;
  }
  .size,
  .meta {
    color: var(--_muted);
    font-variant-numeric: tabular-nums;
  }
  .meta {
    flex-wrap: wrap;
    font-size: 0.93em;
  }
  .state {
    margin-inline-start: auto;
    color: var(--_fg);
  }
  .done .state {
    color: var(--_success);
    font-weight: 600;
  }
  .failed .state,
  .refused .state {
    color: var(--_error);
    font-weight: 600;
  }
  .progress {
    position: relative;
    height: var(--_bar);
    border-radius: calc(var(--_bar) / 2);
    background: var(--_track);
    overflow: hidden;
  }
  .progress .sent,
  .progress .acked {
    position: absolute;
    inset-block: 0;
    inset-inline-start: 0;
    border-radius: inherit;
    transition: width 0.2s linear;
  }
  /* Bytes handed to the socket but not yet acknowledged: a thin lighter mark under the bar. */
  .progress .sent {
    background: var(--_sent);
    inset-block-start: auto;
    height: 35%;
  }
  .progress .acked {
    background: var(--_accent);
  }
  .done .progress .acked {
    background: var(--_success);
  }
  .failed .progress .acked {
    background: var(--_error);
  }
  .actions {
    display: flex;
    gap: 0.4rem;
    flex-wrap: wrap;
  }
  .actions button {
    padding: 0.15rem 0.65rem;
    min-height: 1.8rem;
  }
  .note {
    margin: 0;
    color: var(--_muted);
    font-size: 0.93em;
  }
  .unfinished {
    margin-top: 0.75rem;
    padding: 0.6rem 0.75rem;
    border: 1px solid var(--_border);
    border-radius: var(--_radius);
  }
  .unfinished h2 {
    font-size: 1em;
    margin: 0 0 0.4rem;
  }
  .unfinished li {
    border: 0;
    padding: 0;
    display: flex;
    gap: 0.5rem;
    align-items: center;
  }
  @media (prefers-reduced-motion: reduce) {
    .progress .sent,
    .progress .acked,
    .dropzone {
      transition: none;
    }
  }
`;
