/**
 * Appends `items` to `out` one at a time. `out.push(...items)` passes them as call arguments,
 * and a long list (the ids of a megabyte prompt, a grammar's `{m}` repeated 60,000 times)
 * overflows the stack with a RangeError.
 */
/** How many leading items `a` and `b` share. */
export function sharedLength<T>(a: readonly T[], b: readonly T[]): number {
  const most = Math.min(a.length, b.length);
  let n = 0;
  while (n < most && a[n] === b[n]) n++;
  return n;
}

export function pushAll<T>(out: T[], items: Iterable<T>): void {
  for (const item of items) out.push(item);
}
