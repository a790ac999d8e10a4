/**
 * Appends `items` to `out` one at a time. `out.push(...items)` passes them as call arguments,
 * and a long list (the ids of a megabyte prompt, a grammar's `{m}` repeated 60,000 times)
 * overflows the stack with a RangeError.
 */
export function pushAll<T>(out: T[], items: Iterable<T>): void {
  for (const item of items) out.push(item);
}
