import { mkdtempSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportIebin, synthModel, writeHfDir, SYNTH_PRESETS, openHfDir, type ModelConfig } from '@ie/format';
import { ReferenceModel } from '../test/reference.js';
import { Engine } from './index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-rt-'));
const base = SYNTH_PRESETS.tiny.config;

async function iebin(config: ModelConfig, seed: number): Promise<string> {
  const d = tmp();
  await exportIebin(synthModel(config, { seed }), d, { converter: 'test' });
  return d;
}

/** Worst |got - want| / max|want| over every position's logits. */
function worst(got: Float32Array[], want: Float64Array[]): number {
  let w = 0;
  for (let p = 0; p < want.length; p++) {
    let scale = 0;
    for (const v of want[p]) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < want[p].length; i++) w = Math.max(w, Math.abs(got[p][i] - want[p][i]) / scale);
  }
  return w;
}

const SHAPES: Array<[string, Partial<ModelConfig>]> = [
  ['MHA, tied classifier', { n_heads: 4, n_kv_heads: 4, tied_classifier: true }],
  ['GQA 4/2, separate classifier', {}],
  [
    'GQA 6/2, odd dims (dim 72, head 12, ffn 100, vocab 300)',
    { dim: 72, n_heads: 6, n_kv_heads: 2, head_dim: 12, ffn_dim: 100, vocab_size: 300 },
  ],
  [
    'Qwen2 with q/k/v biases, rotate-half RoPE',
    { architecture: 'qwen2', attn_qkv_bias: true, rope_style: 'rotate_half', rope_theta: 1e6, tied_classifier: true },
  ],
  [
    'Llama 3 RoPE scaling, 3 layers, MQA',
    {
      n_layers: 3,
      n_kv_heads: 1,
      rope_theta: 500000,
      rope_scaling: { type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_context_length: 16 },
    },
  ],
  ['Mistral sliding window 8', { architecture: 'mistral', sliding_window: 8 }],
];

describe('FP32 logits against a float64 reference forward pass', () => {
  const prompt = Array.from({ length: 20 }, (_, i) => (i * 37 + 5) % 250);

  it.each(SHAPES)('%s', async (_name, over) => {
    const config: ModelConfig = { ...base, ...over };
    const dir = await iebin(config, 3);
    const ref = await ReferenceModel.load(dir);
    const want = prompt.map((t, p) => ref.forward(t, p));
    for (const threads of [1, 2]) {
      await using e = await Engine.load(dir, { threads });
      const got = await e.evaluate(prompt);
      expect(worst(got, want), `threads ${threads}`).toBeLessThan(1e-4);
    }
  });

  it('a Hugging Face directory (rotate-half, Q/K rows as HF stores them) matches too', async () => {
    const config: ModelConfig = { ...base, n_kv_heads: 2 };
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 8 }), hf, { shards: 2 });
    const dir = tmp();
    const src = await openHfDir(hf);
    await exportIebin(src, dir, { converter: 'test' });
    await src.close();
    const ref = await ReferenceModel.load(dir);
    expect(ref.c.rope_style).toBe('rotate_half');
    const want = prompt.map((t, p) => ref.forward(t, p));
    await using e = await Engine.load(dir);
    expect(worst(await e.evaluate(prompt), want)).toBeLessThan(1e-4);
    // The same weights in llama2.c order (adjacent pairs) give the same logits: the layouts agree.
    const adj = await iebin(config, 8);
    await using e2 = await Engine.load(adj);
    expect(worst(await e2.evaluate(prompt), want)).toBeLessThan(1e-4);
  });

  it('K-panels made at load (blockK) give the reference logits; auto cuts only rows longer than 2048 columns', async () => {
    // ffn 2100: the down projection's rows are long enough for auto; dim 128 for forced 64-column panels.
    const config: ModelConfig = { ...base, dim: 128, head_dim: 32, ffn_dim: 2100 };
    const dir = await iebin(config, 6);
    const ref = await ReferenceModel.load(dir);
    const want = prompt.map((t, p) => ref.forward(t, p));
    const cases: Array<[Parameters<typeof Engine.load>[1], number]> = [
      [{}, config.n_layers],
      [{ blockK: 0 }, 0],
      [{ blockK: 64, threads: 2 }, 7 * config.n_layers + 1],
      [{ blockK: 'auto', precision: 'bf16', maxBatch: 5 }, config.n_layers],
    ];
    for (const [options, panels] of cases) {
      await using e = await Engine.load(dir, options);
      expect(e.info().blockedKMatrices, JSON.stringify(options)).toBe(panels);
      expect(worst(await e.evaluate(prompt), want), JSON.stringify(options)).toBeLessThan(options?.precision ? 2e-2 : 1e-4);
    }
    await expect(Engine.load(dir, { blockK: 100 })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION' });
  });

  it('prefill in chunks gives the logits the one-token steps give', async () => {
    const dir = await iebin({ ...base, n_kv_heads: 2 }, 4);
    const ref = await ReferenceModel.load(dir);
    const want = prompt.map((t, p) => ref.forward(t, p));
    for (const maxBatch of [1, 3, 7, 32]) {
      await using e = await Engine.load(dir, { maxBatch });
      // generate() prefills the prompt and samples from the last position's logits.
      const g = e.generate(prompt, { temperature: 0, maxTokens: 1, logprobs: true });
      const pieces = [];
      for await (const p of g) pieces.push(p);
      const last = want[want.length - 1];
      let best = 0;
      for (let i = 1; i < last.length; i++) if (last[i] > last[best]) best = i;
      expect(g.tokens, `maxBatch ${maxBatch}`).toEqual([best]);
      const mx = Math.max(...last);
      const lse = mx + Math.log(last.reduce((a, v) => a + Math.exp(v - mx), 0));
      expect(Math.abs((pieces[0].logprob as number) - (last[best] - lse))).toBeLessThan(1e-4);
    }
  });
});

describe('liveness: a generation nobody pulls does not hold the engine', () => {
  it('an abandoned iterator gives the engine up to the next generate() after idleTimeoutMs, and dispose() never waits for it', async () => {
    const dir = await iebin(base, 12);
    const e = await Engine.load(dir, { threads: 1, idleTimeoutMs: 50 });
    const first = e.generate([1, 5, 9], { maxTokens: 50, temperature: 0 })[Symbol.asyncIterator]();
    await first.next(); // one piece out, then the consumer walks away without return()
    const t0 = performance.now();
    const second = await e.complete([1, 5, 9], { maxTokens: 3, temperature: 0 });
    expect(second.tokens).toHaveLength(3);
    expect(performance.now() - t0).toBeLessThan(5000);
    // The abandoned one fails cleanly if it is ever pulled again.
    await expect(first.next()).rejects.toMatchObject({ code: 'IE_ABORTED' });
    const third = e.generate([1, 5, 9], { maxTokens: 50 })[Symbol.asyncIterator]();
    await third.next();
    await e.dispose(); // settles although `third` is parked at a yield
    await expect(third.next()).rejects.toMatchObject({ code: 'IE_DISPOSED' });
  });
});

describe('arguments of the wrong kind', () => {
  it('are IE_INVALID_OPTION naming the argument, never a TypeError from inside', async () => {
    const e = await Engine.load(await iebin(base, 14), { threads: 1 });
    const bad = async (f: () => unknown, option: string) => {
      let err: unknown;
      try {
        await f();
      } catch (x) {
        err = x;
      }
      expect(err, option).toMatchObject({ code: 'IE_INVALID_OPTION', option });
    };
    await bad(() => e.complete(null as never), 'prompt');
    await bad(() => e.complete(5 as never), 'prompt');
    await bad(() => e.complete([1, 5], null as never), 'options');
    await bad(() => e.complete([1, 5], { stopTokens: 5 as never }), 'stopTokens');
    await bad(() => e.complete([1, 5], { stopTokens: '0123' as never }), 'stopTokens');
    await bad(() => e.complete([1, 5], { onText: 5 } as never), 'onText');
    await bad(() => e.complete([1, 5], { signal: { aborted: false } as never }), 'signal');
    await bad(() => e.evaluate(null as never), 'ids');
    await bad(() => e.detokenize(null as never), 'ids');
    await bad(() => e.detokenize([e.config.vocab_size]), 'ids');
    await bad(() => e.detokenize([-1]), 'ids');
    // The engine is unharmed.
    expect((await e.complete([1, 5], { maxTokens: 2, temperature: 0 })).tokens).toHaveLength(2);
    await e.dispose();
  });
});

describe('a model file changed in place while loaded', () => {
  it('is a coded error at the next step, not a SIGBUS', async () => {
    const dir = await iebin(base, 13);
    const e = await Engine.load(dir, { threads: 1 });
    expect((await e.complete([1, 5], { maxTokens: 2, temperature: 0 })).tokens).toHaveLength(2);
    truncateSync(join(dir, 'model.ie.bin'), 4096);
    await expect(e.complete([1, 5], { maxTokens: 2 })).rejects.toMatchObject({ code: 'IE_MODEL_CHANGED' });
    await expect(e.evaluate([1, 5])).rejects.toMatchObject({ code: 'IE_MODEL_CHANGED' });
    // The benchmark's work-touch reads the mapped file too.
    expect(() => e.touchModel(4096, 64)).toThrow(expect.objectContaining({ code: 'IE_MODEL_CHANGED' }));
    await e.dispose();
  });
});

describe('stop_ids: tokens that end a generation besides EOS', () => {
  it("a generation ends at the first stop id (Llama 3's <|eot_id|>), as at EOS", async () => {
    const free = await Engine.load(await iebin(base, 21), { threads: 1 });
    const run = await free.complete([1, 5, 9], { maxTokens: 6, temperature: 0 });
    await free.dispose();
    const stop = run.tokens[3];
    const first = run.tokens.indexOf(stop);
    await using e = await Engine.load(await iebin({ ...base, stop_ids: [stop] }, 21), { threads: 1 });
    const r = await e.complete([1, 5, 9], { maxTokens: 6, temperature: 0 });
    expect(r.tokens).toEqual(run.tokens.slice(0, first));
    expect(r.stopReason).toBe('eos');
  });
});
