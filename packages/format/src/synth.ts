/**
 * Seeded random models of realistic shapes, for tests and benchmarks (no model hub is
 * reachable): llama presets and gpt-oss presets. Each tensor is generated on demand from
 * (seed, tensor index) and streams in pieces, so a 13 GB gpt-oss-20b or a 1.1B-parameter llama
 * is written in bounded memory and any tensor can be regenerated alone.
 *
 * Llama vocabularies are SentencePiece byte-level: specials, the 256 byte pieces, then letter
 * n-grams. gpt-oss models are what OpenAI's checkpoint is: every value a bf16 value, the experts
 * MXFP4 (their values lie on the MXFP4 grid whatever they are stored as), and a GPT-2 byte-level
 * BPE vocabulary ending in the o200k_harmony special tokens.
 */
import { byteLevelBpeTokenizerJson } from './byte-level-bpe.js';
import { decodeBlocks, quantizeMxfp4 } from './blocks.js';
import { decodeBf16, encodeBf16, encodeF16 } from './dtype.js';
import type { Gpt2TokenizerSpec, SpmTokenizerSpec } from './header.js';
import type { FloatDtype } from './layout.js';
import { expectedTensors, type ExpectedTensor, type ModelConfig } from './llama.js';
import { streamingRead, type ModelSource, type SourceTensor } from './source.js';

/**
 * The o200k_harmony special tokens in id order, from <|startoftext|> (199998 in the real
 * vocabulary) to <|endofprompt|> (200018); `null` marks a reserved id, named <|reserved_ID|>.
 */
const HARMONY_BLOCK: ReadonlyArray<string | null> = [
  '<|startoftext|>',
  '<|endoftext|>',
  null,
  null,
  '<|return|>',
  '<|constrain|>',
  null,
  '<|channel|>',
  '<|start|>',
  '<|end|>',
  '<|message|>',
  null,
  null,
  null,
  '<|call|>',
  null,
  null,
  null,
  null,
  null,
  '<|endofprompt|>',
];
/** o200k_harmony's size and where its specials start. */
const O200K_VOCAB = 201088;
const O200K_SPECIALS_AT = 199998;

/** Where the harmony specials sit in a synthetic vocabulary of `vocabSize`: o200k_harmony's ids when it is that big, else the last 21 ids. */
function harmonyBase(vocabSize: number): number {
  return vocabSize >= O200K_VOCAB ? O200K_SPECIALS_AT : vocabSize - HARMONY_BLOCK.length;
}

/** The ids of the named harmony specials in a synthetic gpt-oss vocabulary of `vocabSize`. */
export function harmonySpecialIds(vocabSize: number): Record<string, number> {
  const base = harmonyBase(vocabSize);
  const out: Record<string, number> = {};
  HARMONY_BLOCK.forEach((name, i) => {
    if (name) out[name] = base + i;
  });
  return out;
}

export interface SynthPreset {
  description: string;
  config: ModelConfig;
}

function llamaConfig(
  over: Partial<ModelConfig> &
    Pick<ModelConfig, 'dim' | 'n_layers' | 'n_heads' | 'n_kv_heads' | 'ffn_dim' | 'vocab_size' | 'context_length'>,
): ModelConfig {
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
    config: llamaConfig({
      dim: 288,
      n_layers: 6,
      n_heads: 6,
      n_kv_heads: 6,
      ffn_dim: 768,
      vocab_size: 32000,
      context_length: 256,
      tied_classifier: true,
    }),
  },
  'small-256': {
    description:
      'K-quant-ready test model: dim 256, 4 layers, 4 heads / 2 KV heads, ffn 768, vocab 4096 (every row whole 256-element blocks)',
    config: llamaConfig({ dim: 256, n_layers: 4, n_heads: 4, n_kv_heads: 2, ffn_dim: 768, vocab_size: 4096, context_length: 512 }),
  },
  'tinyllama-1.1b': {
    description: 'TinyLlama-1.1B shape: dim 2048, 22 layers, 32 heads / 4 KV heads, ffn 5632, vocab 32000',
    config: llamaConfig({ dim: 2048, n_layers: 22, n_heads: 32, n_kv_heads: 4, ffn_dim: 5632, vocab_size: 32000, context_length: 2048 }),
  },
  'gpt-oss-tiny': {
    description:
      'test-sized gpt-oss: dim 96, 4 layers (0 and 2 sliding, window 8), 4 heads of 32 / 2 KV heads, 8 experts of ffn 128 top-4, vocab 1024 with the harmony specials',
    config: gptOssConfig({
      dim: 96,
      n_layers: 4,
      n_heads: 4,
      n_kv_heads: 2,
      head_dim: 32,
      ffn_dim: 128,
      vocab_size: 1024,
      n_experts: 8,
      experts_per_token: 4,
      sliding_window: 8,
    }),
  },
  'gpt-oss-20b': {
    description:
      'openai/gpt-oss-20b shape: dim 2880, 24 layers (even ones sliding, window 128), 64 heads of 64 / 8 KV heads, 32 experts of ffn 2880 top-4, vocab 201088 (o200k_harmony ids)',
    config: gptOssConfig({
      dim: 2880,
      n_layers: 24,
      n_heads: 64,
      n_kv_heads: 8,
      head_dim: 64,
      ffn_dim: 2880,
      vocab_size: 201088,
      n_experts: 32,
      experts_per_token: 4,
      sliding_window: 128,
    }),
  },
};

/**
 * A gpt-oss config as OpenAI's checkpoints have it: q/k/v/o biases, attention sinks, layer i
 * sliding when i is even, YaRN factor 32 over 4096 positions (beta 32 / 1, not truncated), theta
 * 150000, context 131072, SwiGLU limit 7, RoPE rotate-half; EOS <|return|> of the harmony
 * vocabulary, which also stands in for BOS (the importers' rule: gpt-oss names no BOS).
 */
function gptOssConfig(
  o: Pick<ModelConfig, 'dim' | 'n_layers' | 'n_heads' | 'n_kv_heads' | 'head_dim' | 'ffn_dim' | 'vocab_size'> & {
    n_experts: number;
    experts_per_token: number;
    sliding_window: number;
  },
): ModelConfig {
  const eos = harmonySpecialIds(o.vocab_size)['<|return|>'];
  return {
    architecture: 'gpt-oss',
    dim: o.dim,
    n_layers: o.n_layers,
    n_heads: o.n_heads,
    n_kv_heads: o.n_kv_heads,
    head_dim: o.head_dim,
    ffn_dim: o.ffn_dim,
    vocab_size: o.vocab_size,
    context_length: 131072,
    rope_theta: 150000,
    rope_style: 'rotate_half',
    rope_scaling: { type: 'yarn', factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: false },
    norm_eps: 1e-5,
    tied_classifier: false,
    attn_qkv_bias: true,
    attn_output_bias: true,
    attn_sinks: true,
    sliding_window: o.sliding_window,
    sliding_layers: Array.from({ length: o.n_layers }, (_, i) => i % 2 === 0),
    moe: { n_experts: o.n_experts, experts_per_token: o.experts_per_token, swiglu_limit: 7 },
    bos_id: eos,
    eos_id: eos,
  };
}

/** `config` with only its first `layers` layers (the per-layer sliding flags cut alike). */
export function cutLayers(config: ModelConfig, layers: number): ModelConfig {
  if (!Number.isSafeInteger(layers) || layers < 1 || layers > config.n_layers)
    throw new RangeError(`layers must be an integer in 1..${config.n_layers}, got ${layers}`);
  return { ...config, n_layers: layers, sliding_layers: config.sliding_layers ? config.sliding_layers.slice(0, layers) : null };
}

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
    // u32() inlined on int32 locals (the same bits; V8 keeps them unboxed): 5x faster on big tensors.
    let a = this.a | 0;
    let b = this.b | 0;
    let c = this.c | 0;
    let d = this.d | 0;
    for (let i = 0; i < out.length; i++) {
      const m = Math.imul(b, 5);
      const x = Math.imul((m << 7) | (m >>> 25), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = (d << 11) | (d >>> 21);
      out[i] = mean + k * ((x & 0xffff) + (x >>> 16) + 1 - 65536);
    }
    this.a = a >>> 0;
    this.b = b >>> 0;
    this.c = c >>> 0;
    this.d = d >>> 0;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The bell law of a tensor's raw values: norms 1 ± 0.1 (std), biases and sinks std 0.1, embeddings std dim^-1/4, matrices std 1/sqrt(fan_in). */
function valueLaw(config: ModelConfig, t: ExpectedTensor): { std: number; mean: number } {
  switch (t.role) {
    case 'norm':
      return { std: 0.1, mean: 1 };
    case 'bias':
    case 'expert_bias':
    case 'sinks':
      return { std: 0.1, mean: 0 };
    case 'embedding':
      return { std: config.dim ** -0.25, mean: 0 };
    default:
      // Matrices (stacked experts too): fan-in is the last dim.
      return { std: 1 / Math.sqrt(t.shape[t.shape.length - 1]), mean: 0 };
  }
}

/** The raw values of one tensor, drawn in row-major order: any split into pieces gives the same values. */
class ValueStream {
  private readonly rng: Rng;
  private readonly std: number;
  private readonly mean: number;
  left: number;
  constructor(config: ModelConfig, seed: number, index: number, t: ExpectedTensor = expectedTensors(config)[index]) {
    this.rng = new Rng(seed, index);
    ({ std: this.std, mean: this.mean } = valueLaw(config, t));
    this.left = t.shape.reduce((a, b) => a * b, 1);
  }
  next(n: number): Float32Array {
    if (n > this.left) throw new RangeError(`asked for ${n} values, ${this.left} left`);
    this.left -= n;
    return this.rng.fillBell(new Float32Array(n), this.std, this.mean);
  }
}

/** Raw values → the model's values: gpt-oss experts onto the MXFP4 grid, every other gpt-oss value onto bf16; llama values as drawn. */
function modelValues(config: ModelConfig, t: ExpectedTensor, raw: Float32Array): Float32Array {
  if (config.architecture !== 'gpt-oss') return raw;
  if (t.role === 'experts') return decodeBlocks('mxfp4', quantizeMxfp4(raw), raw.length / 32, 32);
  return decodeBf16(encodeBf16(raw));
}

/**
 * The f32 values of tensor `index` of a synthetic model: projections with std 1/sqrt(fan_in), norms
 * 1 ± 0.1 (std), biases and sinks std 0.1, embeddings std dim^-1/4. gpt-oss values are then
 * rounded as the model stores them: experts to MXFP4 (these are the dequantized values), the rest
 * to bf16.
 */
export function synthTensorValues(config: ModelConfig, seed: number, index: number): Float32Array {
  const t = expectedTensors(config)[index];
  const s = new ValueStream(config, seed, index, t);
  return modelValues(config, t, s.next(s.left));
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
  const special = (id: number) => ({
    id,
    content: vocab.pieces[id],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0), special(1), special(2)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab: v,
      merges,
    },
  });
}

/** GPT-2's byte → printable character map (bytes_to_unicode): printable Latin-1 as itself, the rest from U+0100 on. */
export function gpt2ByteChars(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + n++));
  return out;
}

/**
 * A GPT-2 byte-level BPE vocabulary for synthetic gpt-oss models (GGUF `gpt2`, pre-tokenizer
 * "gpt-4o"): the 256 byte pieces in byte order (as llama.cpp writes gpt-oss files), then letter
 * n-grams with and without the "Ġ" space marker, shortest first, each the merge of its prefix and
 * last character (merge rank = piece order), then the 21 harmony specials (control tokens:
 * <|start|>, <|message|>, <|channel|>, <|end|>, <|return|>, <|call|>, ...) with reserved tokens up
 * to the end when the vocabulary is o200k-sized (201088: the specials at their real ids 199998..).
 */
export function synthHarmonyVocabulary(vocabSize: number): Gpt2TokenizerSpec {
  const min = 256 + HARMONY_BLOCK.length;
  if (vocabSize < min)
    throw new RangeError(`a byte-level vocabulary with the harmony specials needs at least ${min} pieces, got ${vocabSize}`);
  const base = harmonyBase(vocabSize);
  const pieces = gpt2ByteChars();
  const merges: string[] = [];
  const space = pieces[0x20];
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  let grams = [''];
  outer: while (pieces.length < base) {
    const next: string[] = [];
    for (const g of grams) for (const ch of letters) next.push(g + ch);
    for (const g of next) {
      for (const p of g.length === 1 ? [space + g] : [space + g, g]) {
        if (pieces.length >= base) break outer;
        pieces.push(p);
        merges.push(`${p.slice(0, -1)} ${p.slice(-1)}`);
      }
    }
    grams = next;
  }
  const types = pieces.map(() => 1);
  for (let id = base; id < vocabSize; id++) {
    const named = id - base < HARMONY_BLOCK.length ? HARMONY_BLOCK[id - base] : null;
    pieces.push(named ?? `<|reserved_${id}|>`);
    types.push(3);
  }
  return { model: 'gpt2', pieces, types, merges, pre: 'gpt-4o', add_bos: false };
}

/**
 * A tokenizer.json (Hugging Face tokenizers library) for a GPT-2 byte-level vocabulary with the
 * "gpt-4o" pre-tokenizer, laid out as gpt-oss's own: control pieces (type 3 or 4) as special
 * added tokens, a Split + ByteLevel pre-tokenizer, a ByteLevel decoder, BPE with the merges.
 */
export function synthGpt2TokenizerJson(vocab: Gpt2TokenizerSpec): string {
  if (vocab.pre !== 'gpt-4o')
    throw new RangeError(`only the "gpt-4o" pre-tokenizer is written as tokenizer.json, not ${JSON.stringify(vocab.pre)}`);
  return JSON.stringify(byteLevelBpeTokenizerJson(vocab));
}

export interface SynthOptions {
  seed?: number;
  /**
   * Storage dtype of matrices, stacked experts included. Llama: default f32; norms, biases and
   * sinks stay f32. gpt-oss: bf16 (default, as OpenAI's checkpoint) or f32, every non-expert
   * tensor in it (the values are bf16 values either way; IEBIN export stores vectors f32).
   */
  dtype?: FloatDtype;
  /** gpt-oss experts: 'mxfp4' blocks (default, as the checkpoint) or 'float' (the same MXFP4-grid values in `dtype`). */
  experts?: 'mxfp4' | 'float';
  /** Keep only the first `layers` layers (a cut-down model for benchmarks; the first layers' tensors are the full model's). */
  layers?: number;
}

/**
 * The chat template synthetic llama-family models carry: TinyLlama-1.1B-Chat-v1.0's own (Zephyr's
 * `<|user|>` / `<|assistant|>` turns, each ended by the EOS text), so that synthetic models are
 * chat-ready and tests render a real template. gpt-oss models chat in harmony and carry none.
 */
export const SYNTH_CHAT_TEMPLATE =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/** Elements per generated piece: 4 MiB of f32, whole 32-value MXFP4 blocks. */
const CHUNK = 1 << 20;

/** A synthetic model as a model source; `preset` is a preset name or a full config. Tensors stream in pieces (see {@link streamingRead}). */
export function synthModel(preset: string | ModelConfig, options: SynthOptions = {}): ModelSource {
  const base = typeof preset === 'string' ? (Object.hasOwn(SYNTH_PRESETS, preset) ? SYNTH_PRESETS[preset].config : undefined) : preset;
  if (!base) throw new RangeError(`unknown synth preset ${JSON.stringify(preset)}; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
  const config = options.layers === undefined ? base : cutLayers(base, options.layers);
  const seed = options.seed ?? 1;
  const gptOss = config.architecture === 'gpt-oss';
  const dtype = options.dtype ?? (gptOss ? 'bf16' : 'f32');
  const mxfp4 = gptOss && (options.experts ?? 'mxfp4') === 'mxfp4';
  if (gptOss) {
    if (dtype === 'f16')
      throw new RangeError("a synthetic gpt-oss model is bf16 (as OpenAI's checkpoint) or f32; f16 would round its bf16 values");
    if (config.dim % 32 !== 0 || config.ffn_dim % 32 !== 0)
      throw new RangeError(
        `gpt-oss experts are MXFP4 (32-value blocks): dim (${config.dim}) and ffn_dim (${config.ffn_dim}) must be multiples of 32`,
      );
  }
  const name = typeof preset === 'string' ? preset : 'custom';
  const table = expectedTensors(config);
  const tensors: SourceTensor[] = table.map((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const experts = gptOss && t.role === 'experts';
    const vector = t.shape.length === 1 || t.role === 'expert_bias';
    const d = experts && mxfp4 ? 'mxfp4' : gptOss || !vector ? dtype : 'f32';
    const encode = (raw: Float32Array): Uint8Array => {
      if (d === 'mxfp4') return quantizeMxfp4(raw);
      // gpt-oss values are bf16 values: bf16 storage is the rounding itself.
      if (d === 'bf16') return new Uint8Array((experts ? encodeBf16(modelValues(config, t, raw)) : encodeBf16(raw)).buffer);
      const v = gptOss ? modelValues(config, t, raw) : raw;
      return new Uint8Array((d === 'f16' ? encodeF16(v) : v).buffer);
    };
    const bytes = d === 'mxfp4' ? (n / 32) * 17 : n * (d === 'f32' ? 4 : 2);
    return {
      name: t.name,
      dtype: d,
      shape: t.shape,
      quant: null,
      read: streamingRead(bytes, async function* () {
        const s = new ValueStream(config, seed, i, t);
        while (s.left > 0) yield encode(s.next(Math.min(CHUNK, s.left)));
      }),
    };
  });
  const vocab = gptOss ? synthHarmonyVocabulary(config.vocab_size) : synthVocabulary(config.vocab_size);
  const notes = [`synthetic ${name} model, seed ${seed}, ${dtype}${gptOss ? `, experts ${mxfp4 ? 'mxfp4' : dtype}` : ''}`];
  if (config.n_layers !== base.n_layers) notes.push(`layers cut to ${config.n_layers} of ${base.n_layers}`);
  return {
    format: 'synth',
    config,
    tokenizer: vocab,
    files: [],
    tensors,
    notes,
    ...(gptOss
      ? {}
      : { chat: { template: SYNTH_CHAT_TEMPLATE, bos_token: vocab.pieces[config.bos_id], eos_token: vocab.pieces[config.eos_id] } }),
    synth: { preset: name, seed },
    close: async () => undefined,
  };
}
