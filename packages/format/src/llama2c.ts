/**
 * llama2.c checkpoints (karpathy/llama2.c): the legacy format (a header of 7 int32 then
 * fp32 weights; a negative vocab_size means a separate classifier follows) and the
 * version-1 export (magic "ak42", 256-byte header, fp32). Plus its tokenizer.bin.
 * Weights are adjacent-pair RoPE, as the C reference applies it.
 */
import { basename } from 'node:path';
import { Llama2cError, type FormatErrorCode } from './errors.js';
import { RandomAccessFile } from './file.js';
import type { Llama2cTokenizerSpec } from './header.js';
import { configProblems, expectedTensors, type ModelConfig } from './llama.js';
import type { ModelSource, SourceTensor } from './source.js';

export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
  /** Byte offset of the first weight. */
  dataOffset: number;
}

const MAGIC_V1 = 0x616b3432; // "ak42" read as little-endian uint32

function err(file: string) {
  return (code: FormatErrorCode, message: string, field?: string) => new Llama2cError(code, message, { file, field });
}

/** Parses and checks the header against the file size. */
export function parseLlama2cHeader(head: Uint8Array, fileSize: number, file: string): Llama2cHeader {
  const e = err(file);
  if (head.length < 28) throw e('LLAMA2C_TRUNCATED', `is ${fileSize} bytes, too short for a llama2.c header (28 bytes)`);
  const dv = new DataView(head.buffer, head.byteOffset, head.length);
  let version: 0 | 1 = 0;
  let p = 0;
  let shared = true;
  if (dv.getUint32(0, true) === MAGIC_V1) {
    const v = dv.getInt32(4, true);
    if (v !== 1)
      throw e(
        'LLAMA2C_BAD_HEADER',
        `is a llama2.c export version ${v}; only the legacy format and version 1 (fp32) are supported`,
        'version',
      );
    if (head.length < 256) throw e('LLAMA2C_TRUNCATED', 'is too short for a version-1 header (256 bytes)');
    version = 1;
    p = 8;
  }
  const f = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];
  const v = f.map((_, i) => dv.getInt32(p + 4 * i, true));
  let [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = v;
  if (version === 0) {
    shared = vocab > 0;
    vocab = Math.abs(vocab);
  } else {
    shared = head[p + 28] !== 0;
  }
  const limits: Array<[number, number]> = [
    [1, 1 << 20],
    [1, 1 << 22],
    [1, 1024],
    [1, 4096],
    [1, 4096],
    [1, 1 << 24],
    [1, 1 << 24],
  ];
  f.forEach((name, i) => {
    const x = [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen][i];
    if (!(x >= limits[i][0] && x <= limits[i][1]))
      throw e(
        'LLAMA2C_BAD_HEADER',
        `${name} is ${v[i]}, outside ${limits[i][0]}..${limits[i][1]}; this is not a llama2.c checkpoint`,
        name,
      );
  });
  if (dim % nHeads !== 0) throw e('LLAMA2C_BAD_HEADER', `dim ${dim} is not a multiple of n_heads ${nHeads}`, 'n_heads');
  if (nHeads % nKvHeads !== 0) throw e('LLAMA2C_BAD_HEADER', `n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`, 'n_kv_heads');
  if ((dim / nHeads) % 2 !== 0) throw e('LLAMA2C_BAD_HEADER', `head size ${dim / nHeads} is odd`, 'n_heads');
  return {
    version,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize: vocab,
    seqLen,
    sharedClassifier: shared,
    dataOffset: version === 1 ? 256 : 28,
  };
}

interface Region {
  name: string;
  shape: number[];
  /** Byte offset of layer 0's slice; layer i is at offset + i * layerStride. */
  offset: number;
}

/** Where each tensor lives: llama2.c stores each kind for all layers together. */
function weightRegions(h: Llama2cHeader): { regions: Region[]; end: number } {
  const { dim, hiddenDim: hd, nLayers: L, nHeads, nKvHeads, vocabSize: V, seqLen } = h;
  const headSize = dim / nHeads;
  const kv = nKvHeads * headSize;
  let off = h.dataOffset;
  const regions: Region[] = [];
  const perLayer = (key: string, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    for (let i = 0; i < L; i++) regions.push({ name: `blk.${i}.${key}`, shape, offset: off + i * n });
    off += n * L;
  };
  const single = (name: string, shape: number[]) => {
    regions.push({ name, shape, offset: off });
    off += shape.reduce((a, b) => a * b, 1) * 4;
  };
  if (h.version === 0) {
    single('token_embd.weight', [V, dim]);
    perLayer('attn_norm.weight', [dim]);
    perLayer('attn_q.weight', [dim, dim]);
    perLayer('attn_k.weight', [kv, dim]);
    perLayer('attn_v.weight', [kv, dim]);
    perLayer('attn_output.weight', [dim, dim]);
    perLayer('ffn_norm.weight', [dim]);
    perLayer('ffn_gate.weight', [hd, dim]);
    perLayer('ffn_down.weight', [dim, hd]);
    perLayer('ffn_up.weight', [hd, dim]);
    single('output_norm.weight', [dim]);
    off += seqLen * headSize * 4; // freq_cis_real (unused: RoPE is computed)
  } else {
    perLayer('attn_norm.weight', [dim]);
    perLayer('ffn_norm.weight', [dim]);
    single('output_norm.weight', [dim]);
    single('token_embd.weight', [V, dim]);
    perLayer('attn_q.weight', [dim, dim]);
    perLayer('attn_k.weight', [kv, dim]);
    perLayer('attn_v.weight', [kv, dim]);
    perLayer('attn_output.weight', [dim, dim]);
    perLayer('ffn_gate.weight', [hd, dim]);
    perLayer('ffn_down.weight', [dim, hd]);
    perLayer('ffn_up.weight', [hd, dim]);
  }
  if (!h.sharedClassifier) single('output.weight', [V, dim]);
  return { regions, end: off };
}

/** Reads tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 length, bytes. */
export function parseLlama2cTokenizer(b: Uint8Array, vocabSize: number, file: string): Llama2cTokenizerSpec {
  const e = err(file);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (b.length < 4) throw e('LLAMA2C_BAD_TOKENIZER', 'is too short for a tokenizer.bin');
  const maxLen = dv.getInt32(0, true);
  if (maxLen < 1 || maxLen > 1 << 16) throw e('LLAMA2C_BAD_TOKENIZER', `max_token_length is ${maxLen}`, 'max_token_length');
  // Each token takes at least 8 bytes: refuse a vocabulary the file cannot hold before allocating.
  if (vocabSize * 8 > b.length - 4)
    throw e(
      'LLAMA2C_BAD_TOKENIZER',
      `holds at most ${Math.floor((b.length - 4) / 8)} tokens, the model needs ${vocabSize}; is it the model's tokenizer?`,
    );
  const pieces: string[] = [];
  const scores: number[] = [];
  const raw: Record<string, string> = {};
  // ignoreBOM: a piece that is U+FEFF stays one.
  const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let p = 4;
  for (let i = 0; i < vocabSize; i++) {
    if (p + 8 > b.length) throw e('LLAMA2C_BAD_TOKENIZER', `ends inside token ${i} of ${vocabSize}`, `tokens[${i}]`);
    const score = dv.getFloat32(p, true);
    const len = dv.getInt32(p + 4, true);
    p += 8;
    if (!Number.isFinite(score)) throw e('LLAMA2C_BAD_TOKENIZER', `token ${i} has a non-finite score`, `tokens[${i}].score`);
    if (len < 0 || len > maxLen || p + len > b.length)
      throw e(
        'LLAMA2C_BAD_TOKENIZER',
        `token ${i} has length ${len} (max_token_length ${maxLen}, ${b.length - p} bytes left)`,
        `tokens[${i}].length`,
      );
    const bytes = b.subarray(p, p + len);
    p += len;
    try {
      pieces.push(dec.decode(bytes));
    } catch {
      pieces.push('');
      raw[String(i)] = Buffer.from(bytes).toString('base64');
    }
    scores.push(score);
  }
  if (p !== b.length)
    throw e(
      'LLAMA2C_BAD_TOKENIZER',
      `has ${b.length - p} bytes after token ${vocabSize - 1}; the vocabulary size does not match the model`,
    );
  const spec: Llama2cTokenizerSpec = { model: 'llama2c', pieces, scores, max_piece_bytes: maxLen };
  if (Object.keys(raw).length) spec.raw_pieces = raw;
  return spec;
}

/** Opens a llama2.c checkpoint and its tokenizer.bin as a model source. */
export async function openLlama2c(checkpoint: string, tokenizerPath: string): Promise<ModelSource> {
  const f = await RandomAccessFile.open(checkpoint, err(checkpoint));
  try {
    const head = await f.read(0, Math.min(256, f.size));
    const h = parseLlama2cHeader(head, f.size, checkpoint);
    const { regions, end } = weightRegions(h);
    if (end > f.size)
      throw new Llama2cError(
        'LLAMA2C_TRUNCATED',
        `is ${f.size} bytes; its header (dim ${h.dim}, ${h.nLayers} layers, vocab ${h.vocabSize}${h.sharedClassifier ? '' : ', separate classifier'}) needs ${end}`,
        { file: checkpoint },
      );
    const tokenizer = await readLlama2cTokenizer(tokenizerPath, h.vocabSize);
    const config = llama2cConfig(h, checkpoint);
    const order = new Map(expectedTensors(config).map((t, i) => [t.name, i]));
    const tensors: SourceTensor[] = regions
      .map((r) => ({
        name: r.name,
        dtype: 'f32' as const,
        shape: r.shape,
        quant: null,
        read: () => f.read(r.offset, r.shape.reduce((a, b) => a * b, 1) * 4),
      }))
      .sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
    return {
      format: 'llama2c',
      config,
      tokenizer,
      files: [checkpoint, tokenizerPath],
      tensors,
      notes: [
        `llama2.c ${h.version === 0 ? 'legacy' : 'version 1'} checkpoint ${basename(checkpoint)}; RoPE theta 10000 and norm eps 1e-5 are llama2.c's fixed values`,
        // run.c ignores bytes past the weights; so do we, and say so.
        ...(end < f.size ? [`${f.size - end} bytes after the last tensor were ignored, as run.c ignores them`] : []),
      ],
      close: () => f.close(),
    };
  } catch (e) {
    await f.close();
    throw e;
  }
}

/** Reads and parses tokenizer.bin (at most 64 MiB) for a vocabulary of `vocabSize`. */
async function readLlama2cTokenizer(tokenizerPath: string, vocabSize: number): Promise<Llama2cTokenizerSpec> {
  const tf = await RandomAccessFile.open(tokenizerPath, err(tokenizerPath));
  try {
    if (tf.size > 64 << 20)
      throw new Llama2cError('LLAMA2C_BAD_TOKENIZER', `is ${tf.size} bytes, more than a tokenizer.bin can be`, { file: tokenizerPath });
    return parseLlama2cTokenizer(await tf.read(0, tf.size), vocabSize, tokenizerPath);
  } finally {
    await tf.close();
  }
}

/** The config a llama2.c header describes (its RoPE theta, norm eps, BOS and EOS are fixed), checked whole. */
function llama2cConfig(h: Llama2cHeader, checkpoint: string): ModelConfig {
  const config: ModelConfig = {
    architecture: 'llama',
    dim: h.dim,
    n_layers: h.nLayers,
    n_heads: h.nHeads,
    n_kv_heads: h.nKvHeads,
    head_dim: h.dim / h.nHeads,
    ffn_dim: h.hiddenDim,
    vocab_size: h.vocabSize,
    context_length: h.seqLen,
    rope_theta: 10000,
    rope_style: 'adjacent',
    rope_scaling: null,
    norm_eps: 1e-5,
    tied_classifier: h.sharedClassifier,
    attn_qkv_bias: false,
    attn_output_bias: false,
    attn_sinks: false,
    sliding_window: null,
    sliding_layers: null,
    moe: null,
    bos_id: 1,
    eos_id: 2,
  };
  // The header's caps were checked by parseLlama2cHeader; the whole config is checked before anything is sized by it.
  const problem = configProblems(config)[0];
  if (problem)
    throw new Llama2cError('LLAMA2C_BAD_HEADER', `describes an impossible model: ${problem[0]} ${problem[1]}`, {
      file: checkpoint,
      field: problem[0],
    });
  return config;
}
