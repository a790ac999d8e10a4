/**
 * Seeded random llama models of realistic shapes, for tests and benchmarks (no model hub
 * is reachable). Each tensor is generated on demand from (seed, tensor index), so a
 * 1.1B-parameter model streams in bounded memory and any tensor can be regenerated alone.
 * The vocabulary is byte-level: specials, the 256 byte pieces, then letter n-grams.
 */
import { encodeBf16, encodeF16 } from './dtype.js';
import type { SpmTokenizerSpec } from './header.js';
import type { FloatDtype } from './layout.js';
import { expectedTensors, type ModelConfig } from './llama.js';
import type { ModelSource, SourceTensor } from './source.js';

export interface SynthPreset {
  description: string;
  config: ModelConfig;
}

function llamaConfig(over: Partial<ModelConfig> & Pick<ModelConfig, 'dim' | 'n_layers' | 'n_heads' | 'n_kv_heads' | 'ffn_dim' | 'vocab_size' | 'context_length'>): ModelConfig {
  return {
    architecture: 'llama',
    head_dim: over.dim / over.n_heads,
    rope_theta: 10000,
    rope_style: 'adjacent',
    rope_scaling: null,
    norm_eps: 1e-5,
    tied_classifier: false,
    attn_qkv_bias: false,
    attn_output_bias: false,
    attn_sinks: false,
    sliding_window: null,
    sliding_layers: null,
    moe: null,
    bos_id: 1,
    eos_id: 2,
    ...over,
  };
}

export const SYNTH_PRESETS: Record<string, SynthPreset> = {
  tiny: {
    description: 'test-sized: dim 64, 2 layers, 4 heads / 2 KV heads, ffn 176, vocab 512',
    config: llamaConfig({ dim: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, ffn_dim: 176, vocab_size: 512, context_length: 512 }),
  },
  stories15m: {
    description: 'stories15M shape: dim 288, 6 layers, 6 heads, ffn 768, vocab 32000, tied classifier',
    config: llamaConfig({ dim: 288, n_layers: 6, n_heads: 6, n_kv_heads: 6, ffn_dim: 768, vocab_size: 32000, context_length: 256, tied_classifier: true }),
  },
  'small-256': {
    description: 'K-quant-ready test model: dim 256, 4 layers, 4 heads / 2 KV heads, ffn 768, vocab 4096 (every row whole 256-element blocks)',
    config: llamaConfig({ dim: 256, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 768, vocab_size: 4096, context_length: 512 }),
  },
  'tinyllama-1.1b': {
    description: 'TinyLlama-1.1B shape: dim 2048, 22 layers, 32 heads / 4 KV heads, ffn 5632, vocab 32000',
    config: llamaConfig({ dim: 2048, n_layers: 22, n_heads: 32, n_kv_heads: 4, ffn_dim: 5632, vocab_size: 32000, context_length: 2048 }),
  },
};

/** xoshiro128** seeded through splitmix32: fast, 32-bit, reproducible across platforms. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number, stream = 0) {
    let s = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }
  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }
  /** Uniform in [0, 1). */
  uniform(): number {
    return this.u32() / 4294967296;
  }
  /**
   * Fills `out` with bell-shaped values of the given mean and standard deviation: the sum of
   * the two 16-bit halves of one draw (a triangular distribution on (-1, 1), variance 1/6).
   * One draw per value keeps a 1.1B-parameter model's generation fast.
   */
  fillBell(out: Float32Array, std: number, mean = 0): Float32Array {
    const k = (std * Math.sqrt(6)) / 65536;
    for (let i = 0; i < out.length; i++) {
      const x = this.u32();
      out[i] = mean + k * ((x & 0xffff) + (x >>> 16) + 1 - 65536);
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The f32 values of tensor `index` of a synthetic model: projections with std 1/sqrt(fan_in), norms 1 ± 0.1 (std), embeddings std dim^-1/4. */
export function synthTensorValues(config: ModelConfig, seed: number, index: number): Float32Array {
  const t = expectedTensors(config)[index];
  const n = t.shape.reduce((a, b) => a * b, 1);
  const rng = new Rng(seed, index);
  const out = new Float32Array(n);
  switch (t.role) {
    case 'norm':
      return rng.fillBell(out, 0.1, 1);
    case 'bias':
    case 'expert_bias':
    case 'sinks':
      return rng.fillBell(out, 0.1);
    case 'embedding':
      return rng.fillBell(out, config.dim ** -0.25);
    default:
      // Matrices (stacked experts too): fan-in is the last dim.
      return rng.fillBell(out, 1 / Math.sqrt(t.shape[t.shape.length - 1]));
  }
}

/**
 * The byte-level vocabulary: <unk>, <s>, </s>, <0x00>..<0xFF>, "▁", then lowercase letter
 * n-grams with and without the "▁" word marker, shortest first, scored by rank.
 */
export function synthVocabulary(vocabSize: number): SpmTokenizerSpec {
  if (vocabSize < 260) throw new RangeError(`a byte-level vocabulary needs at least 260 pieces, got ${vocabSize}`);
  const pieces = ['<unk>', '<s>', '</s>'];
  const types = [2, 3, 3];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(6);
  }
  pieces.push('\u2581');
  types.push(1);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let grams = [''];
  outer: for (;;) {
    const next: string[] = [];
    for (const g of grams) for (const ch of letters) next.push(g + ch);
    for (const g of next) {
      for (const p of [`\u2581${g}`, g]) {
        if (pieces.length >= vocabSize) break outer;
        pieces.push(p);
        types.push(1);
      }
    }
    grams = next;
  }
  const scores = pieces.map((_, i) => (types[i] === 1 ? -i : 0));
  return { model: 'spm', pieces, scores, types, unk_id: 0, add_bos: true, add_eos: false, add_space_prefix: true };
}

/**
 * A tokenizer.json (Hugging Face tokenizers library) for the same vocabulary: Llama-2-style
 * BPE with byte fallback; every multi-character piece is the merge of its prefix and last character.
 */
export function synthHfTokenizerJson(vocab: SpmTokenizerSpec): string {
  const v: Record<string, number> = {};
  vocab.pieces.forEach((p, i) => (v[p] = i));
  const merges: string[] = [];
  vocab.pieces.forEach((p, i) => {
    if (vocab.types[i] !== 1) return;
    const chars = [...p];
    if (chars.length >= 2) merges.push(`${chars.slice(0, -1).join('')} ${chars[chars.length - 1]}`);
  });
  const special = (id: number) => ({ id, content: vocab.pieces[id], single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0), special(1), special(2)],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab: v, merges },
  });
}

export interface SynthOptions {
  seed?: number;
  /** Storage dtype of matrices, stacked experts included (norms, biases, sinks and expert biases stay f32). Default f32. */
  dtype?: FloatDtype;
}

/** A synthetic model as a model source; `preset` is a preset name or a full config. */
export function synthModel(preset: string | ModelConfig, options: SynthOptions = {}): ModelSource {
  const config = typeof preset === 'string' ? SYNTH_PRESETS[preset]?.config : preset;
  if (!config) throw new RangeError(`unknown synth preset ${JSON.stringify(preset)}; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
  const seed = options.seed ?? 1;
  const dtype = options.dtype ?? 'f32';
  const tensors: SourceTensor[] = expectedTensors(config).map((t, i) => {
    const vector = t.shape.length === 1 || t.role === 'expert_bias';
    const d = vector ? 'f32' : dtype;
    return {
      name: t.name,
      dtype: d,
      shape: t.shape,
      quant: null,
      read: async () => {
        const v = synthTensorValues(config, seed, i);
        if (d === 'f32') return new Uint8Array(v.buffer);
        return new Uint8Array((d === 'f16' ? encodeF16(v) : encodeBf16(v)).buffer);
      },
    };
  });
  return {
    format: 'synth',
    config,
    tokenizer: synthVocabulary(config.vocab_size),
    files: [],
    tensors,
    notes: [`synthetic ${typeof preset === 'string' ? preset : 'custom'} model, seed ${seed}, ${dtype}`],
    synth: { preset: typeof preset === 'string' ? preset : 'custom', seed },
    close: async () => undefined,
  };
}
