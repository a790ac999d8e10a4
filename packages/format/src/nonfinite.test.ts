/** verify() flags NaN/Inf in float tensors and in the float scales of quantized ones, naming the tensor. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportIebin } from './export-iebin.js';
import { IebinReader } from './reader.js';
import type { ModelSource } from './source.js';
import { synthModel } from './synth.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-nonfinite-'));

/** `src` with one tensor's bytes changed by `mutate` (a seeded corruption). */
function poisoned(src: ModelSource, name: string, mutate: (b: Uint8Array) => void): ModelSource {
  const t = src.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return {
    ...src,
    tensors: src.tensors.map((x) =>
      x === t
        ? {
            ...x,
            read: async () => {
              const b = (await t.read()).slice();
              mutate(b);
              return b;
            },
          }
        : x,
    ),
  };
}

async function problems(src: ModelSource, options: { dtype?: 'f16' | 'bf16' } = {}) {
  const d = tmp();
  await exportIebin(src, d, { converter: 'test', ...options });
  const r = await IebinReader.open(d);
  try {
    return (await r.verify()).problems;
  } finally {
    await r.close();
  }
}

describe('verify() and non-finite values', () => {
  it('passes clean models', async () => {
    expect(await problems(synthModel('tiny', { seed: 3 }))).toEqual([]);
    expect(await problems(synthModel('gpt-oss-tiny', { seed: 3 }))).toEqual([]);
  });

  it.each([
    ['f32 NaN', undefined, Number.NaN],
    ['f16 +Inf', 'f16', Number.POSITIVE_INFINITY],
    ['bf16 -Inf', 'bf16', Number.NEGATIVE_INFINITY],
  ] as const)('flags %s in a weight, naming the tensor and element', async (_what, dtype, value) => {
    const src = poisoned(synthModel('tiny', { seed: 3 }), 'blk.1.attn_k.weight', (b) => {
      new DataView(b.buffer, b.byteOffset).setFloat32(4 * 77, value, true);
    });
    const p = await problems(src, dtype ? { dtype } : {});
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ code: 'IEBIN_NONFINITE', field: expect.stringMatching(/^tensors\[\d+\]$/) });
    expect(p[0].message).toMatch(/^blk\.1\.attn_k\.weight: element 77 is NaN or infinite/);
  });

  it('flags an MXFP4 block whose E8M0 scale is 255 (NaN)', async () => {
    const src = synthModel('gpt-oss-tiny', { seed: 3 });
    const t = src.tensors.find((x) => x.dtype === 'mxfp4');
    if (!t) throw new Error('gpt-oss-tiny has no mxfp4 tensor');
    const p = await problems(
      poisoned(src, t.name, (b) => {
        b[17 * 5] = 255;
      }),
    );
    expect(p).toHaveLength(1);
    expect(p[0].code).toBe('IEBIN_NONFINITE');
    expect(p[0].message).toContain(`${t.name}: block 5 is NaN or infinite`);
  });
});
