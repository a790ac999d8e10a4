/** The sampler's penalties and logit bias against a float64 reference over seeded logits. */
import { describe, expect, it } from 'vitest';
import { seededFloats } from '@ie/testing';
import { Sampler, resolveSampling, type SamplingOptions } from './sampler.js';

const V = 37;
const logits = seededFloats(V, 7, 4);

/** llama.cpp's penalties over the last n of `history`, then the bias, in float64 (then rounded as a Float32Array stores it). */
function reference(
  o: Required<Pick<SamplingOptions, 'repetitionPenalty' | 'presencePenalty' | 'frequencyPenalty' | 'repeatLastN'>>,
  history: number[],
  bias: Record<number, number> = {},
) {
  const out = Array.from(logits, Number);
  const counts = new Map<number, number>();
  for (const t of history.slice(-o.repeatLastN)) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, n] of counts) {
    let v = out[t];
    v = v > 0 ? v / o.repetitionPenalty : v * o.repetitionPenalty;
    out[t] = Math.fround(v - n * o.frequencyPenalty - o.presencePenalty);
  }
  for (const [t, b] of Object.entries(bias)) out[Number(t)] = Math.fround(out[Number(t)] + b);
  return out;
}

const sampler = (o: SamplingOptions) => new Sampler(resolveSampling({ seed: 1, ...o }));

describe('Sampler.penalized', () => {
  const history = [3, 3, 5, 30, 3, 12, 5, 36, 0];

  it('applies the repetition, frequency and presence penalties per token of the window, as llama.cpp', () => {
    for (const o of [
      { repetitionPenalty: 1.5, presencePenalty: 0.5, frequencyPenalty: 0.25, repeatLastN: 64 },
      { repetitionPenalty: 1, presencePenalty: -1.25, frequencyPenalty: 1.75, repeatLastN: 64 },
      { repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 2, repeatLastN: 4 }, // the last 4 only: 12, 5, 36, 0
    ]) {
      const got = Array.from(sampler(o).penalized(logits, history));
      expect(got).toEqual(reference(o, history));
    }
    // Token 3 appears three times: frequency 2 takes 6 off, with the window over all of it.
    const f = sampler({ frequencyPenalty: 2, repeatLastN: 64 }).penalized(logits, history);
    expect(f[3]).toBe(Math.fround(logits[3] - 6));
    expect(f[1]).toBe(logits[1]);
  });

  it('adds the logit bias; -100 keeps greedy decoding off a token, +100 puts it on one', () => {
    const bias = { 4: 2.5, 9: -1 };
    expect(Array.from(sampler({ logitBias: bias }).penalized(logits, history))).toEqual(
      reference({ repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, repeatLastN: 0 }, [], bias),
    );
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    const banned = sampler({ temperature: 0, logitBias: { [best]: -100 } }).sample(logits, [], best);
    expect(banned).not.toBe(best);
    const worst = logits.indexOf(Math.min(...logits));
    expect(sampler({ temperature: 0, logitBias: { [worst]: 100 } }).sample(logits, [], best)).toBe(worst);
  });

  it('leaves the logits alone (the same array) when nothing applies', () => {
    expect(sampler({}).penalized(logits, history)).toBe(logits);
    expect(sampler({ presencePenalty: 1, repeatLastN: 0 }).penalized(logits, history)).toBe(logits);
  });

  it('refuses values outside OpenAI ranges, naming the option', () => {
    for (const [o, option] of [
      [{ presencePenalty: 2.5 }, 'presencePenalty'],
      [{ frequencyPenalty: -3 }, 'frequencyPenalty'],
      [{ frequencyPenalty: Number.NaN }, 'frequencyPenalty'],
      [{ logitBias: { 5: 101 } }, 'logitBias[5]'],
      [{ logitBias: { x: 1 } }, 'logitBias["x"]'],
      [{ logitBias: { '-1': 1 } }, 'logitBias["-1"]'],
      [{ logitBias: [1, 2] }, 'logitBias'],
      [{ logitBias: { 5: '1' } }, 'logitBias[5]'],
    ] as [SamplingOptions, string][])
      expect(() => resolveSampling(o)).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION', option }));
  });
});

describe('Sampler.sample: the filters and the temperature, in llama.cpp order', () => {
  /** How often each token is drawn from `probs` (as logits) in `draws` seeded draws. */
  const frequencies = (probs: number[], o: SamplingOptions, draws = 20_000) => {
    const s = sampler({ topK: 0, topP: 1, minP: 0, ...o });
    const x = Float32Array.from(probs, Math.log);
    const counts = new Array(probs.length).fill(0);
    for (let i = 0; i < draws; i++) counts[s.sample(x, [])]++;
    return counts.map((c) => c / draws);
  };
  /** The temperature's distribution over the kept tokens (the rest 0). */
  const want = (probs: number[], kept: number[], t: number) => {
    const w = probs.map((p, i) => (kept.includes(i) ? p ** (1 / t) : 0));
    const sum = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / sum);
  };
  const close = (got: number[], exp: number[]) => got.forEach((g, i) => expect(g, `token ${i}`).toBeCloseTo(exp[i], 1));

  it('measures top-p against the whole top-k mass, then min-p against the likeliest, before the temperature', () => {
    const probs = [0.45, 0.25, 0.1, 0.1, 0.1];
    // top-p 0.6 keeps {0, 1} (0.45 < 0.6 <= 0.70); min-p 0.3 keeps both (0.25 >= 0.135).
    close(frequencies(probs, { temperature: 1, topP: 0.6, minP: 0.3 }), want(probs, [0, 1], 1));
    // min-p 0.5 of the likeliest at temperature 1 keeps {0, 1} (0.3 >= 0.25), whatever the temperature.
    const three = [0.5, 0.3, 0.2];
    close(frequencies(three, { temperature: 2, minP: 0.5 }), want(three, [0, 1], 2));
    close(frequencies(three, { temperature: 0.5, minP: 0.5 }), want(three, [0, 1], 0.5));
    // top-k 3, then top-p 0.9 of those three's mass (0.8): 0.45 + 0.25 = 0.70 < 0.72 <= 0.80.
    close(frequencies(probs, { temperature: 1.5, topK: 3, topP: 0.9 }), want(probs, [0, 1, 2], 1.5));
    // top-p never keeps fewer than one token; min-p never drops the likeliest.
    expect(frequencies(probs, { temperature: 1, topP: 0.01, minP: 1 }, 200)).toEqual([1, 0, 0, 0, 0]);
  });
});
