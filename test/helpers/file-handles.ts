/**
 * A FileHandle with some of its members replaced, for fault injection and recording in the
 * `vi.mock('node:fs/promises')` factories of store tests. `replace(prop)` returns the replacement
 * or undefined to keep the handle's own member (methods stay bound to the real handle).
 */
export function overrideHandle<H extends object>(
  handle: H,
  replace: (prop: string | symbol) => unknown,
): H {
  return new Proxy(handle, {
    get(target, prop) {
      const replacement = replace(prop);
      if (replacement !== undefined) return replacement;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}
