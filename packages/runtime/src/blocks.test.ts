import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, expectedTensors, exportIebin, openGguf, synthTensorValues, synthVocabulary, type ModelConfig } from '@ie/format';
import { buildGguf, llamaKv, quantizeIQ4_NL, quantizeQ4_K, quantizeQ5_K, quantizeQ6_K, type GgufTensorIn } from '@ie/testing';
import { ReferenceModel } from '../test/reference.js';
import { Engine, describeMix } from './index.js';

// K-quant rows are whole 256-element blocks: a llama 256 wide, two layers, GQA.
const config: ModelConfig = {
  ...SYNTH_PRESETS.tiny.config,
  dim: 256,
  n_heads: 4,
  n_kv_heads: 2,
  head_dim: 64,
  ffn_dim: 512,
  vocab_size: 320,
  n_layers: 2,
  tied_classifier: false,
};
const GGML = { f32: 0, q4_k: 12, q5_k: 13, q6_k: 14, iq4_nl: 20 } as const;
const QUANTIZE = { q4_k: quantizeQ4_K, q5_k: quantizeQ5_K, q6_k: quantizeQ6_K, iq4_nl: quantizeIQ4_NL };
type Kind = keyof typeof QUANTIZE;

/** A GGUF whose matrices are `kindOf(name)` blocks (norms f32), imported as IEBIN; the directory. */
async function importedGguf(kindOf: (name: string) => Kind | 'f32', seed: number): Promise<string> {
  const vocab = synthVocabulary(config.vocab_size);
  const tensors: GgufTensorIn[] = expectedTensors(config).map((t, i) => {
    const v = synthTensorValues(config, seed, i);
    const kind = t.shape.length === 1 ? 'f32' : kindOf(t.name);
    const data = kind === 'f32' ? new Uint8Array(v.buffer) : QUANTIZE[kind](v);
    return { name: t.name, ne: [...t.shape].reverse(), type: GGML[kind], data };
  });
  const d = mkdtempSync(join(tmpdir(), 'ie-rt-kq-'));
  writeFileSync(join(d, 'm.gguf'), buildGguf(llamaKv(config, vocab.pieces, vocab.types), tensors));
  const src = await openGguf(join(d, 'm.gguf'));
  await exportIebin(src, join(d, 'iebin'), { converter: 'test' });
  await src.close();
  return join(d, 'iebin');
}

/** Q4_K_M's recipe: attn_v and ffn_down in Q6_K, every other matrix Q4_K (the embedding and classifier too). */
const q4KM = (name: string): Kind => (/attn_v|ffn_down|^output\.weight/.test(name) ? 'q6_k' : 'q4_k');

function worst(got: Float32Array[], want: Float64Array[]): number {
  let w = 0;
  for (let p = 0; p < want.length; p++) {
    let scale = 0;
    for (const v of want[p]) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < want[p].length; i++) w = Math.max(w, Math.abs(got[p][i] - want[p][i]) / scale);
  }
  return w;
}

const argmax = (v: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
  return b;
};

describe('K-quant GGUF models run as imported', () => {
  const prompt = Array.from({ length: 12 }, (_, i) => (i * 41 + 7) % 300);

  it('a Q4_K_M file (q4_k + q6_k) gives the float64 reference logits of its decoded blocks, FP32 activations, 1 and 2 threads', async () => {
    const dir = await importedGguf(q4KM, 5);
    const ref = await ReferenceModel.load(dir);
    const want = prompt.map((t, p) => ref.forward(t, p));
    for (const threads of [1, 2]) {
      await using e = await Engine.load(dir, { threads, activations: 'f32' });
      const info = e.info();
      expect(info.precision).toBe('mixed');
      // 2 layers x (q, k, o, gate, up) in q4_k and 2 x (v, down) in q6_k.
      expect(info.precisionMix).toEqual({ q4_k: 10, q6_k: 4 });
      expect(describeMix(info.precisionMix)).toBe('mixed: 4 q6_k, 10 q4_k');
      expect(worst(await e.evaluate(prompt), want), `threads ${threads}`).toBeLessThan(1e-4);
    }
  });

  it.each(['q5_k', 'iq4_nl', 'q6_k'] as const)(
    'an all-%s file matches its reference too, and with int8 activations stays close and picks the same tokens',
    async (kind) => {
      const dir = await importedGguf(() => kind, 9);
      const ref = await ReferenceModel.load(dir);
      const want = prompt.map((t, p) => ref.forward(t, p));
      await using e = await Engine.load(dir, { activations: 'f32' });
      expect(e.info().precision).toBe(kind);
      expect(worst(await e.evaluate(prompt), want)).toBeLessThan(1e-4);
      await using q = await Engine.load(dir, { activations: 'int8' });
      const got = await q.evaluate(prompt);
      expect(worst(got, want)).toBeLessThan(0.05);
      const agree = got.filter((g, p) => argmax(g) === argmax(want[p])).length;
      expect(agree / prompt.length).toBeGreaterThanOrEqual(0.75);
    },
  );

  it("an all-iq4_nl file in 16-row records (q4Layout) gives its reference logits as rows do, and auto takes them where the CPU's info says", async () => {
    const dir = await importedGguf(() => 'iq4_nl', 11);
    const ref = await ReferenceModel.load(dir);
    const want = prompt.map((t, p) => ref.forward(t, p));
    await using rows = await Engine.load(dir, { activations: 'int8', q4Layout: 'rows' });
    await using rows16 = await Engine.load(dir, { activations: 'int8', q4Layout: 'rows16' });
    await using auto = await Engine.load(dir, { activations: 'int8' });
    expect(rows.info().iq4NlRows16Matrices).toBe(0);
    // 2 layers x 7 projections and the classifier (the untied embedding stays a table of rows).
    expect(rows16.info().iq4NlRows16Matrices).toBe(15);
    expect(rows16.info().q4Rows16Matrices).toBe(0);
    const worth = auto.info().iq4NlRows16;
    expect(auto.info().iq4NlRows16Matrices).toBe(worth === 'always' ? 15 : 0);
    // The same integer sums per block; only the float additions' order differs, which int8
    // re-quantization downstream can move by a rounding step.
    const a = await rows.evaluate(prompt);
    const b = await rows16.evaluate(prompt);
    expect(worst(b, want)).toBeLessThan(0.05);
    const agree = b.filter((g, p) => argmax(g) === argmax(a[p])).length;
    expect(agree / prompt.length).toBeGreaterThanOrEqual(0.75);
  });

  // Q4_K_M and Q5_K_M: q6_k for 2 layers x (v, down) and the classifier, the 4- or 5-bit type for 2
  // layers x (q, k, o, gate, up) (the untied embedding stays a table of rows).
  const mixes = [
    { file: 'Q4_K_M', kind: 'q4_k', recipe: q4KM, seed: 13 },
    { file: 'Q5_K_M', kind: 'q5_k', recipe: (name: string): Kind => (q4KM(name) === 'q6_k' ? 'q6_k' : 'q5_k'), seed: 17 },
  ] as const;
  it.each(mixes)(
    "a $file file's $kind and q6_k matrices in 16-row records (q4Layout) give the reference logits as rows do, and auto takes them where the CPU's info says",
    async ({ kind, recipe, seed }) => {
      const dir = await importedGguf(recipe, seed);
      const ref = await ReferenceModel.load(dir);
      const want = prompt.map((t, p) => ref.forward(t, p));
      // The records of each type, and whether auto takes them on this CPU.
      const counts = (e: Engine) => {
        const i = e.info();
        return [
          kind === 'q4_k' ? i.q4kRows16Matrices : i.q5kRows16Matrices,
          i.q6kRows16Matrices,
          i.q4Rows16Matrices + i.iq4NlRows16Matrices,
        ];
      };
      const pays = (e: Engine) => {
        const i = e.info();
        return [(kind === 'q4_k' ? i.q4kRows16 : i.q5kRows16) === 'always' ? 10 : 0, i.q6kRows16 === 'always' ? 5 : 0, 0];
      };
      await using f32 = await Engine.load(dir, { activations: 'f32', q4Layout: 'rows16' });
      expect(counts(f32)).toEqual([10, 5, 0]);
      expect(worst(await f32.evaluate(prompt), want)).toBeLessThan(1e-4);
      await using rows = await Engine.load(dir, { activations: 'int8', q4Layout: 'rows' });
      await using rows16 = await Engine.load(dir, { activations: 'int8', q4Layout: 'rows16' });
      await using auto = await Engine.load(dir, { activations: 'int8' });
      expect(counts(rows)).toEqual([0, 0, 0]);
      expect(counts(rows16)).toEqual([10, 5, 0]);
      expect(counts(auto)).toEqual(pays(auto));
      // The same integer sum per superblock and row; the float additions' order differs.
      const a = await rows.evaluate(prompt);
      const b = await rows16.evaluate(prompt);
      expect(worst(b, want)).toBeLessThan(0.05);
      const agree = b.filter((g, p) => argmax(g) === argmax(a[p])).length;
      expect(agree / prompt.length).toBeGreaterThanOrEqual(0.75);
    },
  );

  it('generates from a Q4_K_M file by default (int8 activations where the CPU has them) and converts down to int4w on request', async () => {
    const dir = await importedGguf(q4KM, 5);
    await using e = await Engine.load(dir);
    const out = await e.complete(prompt, { maxTokens: 8, temperature: 0 });
    expect(out.tokens.length).toBeGreaterThan(0);
    // q4_k and q6_k rank above int4w: both convert (RTN) when int4w is asked for; nothing converts up to int8w.
    await using low = await Engine.load(dir, { precision: 'int4w' });
    expect(low.info().precisionMix).toEqual({ int4w: 14 });
    await expect(Engine.load(dir, { precision: 'int8w' })).rejects.toMatchObject({ code: 'IE_PRECISION_UNSUPPORTED' });
  });
});
