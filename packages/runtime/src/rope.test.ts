import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, expectedTensors, exportIebin, openGguf, synthTensorValues, synthVocabulary, type ModelConfig } from '@ie/format';
import { buildGguf, llamaKv, type GgufTensorIn } from '@ie/testing';
import { ReferenceModel } from '../test/reference.js';
import { ropeFrequencies } from './forward.js';
import { Engine } from './index.js';

const base: ModelConfig = { ...SYNTH_PRESETS.tiny.config, tied_classifier: false };
const scaling = { type: 'llama3' as const, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_context_length: 64 };

/** llama.cpp's convert_hf_to_gguf: Llama 3 scaling as one divisor per frequency (rope_freqs.weight). */
function llama3Factors(c: ModelConfig): number[] {
  const half = c.head_dim / 2;
  const lowWl = scaling.original_context_length / scaling.low_freq_factor;
  const highWl = scaling.original_context_length / scaling.high_freq_factor;
  return Array.from({ length: half }, (_, i) => {
    const wl = (2 * Math.PI) / c.rope_theta ** (-(2 * i) / c.head_dim);
    if (wl < highWl) return 1;
    if (wl > lowWl) return scaling.factor;
    const smooth = (scaling.original_context_length / wl - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
    return 1 / ((1 - smooth) / scaling.factor + smooth);
  });
}

describe('Llama 3.1 GGUF RoPE frequency factors (rope_freqs.weight)', () => {
  it('divide each frequency as Llama 3 scaling does', () => {
    const factors = llama3Factors(base);
    expect(new Set(factors.map((f) => (f === 1 ? 'one' : f === 8 ? 'eight' : 'between'))).size).toBe(3);
    const a = ropeFrequencies({ ...base, rope_scaling: scaling }).freqs;
    const b = ropeFrequencies({ ...base, rope_freq_factors: factors }).freqs;
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]) / a[i]).toBeLessThan(1e-12);
  });

  it('are imported from a GGUF into the config, and the engine runs with them (float64 reference, 1e-4)', async () => {
    const factors = llama3Factors(base);
    const vocab = synthVocabulary(base.vocab_size);
    const tensors: GgufTensorIn[] = expectedTensors(base).map((t, i) => ({
      name: t.name,
      ne: [...t.shape].reverse(),
      type: 0,
      data: new Uint8Array(synthTensorValues(base, 6, i).buffer),
    }));
    tensors.push({ name: 'rope_freqs.weight', ne: [base.head_dim / 2], type: 0, data: new Uint8Array(Float32Array.from(factors).buffer) });
    const d = mkdtempSync(join(tmpdir(), 'ie-rope-'));
    writeFileSync(join(d, 'm.gguf'), buildGguf(llamaKv(base, vocab.pieces, vocab.types), tensors));
    const src = await openGguf(join(d, 'm.gguf'));
    expect(src.config.rope_freq_factors?.map((f) => Math.fround(f))).toEqual(factors.map((f) => Math.fround(f)));
    await exportIebin(src, join(d, 'iebin'), { converter: 'test' });
    await src.close();
    const ref = await ReferenceModel.load(join(d, 'iebin'));
    const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 3) % base.vocab_size);
    const want = ids.map((t, p) => ref.forward(t, p));
    await using e = await Engine.load(join(d, 'iebin'), { threads: 1 });
    const got = await e.evaluate(ids);
    for (let p = 0; p < ids.length; p++) {
      let scale = 0;
      let worst = 0;
      for (let i = 0; i < want[p].length; i++) {
        scale = Math.max(scale, Math.abs(want[p][i]));
        worst = Math.max(worst, Math.abs(got[p][i] - want[p][i]));
      }
      expect(worst / scale, `position ${p}`).toBeLessThan(1e-4);
    }
  });
});
