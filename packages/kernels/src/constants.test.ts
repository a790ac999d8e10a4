import { describe, expect, it } from 'vitest';
import { GROUP_SIZES, IEBIN_ALIGNMENT, Q4_SYMMETRIC_ZERO, tensorByteSize } from '@ie/format';
import { loadAddon } from './addon.js';
import { KERNEL_CONSTANTS, matrixByteSize, type MatrixSpec } from './index.js';
import { matrixGeometry, nativeDescriptor } from './matrix-spec.js';

describe("one layout, three places: @ie/format, the kernels' TypeScript and the C++ addon", () => {
  it('agree on the constants', () => {
    const addon = loadAddon();
    expect(addon.constants).toEqual(KERNEL_CONSTANTS);
    // Every number the program's wire carries is among them (not merely equal by both lacking it).
    for (const table of ['weightTypes', 'scaleTypes', 'kvTypes', 'opKinds', 'activations', 'ropeStyles'])
      expect(Object.keys(addon.constants[table] as object).length, table).toBeGreaterThan(1);
    expect(Object.keys(KERNEL_CONSTANTS.opKinds)).toEqual([
      'embed',
      'rmsnorm',
      'matmul',
      'add',
      'rope',
      'store',
      'attention',
      'swiglu',
      'argmax',
      'moe',
      'gather',
      'tap',
    ]);
    expect(Object.values(KERNEL_CONSTANTS.opKinds)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(KERNEL_CONSTANTS.alignment).toBe(IEBIN_ALIGNMENT);
    expect(KERNEL_CONSTANTS.q4SymmetricZero).toBe(Q4_SYMMETRIC_ZERO);
    expect([...KERNEL_CONSTANTS.groupSizes]).toEqual([...GROUP_SIZES]);
  });

  it('compute the same byte size for every dtype, group, scale type and odd shape', () => {
    const addon = loadAddon();
    let checked = 0;
    for (const [rows, cols] of [
      [1, 1],
      [3, 33],
      [7, 100],
      [64, 129],
      [5, 4096],
      [11, 5632],
    ]) {
      const specs: MatrixSpec[] = [
        { dtype: 'f32', shape: [rows, cols] },
        { dtype: 'f16', shape: [rows, cols] },
        { dtype: 'bf16', shape: [rows, cols] },
      ];
      for (const scale_dtype of ['f16', 'bf16', 'f32'] as const) {
        specs.push({
          dtype: 'i8',
          shape: [rows, cols],
          quant: { scheme: 'symmetric', granularity: 'per_row', group_size: cols, scale_dtype, scales_offset: 0, zeros_offset: null },
        });
        for (const group_size of GROUP_SIZES) {
          specs.push({
            dtype: 'i8',
            shape: [rows, cols],
            quant: { scheme: 'symmetric', granularity: 'per_group', group_size, scale_dtype, scales_offset: 0, zeros_offset: null },
          });
          for (const scheme of ['symmetric', 'affine'] as const)
            specs.push({
              dtype: 'q4',
              shape: [rows, cols],
              quant: { scheme, granularity: 'per_group', group_size, scale_dtype, scales_offset: 0, zeros_offset: null },
            });
        }
      }
      for (const s of specs) {
        const format = tensorByteSize(s.dtype, s.shape, s.quant ?? null);
        // Fill in the plane offsets the way a writer would, then size it three ways.
        if (s.quant) {
          const probe = { ...s, quant: { ...s.quant } };
          try {
            matrixGeometry(probe);
          } catch (e) {
            const m = /scales_offset must be (\d+)/.exec((e as Error).message);
            probe.quant.scales_offset = Number(m?.[1]);
          }
          try {
            matrixGeometry(probe);
          } catch (e) {
            const m = /zeros_offset must be (\d+)/.exec((e as Error).message);
            probe.quant.zeros_offset = Number(m?.[1]);
          }
          s.quant = probe.quant;
        }
        const ts = matrixByteSize(s);
        const cpp = addon.matrixBytes(nativeDescriptor(s, matrixGeometry(s)));
        expect([ts, cpp], `${s.dtype} ${JSON.stringify(s.quant)} ${rows}x${cols}`).toEqual([Number(format), Number(format)]);
        checked++;
      }
    }
    expect(checked).toBe(6 * (3 + 3 * (1 + 3 * 3)));
  });
});
