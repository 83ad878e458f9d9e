/** Every contender in the order of the issue, and the names --only accepts. */
import type { Contender } from '../types.js';
import { oursDefault, oursDurable, tusToOurs } from './big-uploader.js';
import { limitDisk, limitDiskSync, limitNet, limitNetDisk } from './limits.js';
import { naive, put, tus8m, tusOnePatch } from './peers.js';

export const ALL_CONTENDERS: readonly Contender[] = [
  limitNet,
  limitNetDisk,
  limitDisk,
  limitDiskSync,
  oursDefault,
  oursDurable,
  tusOnePatch,
  tusToOurs,
  tus8m,
  naive,
  put,
];

/** Group names usable with --only, besides single ids. */
export const GROUPS: Record<string, readonly string[]> = {
  limits: ALL_CONTENDERS.filter((c) => c.kind === 'limit').map((c) => c.id),
  ours: ALL_CONTENDERS.filter((c) => c.kind === 'ours').map((c) => c.id),
  peers: ALL_CONTENDERS.filter((c) => c.kind === 'peer').map((c) => c.id),
};

/** Resolve a comma-separated --only list; unknown names are returned for the caller to reject. */
export function selectContenders(only: string[] | undefined): {
  selected: Contender[];
  unknown: string[];
} {
  if (!only || only.length === 0) return { selected: [...ALL_CONTENDERS], unknown: [] };
  const wanted = new Set<string>();
  const unknown: string[] = [];
  for (const name of only) {
    const group = GROUPS[name];
    if (group) group.forEach((id) => wanted.add(id));
    else if (ALL_CONTENDERS.some((c) => c.id === name)) wanted.add(name);
    else unknown.push(name);
  }
  // Keep the canonical order, whatever order the user typed.
  return { selected: ALL_CONTENDERS.filter((c) => wanted.has(c.id)), unknown };
}
