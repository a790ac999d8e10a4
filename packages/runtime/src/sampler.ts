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
  /** Keep the smallest set of tokens whose probability reaches p (1 = off). Default 0.95. */
  topP?: number;
  /** Drop tokens less likely than minP times the most likely (0 = off). Default 0.05. */
  minP?: number;
  /** > 1 discourages tokens seen in the last `repeatLastN` (CTRL-style: positive logits divided, negative multiplied). Default 1 (off). */
  repetitionPenalty?: number;
  repeatLastN?: number;
  /** Seed for reproducible sampling. Default: random. */
  seed?: number;
}

export interface ResolvedSampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  repeatLastN: number;
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
    repeatLastN: num('repeatLastN', o.repeatLastN, 64, 0, 1 << 20, true),
    seed: num('seed', o.seed, Math.floor(Math.random() * 2 ** 32), 0, 2 ** 32 - 1, true),
  };
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
    return this.options.repetitionPenalty !== 1 && this.options.repeatLastN > 0;
  }

  /** Logits with the repetition penalty applied (a copy; the input is left alone). */
  penalized(logits: Float32Array, history: readonly number[]): Float32Array {
    if (!this.penalizes) return logits;
    if (!this.scratch || this.scratch.length !== logits.length) this.scratch = new Float32Array(logits.length);
    const out = this.scratch;
    out.set(logits);
    const p = this.options.repetitionPenalty;
    const seen = new Set(history.slice(-this.options.repeatLastN));
    for (const t of seen) if (t >= 0 && t < out.length) out[t] = out[t] > 0 ? out[t] / p : out[t] * p;
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
    const probs = ids.map((i) => Math.exp((x[i] - mx) / temperature));
    let sum = probs.reduce((a, b) => a + b, 0);
    let n = probs.length;
    if (minP > 0) {
      const cut = (probs[0] / sum) * minP * sum;
      while (n > 1 && probs[n - 1] < cut) n--;
    }
    if (topP < 1) {
      const total = probs.slice(0, n).reduce((a, b) => a + b, 0);
      let acc = 0;
      for (let i = 0; i < n; i++) {
        acc += probs[i];
        if (acc >= topP * total) {
          n = i + 1;
          break;
        }
      }
    }
    sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i];
    let r = this.rng.uniform() * sum;
    for (let i = 0; i < n; i++) {
      r -= probs[i];
      if (r < 0) return ids[i];
    }
    return ids[n - 1];
  }
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
