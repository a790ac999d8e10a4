/**
 * Choosing the next token from logits: greedy, or temperature with top-k, top-p and min-p
 * filtering, a repetition penalty, and a seeded generator so sampling is reproducible.
 */
import { Rng } from '@ie/format';
import { InvalidOptionError } from './errors.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 0.8. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). Default 40. */
  topK?: number;
  /**
   * Keep the smallest set of tokens whose probability reaches p (1 = off). Default 0.95. As in
   * llama.cpp, top-p and then min-p filter the model's distribution (after top-k, before the
   * temperature), and the temperature applies to the tokens they keep.
   */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely (0 = off; before the temperature). Default 0.05. */
  minP?: number;
  /** > 1 discourages tokens seen in the last `repeatLastN` (CTRL-style: positive logits divided, negative multiplied). Default 1 (off). */
  repetitionPenalty?: number;
  /** Subtracted from the logit of every token seen in the last `repeatLastN`, once (OpenAI's presence_penalty, -2..2). Default 0 (off). */
  presencePenalty?: number;
  /** Subtracted from the logit of every token seen in the last `repeatLastN`, once per occurrence (OpenAI's frequency_penalty, -2..2). Default 0 (off). */
  frequencyPenalty?: number;
  /** The tokens the penalties look back over (the prompt's included, as llama.cpp's penalty_last_n). Default 64. */
  repeatLastN?: number;
  /** Added to the logits of these token ids before sampling (OpenAI's logit_bias, -100..100; -100 in effect bans a token). */
  logitBias?: Readonly<Record<number, number>>;
  /** Seed for reproducible sampling. Default: random. */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  repeatLastN: number;
  /** [token id, bias] pairs, ids checked against the vocabulary by the request. */
  logitBias: readonly (readonly [number, number])[];
  seed: number;
}

export function resolveSampling(o: SamplingOptions): ResolvedSampling {
  const num = (name: keyof SamplingOptions, v: number | undefined, dflt: number, lo: number, hi: number, integer = false) => {
    const x = v ?? dflt;
    if (typeof x !== 'number' || !Number.isFinite(x) || x < lo || x > hi || (integer && !Number.isInteger(x)))
      throw new InvalidOptionError(name, `must be ${integer ? 'an integer' : 'a number'} in ${lo}..${hi}, got ${String(v)}`);
    return x;
  };
  return {
    temperature: num('temperature', o.temperature, 0.8, 0, 100),
    topK: num('topK', o.topK, 40, 0, 1 << 24, true),
    topP: num('topP', o.topP, 0.95, 0, 1),
    minP: num('minP', o.minP, 0.05, 0, 1),
    repetitionPenalty: num('repetitionPenalty', o.repetitionPenalty, 1, 0.01, 100),
    presencePenalty: num('presencePenalty', o.presencePenalty, 0, -2, 2),
    frequencyPenalty: num('frequencyPenalty', o.frequencyPenalty, 0, -2, 2),
    repeatLastN: num('repeatLastN', o.repeatLastN, 64, 0, 1 << 20, true),
    logitBias: resolveLogitBias(o.logitBias),
    seed: num('seed', o.seed, Math.floor(Math.random() * 2 ** 32), 0, 2 ** 32 - 1, true),
  };
}

/** logitBias as checked pairs: integer ids >= 0 (the vocabulary bound is the request's), biases in -100..100. */
function resolveLogitBias(bias: SamplingOptions['logitBias']): [number, number][] {
  if (bias === undefined) return [];
  if (typeof bias !== 'object' || bias === null || Array.isArray(bias))
    throw new InvalidOptionError('logitBias', "must be an object of token id -> bias, as OpenAI's logit_bias");
  const out: [number, number][] = [];
  for (const [k, v] of Object.entries(bias)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || !Number.isSafeInteger(id))
      throw new InvalidOptionError(`logitBias[${JSON.stringify(k)}]`, 'the key must be a token id (a non-negative integer)');
    if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100)
      throw new InvalidOptionError(`logitBias[${k}]`, `must be a number in -100..100, got ${String(v)}`);
    if (v !== 0) out.push([id, v]);
  }
  return out;
}

/** log(sum(exp(x))) over x, stably. */
export function logSumExp(x: Float32Array): number {
  let mx = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) if (x[i] > mx) mx = x[i];
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - mx);
  return mx + Math.log(s);
}

export class Sampler {
  private readonly rng: Rng;
  private scratch: Float32Array | null = null;

  constructor(readonly options: ResolvedSampling) {
    this.rng = new Rng(options.seed, 0x5a3d);
  }

  get greedy(): boolean {
    return this.options.temperature === 0;
  }

  get penalizes(): boolean {
    const o = this.options;
    return (
      (o.repeatLastN > 0 && (o.repetitionPenalty !== 1 || o.presencePenalty !== 0 || o.frequencyPenalty !== 0)) || o.logitBias.length > 0
    );
  }

  /**
   * Logits with the penalties and the logit bias applied (a copy; the input is left alone). Per
   * token seen in the last repeatLastN, as llama.cpp's penalties sampler: the repetition penalty
   * once, then minus frequencyPenalty per occurrence and presencePenalty once; then the bias.
   */
  penalized(logits: Float32Array, history: readonly number[]): Float32Array {
    if (!this.penalizes) return logits;
    if (!this.scratch || this.scratch.length !== logits.length) this.scratch = new Float32Array(logits.length);
    const out = this.scratch;
    out.set(logits);
    const { repetitionPenalty: p, presencePenalty, frequencyPenalty, repeatLastN, logitBias } = this.options;
    const counts = new Map<number, number>();
    if (repeatLastN > 0) for (const t of history.slice(-repeatLastN)) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, n] of counts) {
      if (t < 0 || t >= out.length) continue;
      let v = out[t];
      if (p !== 1) v = v > 0 ? v / p : v * p;
      out[t] = v - n * frequencyPenalty - presencePenalty;
    }
    for (const [t, b] of logitBias) if (t < out.length) out[t] += b;
    return out;
  }

  /** The next token. `argmax` may be given when the caller already knows it (greedy fast path). */
  sample(logits: Float32Array, history: readonly number[], argmax?: number): number {
    const x = this.penalized(logits, history);
    if (this.greedy) {
      if (argmax !== undefined && x === logits) return argmax;
      let best = 0;
      for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
      return best;
    }
    const { temperature, topK, topP, minP } = this.options;
    // Candidates: the top k (a bounded min-heap keeps this O(n log k)), or every token.
    let ids: number[];
    if (topK > 0 && topK < x.length) {
      ids = topKIndices(x, topK);
    } else {
      ids = Array.from({ length: x.length }, (_, i) => i);
    }
    ids.sort((a, b) => x[b] - x[a] || a - b);
    const mx = x[ids[0]];
    // llama.cpp's chain: top-k, then top-p and min-p on the model's distribution (temperature 1),
    // then the temperature over what is left. Top-p is measured against the whole top-k mass.
    let n = ids.length;
    if (topP < 1 || minP > 0) {
      const p1 = ids.map((i) => Math.exp(x[i] - mx));
      if (topP < 1) {
        const total = p1.reduce((a, b) => a + b, 0);
        for (let i = 0, acc = 0; i < n; i++) {
          acc += p1[i];
          if (acc >= topP * total) {
            n = i + 1;
            break;
          }
        }
      }
      // p1[0] = 1 is the likeliest token's.
      if (minP > 0) while (n > 1 && p1[n - 1] < minP) n--;
    }
    const probs = ids.slice(0, n).map((i) => Math.exp((x[i] - mx) / temperature));
    let sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i];
    let r = this.rng.uniform() * sum;
    for (let i = 0; i < n; i++) {
      r -= probs[i];
      if (r < 0) return ids[i];
    }
    return ids[n - 1];
  }
}

/** Indices of the k largest values, largest first (ties: the lower index first). */
export function topIndices(x: Float32Array, k: number): number[] {
  return topKIndices(x, Math.min(k, x.length)).sort((a, b) => x[b] - x[a] || a - b);
}

/** Indices of the k largest values (unordered). */
function topKIndices(x: Float32Array, k: number): number[] {
  const heap: number[] = [];
  const less = (a: number, b: number) => x[a] < x[b] || (x[a] === x[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l], heap[m])) m = l;
      if (r < heap.length && less(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (let i = 0; i < x.length; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let j = heap.length - 1; j > 0; ) {
        const p = (j - 1) >> 1;
        if (!less(heap[j], heap[p])) break;
        [heap[j], heap[p]] = [heap[p], heap[j]];
        j = p;
      }
    } else if (less(heap[0], i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap;
}
