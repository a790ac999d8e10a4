/**
 * bindWeights over models the test writes, with a stand-in kernel context that records what it is
 * given: which matrices stay zero-copy over the map, which convert (and to what), the precision
 * mix, the notices and the bytes one decoded token streams.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IebinReader, type ModelConfig, SYNTH_PRESETS, exportIebin, expectedTensors, synthModel } from '@ie/format';
import type { KernelContext, MappedFile, MatrixSpec, WeightMatrix } from '@ie/kernels';
import { describe, expect, it } from 'vitest';
import { IeRuntimeError } from './errors.js';
import { bindWeights } from './weights.js';

/** What the stand-in context was given for one matrix. */
interface Recorded {
  spec: MatrixSpec;
  bytes: number;
  /** Bound over the file's map (zero-copy), not over converted bytes. */
  mapped: boolean;
}
const MAPPING = { stand_in: true } as unknown as MappedFile;
const ctx = {
  matrix: (spec: MatrixSpec, data: Uint8Array, mapping?: MappedFile) => ({ spec, bytes: data.length, mapped: mapping === MAPPING }),
} as unknown as KernelContext;
const rec = (m: WeightMatrix | undefined) => m as unknown as Recorded;

async function reader(model: string | ModelConfig): Promise<IebinReader> {
  const dir = join(mkdtempSync(join(tmpdir(), 'ie-weights-')), 'm');
  await exportIebin(synthModel(model, { seed: 1 }), dir, { converter: 'test' });
  return IebinReader.fromBytes(readFileSync(join(dir, 'model.ie.json')), new Uint8Array(readFileSync(join(dir, 'model.ie.bin'))));
}

const roles = (r: IebinReader) => new Map(expectedTensors(r.config).map((e) => [e.name, e.role]));

describe('bindWeights', () => {
  it('binds a model as stored: every matrix over the map, vectors as f32, one embedding row per token', async () => {
    const r = await reader('tiny');
    const w = bindWeights(ctx, r, MAPPING, undefined);
    expect([w.precision, w.filePrecision, w.precisionMix, w.notices]).toEqual(['fp32', 'fp32', { fp32: 14 }, []]);
    const role = roles(r);
    let bytes = 0;
    for (const t of r.tensors) {
      if (t.shape.length === 1) {
        expect(w.vectors.get(t.name)).toEqual(new Float32Array(r.view(t.name).bytes.slice().buffer));
        bytes += t.bytes;
        continue;
      }
      expect(rec(w.matrices.get(t.name))).toEqual({
        spec: expect.objectContaining({ dtype: 'f32', shape: t.shape }),
        bytes: t.bytes,
        mapped: true,
      });
      // The untied embedding is a table: a token reads one row of it.
      bytes += role.get(t.name) === 'embedding' ? t.bytes / t.shape[0] : t.bytes;
    }
    expect(w.matrices.size + w.vectors.size).toBe(r.tensors.length);
    expect(w.bytesPerToken).toBe(Math.round(bytes));
    expect(w.bytesPerToken).toBe(501248);
  });

  it('int8w converts the projections only (per-row RTN), says so, and counts the converted bytes', async () => {
    const r = await reader('tiny');
    const w = bindWeights(ctx, r, MAPPING, 'int8w');
    expect([w.precision, w.filePrecision, w.precisionMix]).toEqual(['int8w', 'fp32', { int8w: 14 }]);
    expect(w.notices).toEqual([
      '14 matrices converted from fp32 to int8w at load with round-to-nearest; an offline export with a quantization manifest (ie convert --q4-map) is the accurate way and loads without conversion',
    ]);
    const q = rec(w.matrices.get('blk.0.ffn_down.weight'));
    expect([q.spec.dtype, q.spec.shape, q.spec.quant?.granularity, q.spec.quant?.group_size, q.mapped]).toEqual([
      'i8',
      [64, 176],
      'per_row',
      176,
      false,
    ]);
    for (const name of ['token_embd.weight', 'output.weight'])
      expect([rec(w.matrices.get(name)).spec.dtype, rec(w.matrices.get(name)).mapped]).toEqual(['f32', true]);
    expect(w.bytesPerToken).toBe(227200);
  });

  it('a float precision converts the tied embedding too (it is the classifier); bf16 -> fp32 is refused', async () => {
    const tied = await reader({ ...SYNTH_PRESETS.tiny.config, tied_classifier: true });
    const w = bindWeights(ctx, tied, MAPPING, 'fp16');
    expect([w.precision, w.precisionMix]).toEqual(['fp16', { fp16: 14 }]);
    const e = rec(w.matrices.get('token_embd.weight'));
    expect([e.spec.dtype, e.bytes, e.mapped]).toEqual(['f16', 512 * 64 * 2, false]);
    expect(w.bytesPerToken).toBe(251136);

    const oss = await reader('gpt-oss-tiny');
    let err: unknown;
    try {
      bindWeights(ctx, oss, MAPPING, 'fp32');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(IeRuntimeError);
    expect([(err as IeRuntimeError).code, (err as Error).message]).toEqual([
      'IE_PRECISION_UNSUPPORTED',
      "the model's weights are bf16; converting up to fp32 would not restore what quantization dropped. Load it at bf16, or export the fp32 model from its original weights",
    ]);
  });

  it('experts stay as stored, one matrix per expert over its slice of the map; a token streams its top-k of them', async () => {
    const r = await reader('gpt-oss-tiny');
    const w = bindWeights(ctx, r, MAPPING, 'int8w');
    expect([w.precision, w.filePrecision, w.precisionMix]).toEqual(['mixed', 'bf16', { int8w: 16, mxfp4: 12 }]);
    expect(w.notices).toHaveLength(1);
    const experts = w.experts.get('blk.0.ffn_down_exps.weight')?.map(rec) ?? [];
    const t = r.tensor('blk.0.ffn_down_exps.weight');
    expect(experts).toHaveLength(8);
    for (const x of experts) expect([x.spec.dtype, x.spec.shape, x.bytes, x.mapped]).toEqual(['mxfp4', [96, 128], t.bytes / 8, true]);
    expect(w.vectors.get('blk.0.ffn_down_exps.bias')).toHaveLength(8 * 96);
    expect(w.bytesPerToken).toBe(698368);
  });

  it('an f32 expert bias stored pretransposed or blocked along K binds to its row-major values', async () => {
    const exported = async (layouts?: Map<string, { order: 'row_major' | 'pretransposed'; block_k: number }>) => {
      const dir = join(mkdtempSync(join(tmpdir(), 'ie-weights-')), 'm');
      await exportIebin(synthModel('gpt-oss-tiny', { seed: 5 }), dir, { converter: 'test', dtype: 'f32', layouts });
      return IebinReader.fromBytes(readFileSync(join(dir, 'model.ie.json')), new Uint8Array(readFileSync(join(dir, 'model.ie.bin'))));
    };
    const names = ['blk.0.ffn_gate_exps.bias', 'blk.1.ffn_up_exps.bias', 'blk.2.ffn_down_exps.bias'];
    const plain = await exported();
    const laid = await exported(
      new Map([
        [names[0], { order: 'pretransposed', block_k: 0 }],
        [names[1], { order: 'row_major', block_k: 64 }],
        [names[2], { order: 'pretransposed', block_k: 0 }],
      ]),
    );
    expect(names.map((n) => [laid.tensor(n).dtype, laid.tensor(n).layout])).toEqual([
      ['f32', { order: 'pretransposed', block_k: 0 }],
      ['f32', { order: 'row_major', block_k: 64 }],
      ['f32', { order: 'pretransposed', block_k: 0 }],
    ]);
    // The stored bytes differ from the row-major file's; the bound values do not.
    expect(laid.view(names[0]).bytes).not.toEqual(plain.view(names[0]).bytes);
    const a = bindWeights(ctx, plain, MAPPING, undefined);
    const b = bindWeights(ctx, laid, MAPPING, undefined);
    for (const n of names) {
      expect(a.vectors.get(n)).toEqual(new Float32Array(plain.view(n).bytes.slice().buffer));
      expect(b.vectors.get(n), n).toEqual(a.vectors.get(n));
    }
  });

  it('overrides replace the file’s matrices and vectors', async () => {
    const r = await reader('tiny');
    const data = new Uint8Array(64 * 64 * 4);
    const norm = new Float32Array(64).fill(2);
    const overrides = {
      matrices: new Map([['blk.1.attn_q.weight', { spec: { dtype: 'f32', shape: [64, 64] } as MatrixSpec, data }]]),
      vectors: new Map([['blk.1.attn_norm.weight', norm]]),
    };
    const w = bindWeights(ctx, r, MAPPING, undefined, overrides);
    expect(rec(w.matrices.get('blk.1.attn_q.weight'))).toEqual({
      spec: { dtype: 'f32', shape: [64, 64] },
      bytes: data.length,
      mapped: false,
    });
    expect(w.vectors.get('blk.1.attn_norm.weight')).toBe(norm);
    expect(w.bytesPerToken).toBe(501248);
  });
});
