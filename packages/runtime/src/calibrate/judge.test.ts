import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TensorEntry } from '@ie/format';
import { applyTransforms, dequantizeMatrix, encodePlanned, outputQuality, type EntryTransform, type TensorPlan } from '@ie/quant';
import { seededFloats } from '@ie/testing';
import type { MappedModel } from '../load.js';
import type { ScaleSearch } from './awq.js';
import { calibrationModel } from './bind.js';
import { captureActivations, type Captured } from './capture.js';
import { finalPlan, judgeMatrix, packAndJudge } from './judge.js';
import { valuesOf, withMatrix } from './linear.js';
import { isQuantized, planModel, policyOf, type ModelPlan } from './plan.js';
import { loadedPolicy, openSynth } from './test-model.js';

/** n × N outputs of X (n × K) through W (N × K), in float64, rounded to f32. */
function matmul(W: Float32Array, X: Float32Array, n: number, N: number, K: number): Float32Array {
  const Y = new Float32Array(n * N);
  for (let r = 0; r < n; r++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += W[j * K + k] * X[r * K + k];
      Y[r * N + j] = s;
    }
  return Y;
}

describe('judge: pack each changed tensor and measure it', () => {
  let mapped: MappedModel;
  let model: ModelPlan;
  let captured: Captured;
  beforeAll(async () => {
    mapped = await openSynth();
    model = planModel(policyOf(loadedPolicy((p) => (p.defaults = { ...p.defaults, method: 'awq' }))), mapped.reader, 'policy.json');
    const seqs = [0, 1].map((i) => [1, ...Array.from({ length: 15 }, (_, k) => (i * 97 + k * 53 + 2) % 512)]);
    captured = captureActivations(calibrationModel(mapped, 16, { capture: true }).forward, seqs, {
      gateRows: 512,
      keepLogits: false,
      progress: () => {},
    });
  });
  afterAll(() => mapped.close());
  const plan = (name: string) => model.planOf.get(name) as TensorPlan;

  it('finalPlan attaches the search’s transforms and packs awq without a searched site as clip', () => {
    const t: EntryTransform[] = [{ op: 'scale_columns', by: 'blk.0.attn_in' }];
    const search = { transforms: new Map([['blk.0.attn_q.weight', t]]), alphas: new Map([['blk.0.attn_q.weight', 0.4]]) };
    expect(finalPlan(plan('blk.0.attn_q.weight'), search)).toMatchObject({ method: 'awq', transforms: t });
    expect(finalPlan(plan('blk.0.attn_k.weight'), search)).toMatchObject({ method: 'clip', transforms: [] });
    expect(finalPlan(plan('blk.0.attn_norm.weight'), search)).toMatchObject({ method: null, transforms: [] });
  });

  it.each([
    ['scale_columns', 64],
    ['divide_rows', 32],
  ] as const)('judgeMatrix measures a %s-rewritten matrix against the function the FP matrix computes', async (op, len) => {
    const [N, K, n] = [32, 64, 6];
    const W = seededFloats(N * K, 21, 0.2);
    const X = seededFloats(n * K, 22);
    const s = Float32Array.from(seededFloats(len, 23), (v) => 0.5 + Math.abs(v));
    const scales = new Map([['s', s]]);
    const p: TensorPlan = { ...plan('blk.0.attn_k.weight'), method: 'rtn', transforms: [{ op, by: 's' }] };
    const rewritten = Float32Array.from(W);
    applyTransforms(rewritten, p.shape, p.transforms, scales);
    const enc = await encodePlanned(p, rewritten);
    const got = withMatrix(mapped.ctx, p, enc, (m) => judgeMatrix(mapped.ctx, m, p, { rows: X }, n, scales, matmul(W, X, n, N, K)));
    // By hand: dequantized weights, the input divided by s (columns) or the outputs multiplied by s (rows).
    const deq = dequantizeMatrix(enc.bytes, N, K, { dtype: 'q4', quant: enc.quant as NonNullable<typeof enc.quant> });
    const Xin = op === 'scale_columns' ? X.map((v, i) => Math.fround(v / s[i % K])) : X;
    const Y = matmul(deq, Xin, n, N, K);
    if (op === 'divide_rows') for (let i = 0; i < Y.length; i++) Y[i] *= s[i % N];
    const want = outputQuality(matmul(W, X, n, N, K), Y);
    expect(got.cosine).toBeCloseTo(want.cosine, 6);
    expect(got.snr_db).toBeCloseTo(want.snr_db, 2);
    expect(got.cosine).toBeLessThan(1);
    expect(got.cosine).toBeGreaterThan(0.95);
  });

  it('packs every changed tensor, judges those with captured inputs, and folds the search’s rewrites', async () => {
    const fp = calibrationModel(mapped, 16, { capture: false }).weights;
    const s = Float32Array.from(seededFloats(64, 31), (v) => 0.6 + Math.abs(v));
    const key = 'blk.0.ffn_in';
    const search: ScaleSearch = {
      scales: new Map([[key, s]]),
      transforms: new Map([
        ['blk.0.ffn_gate.weight', [{ op: 'scale_columns', by: key }]],
        ['blk.0.ffn_up.weight', [{ op: 'scale_columns', by: key }]],
        ['blk.0.ffn_norm.weight', [{ op: 'divide', by: key }]],
      ]),
      alphas: new Map([
        ['blk.0.ffn_gate.weight', 0.5],
        ['blk.0.ffn_up.weight', 0.5],
      ]),
    };
    const events: string[] = [];
    const r = await packAndJudge({
      ctx: mapped.ctx,
      reader: mapped.reader,
      plans: model.plans,
      search,
      fp: fp.matrices,
      sites: captured.sites,
      gateN: captured.gateN,
      progress: (p) => events.push(p.detail as string),
    });
    const quantized = model.plans.filter((p) => isQuantized(p)).map((p) => p.name);
    expect(quantized).toHaveLength(14);
    expect([...r.overrides.matrices.keys()]).toEqual(quantized);
    expect([...r.quality.keys()]).toEqual(quantized);
    // Packed in file order: the quantized matrices and the norm the fold rewrites.
    expect(events).toEqual(model.plans.map((p) => p.name).filter((n) => quantized.includes(n) || n === 'blk.0.ffn_norm.weight'));
    const norm = valuesOf(mapped.reader, mapped.reader.tensors.find((t) => t.name === 'blk.0.ffn_norm.weight') as TensorEntry);
    expect([...(r.overrides.vectors.get('blk.0.ffn_norm.weight') as Float32Array)]).toEqual([...norm].map((v, i) => Math.fround(v / s[i])));
    for (const q of r.quality.values()) expect(q.cosine).toBeGreaterThan(0.95);
    expect(r.planOf.get('blk.0.ffn_gate.weight')).toMatchObject({ method: 'awq', transforms: [{ op: 'scale_columns', by: key }] });
    expect(r.planOf.get('blk.1.ffn_gate.weight')).toMatchObject({ method: 'clip', transforms: [] });
    expect(r.planOf.get('blk.1.ffn_norm.weight')).toBe(model.planOf.get('blk.1.ffn_norm.weight'));
    // The packed bytes are the plan's encoding of the rewritten values.
    const gate = r.planOf.get('blk.0.ffn_gate.weight') as TensorPlan;
    const values = valuesOf(mapped.reader, mapped.reader.tensors.find((t) => t.name === gate.name) as TensorEntry);
    applyTransforms(values, gate.shape, gate.transforms, search.scales);
    expect(r.overrides.matrices.get(gate.name)?.data).toEqual((await encodePlanned(gate, values)).bytes);
  });
});
