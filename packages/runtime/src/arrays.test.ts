import { describe, expect, it } from 'vitest';
import { pushAll } from './arrays.js';

describe('pushAll', () => {
  it('appends every item in order, from arrays, typed arrays and iterables', () => {
    const out = [7];
    pushAll(out, [1, 2]);
    pushAll(out, Int32Array.of(-3, 4));
    pushAll(out, new Set([5, 5, 6]));
    expect(out).toEqual([7, 1, 2, -3, 4, 5, 6]);
  });

  it('takes a list far longer than call arguments may be (push(...list) throws a RangeError)', () => {
    const long = Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 0);
    expect(() => [].push(...(long as never[]))).toThrow(RangeError);
    const out: number[] = [];
    pushAll(out, long);
    expect(out.length).toBe(long.length);
    expect(out[12345]).toBe(long[12345]);
    expect(out[out.length - 1]).toBe(long[long.length - 1]);
  });
});
