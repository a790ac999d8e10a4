/**
 * GGUF v3 writer: a model source (config, vocabulary, tensors) as a file llama.cpp loads, so the
 * two engines can be compared on identical weights. Tensors stream to disk one at a time (piece
 * by piece when their read streams); the file is written under a hidden temporary name (created
 * exclusively under an unpredictable name, see safe-write.ts, so a planted symlink is never
 * followed), fsynced and renamed into place.
 *
 * Llama models with a SentencePiece vocabulary: each tensor keeps its encoding: f32 → F32, f16 →
 * F16, bf16 → BF16, q4 symmetric group 32 with f16 scales → Q4_0 and i8 per-group 32 with f16
 * scales → Q8_0 (IEBIN's planes interleaved back into ggml blocks, byte for byte what the importer
 * splits), and the block dtypes (q4_k, q5_k, q6_k, iq4_nl) → their ggml types as they are.
 *
 * gpt-oss models with a GPT-2 byte-level vocabulary, as llama.cpp's converter writes them:
 * `gpt-oss.*` keys, MXFP4 experts (type 39, dims [K, N, E]) as they are, norms, biases, sinks and
 * the router in F32, the other matrices in their float type, `ffn_norm` named
 * `post_attention_norm`, tokenizer `gpt2` with pre-tokenizer "gpt-4o". Anything else has no GGUF
 * type and is refused by name.
 */
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { BLOCK_FORMATS, isBlockDtype, type BlockDtype } from './blocks.js';
import { GgufError } from './errors.js';
import { floatValues } from './export-iebin.js';
import type { Gpt2TokenizerSpec, SpmTokenizerSpec } from './header.js';
import { expectedTensors } from './llama.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from './gguf.js';
import { commitRename, createTempFile, discardTemp, fsyncDir } from './safe-write.js';
import { readChunks, type ModelSource, type SourceTensor } from './source.js';

/** The ggml types the writer emits, and llama.cpp's `general.file_type` for a file of mostly that type. */
const GGML = {
  F32: { id: 0, fileType: 0 },
  F16: { id: 1, fileType: 1 },
  Q4_0: { id: 2, fileType: 2 },
  Q8_0: { id: 8, fileType: 7 },
  BF16: { id: 30, fileType: 32 },
} as const;
type GgmlName = keyof typeof GGML | BlockDtype;

/**
 * The GGUF file types `ie synth --format gguf --dtype` writes: one type for every matrix, or a
 * llama.cpp recipe (q4_k_m / q5_k_m: attn_v, ffn_down and the classifier in q6_k, the rest in
 * q4_k / q5_k).
 */
export const GGUF_WRITE_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k', 'iq4_nl'] as const;
export type GgufWriteType = (typeof GGUF_WRITE_TYPES)[number];

export interface WriteGgufOptions {
  /** `general.name`. */
  name?: string;
}

/** What a source tensor becomes in GGUF, or why it cannot. */
function ggmlTypeOf(t: SourceTensor): GgmlName {
  if (isBlockDtype(t.dtype)) return t.dtype;
  if (t.dtype === 'f32') return 'F32';
  if (t.dtype === 'f16') return 'F16';
  if (t.dtype === 'bf16') return 'BF16';
  const q = t.quant;
  const g32f16 = q && q.granularity === 'per_group' && q.group_size === 32 && q.scale_dtype === 'f16';
  if (t.dtype === 'q4' && g32f16 && q.scheme === 'symmetric') return 'Q4_0';
  if (t.dtype === 'i8' && g32f16) return 'Q8_0';
  throw new GgufError(
    'GGUF_UNSUPPORTED_TENSOR_TYPE',
    `${t.name} is ${t.dtype}${q ? ` ${q.scheme} ${q.granularity} g${q.group_size ?? '-'} ${q.scale_dtype}` : ''}; GGUF holds f32, f16, bf16, Q8_0 (i8 group 32, f16 scales) and Q4_0 (q4 symmetric group 32, f16 scales)`,
    { field: t.name },
  );
}

function tensorBytes(type: GgmlName, shape: number[]): number {
  const n = shape.reduce((a, b) => a * b, 1);
  if (isBlockDtype(type)) return (n / BLOCK_FORMATS[type].elems) * BLOCK_FORMATS[type].bytes;
  if (type === 'F32') return n * 4;
  if (type === 'F16' || type === 'BF16') return n * 2;
  if (shape[shape.length - 1] % 32 !== 0)
    throw new GgufError(
      'GGUF_BAD_TENSOR_INFO',
      `a ${type} row must be a whole number of 32-element blocks, got ${shape[shape.length - 1]}`,
    );
  return (n / 32) * (type === 'Q4_0' ? 18 : 34);
}

/** IEBIN planes (all payloads, padded to 64, then all f16 scales) → ggml blocks {f16 d; payload}. The inverse of splitBlocks. */
export function joinBlocks(planes: Uint8Array, blocks: number, payload: number): Uint8Array {
  const sOff = Math.ceil((blocks * payload) / 64) * 64;
  if (planes.length < sOff + 2 * blocks)
    throw new GgufError('GGUF_BAD_TENSOR_INFO', `planes of ${planes.length} bytes cannot hold ${blocks} blocks`);
  const bs = payload + 2;
  const out = new Uint8Array(blocks * bs);
  for (let i = 0; i < blocks; i++) {
    out[i * bs] = planes[sOff + 2 * i];
    out[i * bs + 1] = planes[sOff + 2 * i + 1];
    out.set(planes.subarray(i * payload, (i + 1) * payload), i * bs + 2);
  }
  return out;
}

function ggmlId(t: GgmlName): number {
  return isBlockDtype(t) ? BLOCK_FORMATS[t].ggml : GGML[t].id;
}

/** Little-endian GGUF header serialization into one growing buffer (a 200k-token vocabulary is a million values). */
class HeaderBytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  /** Reserves n bytes and returns where they start (call before touching this.buf: it may be replaced). */
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
      this.buf.copy(next, 0, 0, this.length);
      this.buf = next;
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u32(v: number): this {
    const at = this.room(4);
    this.buf.writeUInt32LE(v, at);
    return this;
  }
  i32(v: number): this {
    const at = this.room(4);
    this.buf.writeInt32LE(v, at);
    return this;
  }
  u64(v: number): this {
    const at = this.room(8);
    this.buf.writeBigUInt64LE(BigInt(v), at);
    return this;
  }
  f32(v: number): this {
    const at = this.room(4);
    this.buf.writeFloatLE(v, at);
    return this;
  }
  str(s: string): this {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    const at = this.room(n);
    this.buf.write(s, at, 'utf8');
    return this;
  }
  bytes(b: Buffer): this {
    const at = this.room(b.length);
    b.copy(this.buf, at);
    return this;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

// GGUF metadata value type ids.
const T_U32 = 4;
const T_I32 = 5;
const T_F32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;

/** A metadata section being built: the typed key/value writers and the count of keys. */
function metadataWriter() {
  const h = new HeaderBytes();
  let count = 0;
  const kv = (key: string, type: number, write: (h: HeaderBytes) => void) => {
    h.str(key).u32(type);
    write(h);
    count++;
  };
  return {
    h,
    count: () => count,
    u32: (key: string, v: number) => kv(key, T_U32, (b) => b.u32(v)),
    f32: (key: string, v: number) => kv(key, T_F32, (b) => b.f32(v)),
    bool: (key: string, v: boolean) => kv(key, T_BOOL, (b) => b.bytes(Buffer.from([v ? 1 : 0]))),
    str: (key: string, v: string) => kv(key, T_STRING, (b) => b.str(v)),
    strings: (key: string, v: readonly string[]) =>
      kv(key, T_ARRAY, (b) => {
        b.u32(T_STRING).u64(v.length);
        for (const x of v) b.str(x);
      }),
    numbers: (key: string, type: typeof T_F32 | typeof T_I32, v: readonly number[]) =>
      kv(key, T_ARRAY, (b) => {
        b.u32(type).u64(v.length);
        for (const x of v) type === T_F32 ? b.f32(x) : b.i32(x);
      }),
  };
}

/** The llama metadata llama.cpp reads, from a config and a SentencePiece vocabulary. */
function llamaMetadata(source: ModelSource, fileType: number, name: string): { count: number; bytes: HeaderBytes } {
  const c = source.config;
  const tok = source.tokenizer as SpmTokenizerSpec;
  const m = metadataWriter();
  m.str('general.architecture', 'llama');
  m.str('general.name', name);
  m.u32('general.file_type', fileType);
  if (fileType !== GGML.F32.fileType && fileType !== GGML.F16.fileType && fileType !== GGML.BF16.fileType)
    m.u32('general.quantization_version', 2);
  m.u32('llama.context_length', c.context_length);
  m.u32('llama.embedding_length', c.dim);
  m.u32('llama.block_count', c.n_layers);
  m.u32('llama.feed_forward_length', c.ffn_dim);
  m.u32('llama.attention.head_count', c.n_heads);
  m.u32('llama.attention.head_count_kv', c.n_kv_heads);
  m.u32('llama.rope.dimension_count', c.head_dim);
  m.f32('llama.attention.layer_norm_rms_epsilon', c.norm_eps);
  m.f32('llama.rope.freq_base', c.rope_theta);
  m.u32('llama.vocab_size', c.vocab_size);
  m.str('tokenizer.ggml.model', 'llama');
  m.strings('tokenizer.ggml.tokens', tok.pieces);
  m.numbers('tokenizer.ggml.scores', T_F32, tok.scores);
  m.numbers('tokenizer.ggml.token_type', T_I32, tok.types);
  m.u32('tokenizer.ggml.bos_token_id', c.bos_id);
  m.u32('tokenizer.ggml.eos_token_id', c.eos_id);
  m.u32('tokenizer.ggml.unknown_token_id', tok.unk_id);
  m.bool('tokenizer.ggml.add_bos_token', tok.add_bos);
  m.bool('tokenizer.ggml.add_eos_token', tok.add_eos);
  m.bool('tokenizer.ggml.add_space_prefix', tok.add_space_prefix);
  // Where llama.cpp (and ie's importer) read a chat template; its special tokens are the ids above.
  if (source.chat) m.str('tokenizer.chat_template', source.chat.template);
  return { count: m.count(), bytes: m.h };
}

/**
 * The gpt-oss metadata, key for key (names, types, order) as llama.cpp's converter writes it. It
 * names no BOS unless the model's differs from its EOS (gpt-oss has none; the importer then uses the EOS).
 */
function gptOssMetadata(source: ModelSource, fileType: number, name: string): { count: number; bytes: HeaderBytes } {
  const c = source.config;
  const moe = c.moe as NonNullable<typeof c.moe>;
  const tok = source.tokenizer as Gpt2TokenizerSpec;
  const a = 'gpt-oss';
  const m = metadataWriter();
  m.str('general.architecture', a);
  m.str('general.type', 'model');
  m.str('general.name', name);
  m.u32(`${a}.block_count`, c.n_layers);
  m.u32(`${a}.context_length`, c.context_length);
  m.u32(`${a}.embedding_length`, c.dim);
  m.u32(`${a}.feed_forward_length`, c.ffn_dim);
  m.u32(`${a}.attention.head_count`, c.n_heads);
  m.u32(`${a}.attention.head_count_kv`, c.n_kv_heads);
  const rs = c.rope_scaling;
  if (rs?.type === 'yarn') {
    m.str(`${a}.rope.scaling.type`, 'yarn');
    m.f32(`${a}.rope.scaling.factor`, rs.factor);
    m.u32(`${a}.rope.scaling.original_context_length`, rs.original_context_length);
    m.f32(`${a}.rope.scaling.yarn_beta_fast`, rs.beta_fast);
    m.f32(`${a}.rope.scaling.yarn_beta_slow`, rs.beta_slow);
  }
  m.f32(`${a}.rope.freq_base`, c.rope_theta);
  m.f32(`${a}.attention.layer_norm_rms_epsilon`, c.norm_eps);
  m.u32(`${a}.expert_count`, moe.n_experts);
  m.u32(`${a}.expert_used_count`, moe.experts_per_token);
  m.u32(`${a}.attention.key_length`, c.head_dim);
  m.u32(`${a}.attention.value_length`, c.head_dim);
  m.u32('general.file_type', fileType);
  m.u32(`${a}.attention.sliding_window`, c.sliding_window as number);
  m.u32(`${a}.expert_feed_forward_length`, c.ffn_dim);
  m.u32('general.quantization_version', 2);
  m.str('tokenizer.ggml.model', 'gpt2');
  if (tok.pre !== null) m.str('tokenizer.ggml.pre', tok.pre);
  m.strings('tokenizer.ggml.tokens', tok.pieces);
  m.numbers('tokenizer.ggml.token_type', T_I32, tok.types);
  m.strings('tokenizer.ggml.merges', tok.merges);
  if (c.bos_id !== c.eos_id) m.u32('tokenizer.ggml.bos_token_id', c.bos_id);
  m.u32('tokenizer.ggml.eos_token_id', c.eos_id);
  const pad = tok.pieces.indexOf('<|endoftext|>');
  if (pad >= 0) m.u32('tokenizer.ggml.padding_token_id', pad);
  if (source.chat) m.str('tokenizer.chat_template', source.chat.template);
  return { count: m.count(), bytes: m.h };
}

/** Why llama.cpp's gpt-oss GGUF (and ie's importer of it) cannot hold this config exactly, or null. */
function gptOssProblem(source: ModelSource): [string, string] | null {
  const c = source.config;
  if (!c.moe) return ['moe', 'a gpt-oss model has experts'];
  if (c.rope_style !== 'rotate_half') return ['rope_style', 'gpt-oss GGUF files hold rotate-half (NEOX) RoPE weights'];
  if (c.rope_scaling && (c.rope_scaling.type !== 'yarn' || c.rope_scaling.truncate))
    return ['rope_scaling', 'GGUF records YaRN without rounding of its range (truncate false) only'];
  if (!c.attn_qkv_bias || !c.attn_output_bias || !c.attn_sinks)
    return ['attn_sinks', "llama.cpp's gpt-oss has biases on every attention projection and attention sinks"];
  if (c.moe.swiglu_limit !== 7)
    return ['moe.swiglu_limit', `llama.cpp's gpt-oss graph clamps SwiGLU at 7; this model's limit is ${c.moe.swiglu_limit}`];
  const even = Array.from({ length: c.n_layers }, (_, i) => i % 2 === 0);
  if (c.sliding_window === null || (c.sliding_layers ?? even).some((s, i) => s !== even[i]))
    return ['sliding_layers', "llama.cpp's gpt-oss slides on the even layers (a window must be set)"];
  if (source.tokenizer.model !== 'gpt2')
    return [
      'tokenizer',
      `the GGUF writer writes gpt-oss with a byte-level BPE (gpt2) vocabulary; this model's is ${source.tokenizer.model}`,
    ];
  return null;
}

/**
 * Writes `source` as a GGUF v3 file at `path`: a llama model with a SentencePiece vocabulary and
 * adjacent-pair RoPE (the GGUF convention), or a gpt-oss model with a GPT-2 byte-level vocabulary.
 * Returns the file's size in bytes.
 */
export async function writeGguf(source: ModelSource, path: string, options: WriteGgufOptions = {}): Promise<number> {
  checkGgufWritable(source, path);
  const plan = ggufTensorPlan(source);
  const name = options.name ?? `ie-${source.synth?.preset ?? 'model'}`;
  const gptOss = source.config.architecture === 'gpt-oss';
  const meta = gptOss ? gptOssMetadata(source, plan.fileType, name) : llamaMetadata(source, plan.fileType, name);
  const headBytes = ggufHeaderBytes(source, plan, meta);
  const dataStart = alignGguf(headBytes.length);
  const dir = dirname(path);
  const { path: partial, handle: fh } = await createTempFile(dir, basename(path));
  let ok = false;
  try {
    await fh.write(headBytes, 0, headBytes.length, 0);
    const at = await writeGgufData(fh, source, plan, dataStart, path);
    // Padding after the last tensor, so the file ends on the alignment like llama.cpp's own.
    if (at > dataStart) await fh.truncate(at);
    await fh.sync();
    await fh.close();
    await commitRename(partial, path);
    ok = true;
    await fsyncDir(dir);
    return at;
  } finally {
    if (!ok) {
      await fh.close().catch(() => undefined);
      await discardTemp(partial);
    }
  }
}

const alignGguf = (n: number) => Math.ceil(n / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;

/** Refuses, by the config field at fault, a model that has no GGUF form the writer knows. */
function checkGgufWritable(source: ModelSource, path: string): void {
  const c = source.config;
  const refuse = (field: string, message: string): never => {
    throw new GgufError('GGUF_BAD_METADATA', message, { file: path, field });
  };
  if (c.architecture === 'gpt-oss') {
    const problem = gptOssProblem(source);
    if (problem) refuse(problem[0], problem[1]);
    return;
  }
  if (c.architecture !== 'llama') refuse('architecture', `the GGUF writer writes llama and gpt-oss models; this one is ${c.architecture}`);
  if (c.rope_style !== 'adjacent')
    refuse(
      'rope_style',
      'llama GGUF files hold Q/K rows for adjacent-pair RoPE; this model is rotate_half (convert it from its original checkpoint instead)',
    );
  if (c.rope_scaling) refuse('rope_scaling', 'RoPE scaling is not written to GGUF');
  if (c.attn_qkv_bias) refuse('attn_qkv_bias', 'q/k/v biases are not part of the llama GGUF architecture');
  if (c.sliding_window) refuse('sliding_window', 'a sliding window is not part of the llama GGUF architecture');
  if (source.tokenizer.model !== 'spm')
    refuse('tokenizer', `the GGUF writer writes SentencePiece vocabularies; this model's is ${source.tokenizer.model}`);
}

/** Per tensor (in source order): whether it is widened to F32, its ggml type, GGUF name and bytes; and the file type. */
interface GgufTensorPlan {
  toF32: boolean[];
  types: GgmlName[];
  names: string[];
  sizes: number[];
  fileType: number;
}

function ggufTensorPlan(source: ModelSource): GgufTensorPlan {
  const c = source.config;
  const gptOss = c.architecture === 'gpt-oss';
  // gpt-oss as llama.cpp writes it: vectors, stacked expert biases and the router in F32 (float sources only).
  const roles = new Map(expectedTensors(c).map((e) => [e.name, e.role]));
  const toF32 = source.tensors.map(
    (t) =>
      gptOss &&
      (t.dtype === 'f16' || t.dtype === 'bf16') &&
      (t.shape.length === 1 || ['expert_bias', 'router'].includes(roles.get(t.name) ?? '')),
  );
  const types = source.tensors.map((t, i): GgmlName => (toF32[i] ? 'F32' : ggmlTypeOf(t)));
  const names = source.tensors.map((t) =>
    gptOss ? t.name.replace(/^(blk\.\d+\.)ffn_norm\.weight$/, '$1post_attention_norm.weight') : t.name,
  );
  const sizes = source.tensors.map((t, i) => tensorBytes(types[i], t.shape));
  // The file type names the type of the 2-D tensors (norms stay F32); gpt-oss with MXFP4 experts is MOSTLY_MXFP4_MOE whatever the rest.
  const matrixTypes = new Set(types.filter((_, i) => source.tensors[i].shape.length === 2));
  const only = [...matrixTypes][0];
  // llama.cpp's file types for the block formats: Q4_K_M 15, Q5_K_M 17, Q6_K 18, IQ4_NL 25, MXFP4_MOE 38.
  const blockFileType: Record<BlockDtype, number> = { q4_k: 15, q5_k: 17, q6_k: 18, iq4_nl: 25, mxfp4: 38 };
  const fileType = types.includes('mxfp4')
    ? blockFileType.mxfp4
    : matrixTypes.size !== 1
      ? GGML.F32.fileType
      : isBlockDtype(only)
        ? blockFileType[only]
        : GGML[only].fileType;
  return { toF32, types, names, sizes, fileType };
}

/** The header: magic, version 3, counts, metadata, then each tensor's name, dims (innermost first), type and aligned offset. */
function ggufHeaderBytes(source: ModelSource, plan: GgufTensorPlan, meta: { count: number; bytes: HeaderBytes }): Uint8Array {
  const head = new HeaderBytes().u32(GGUF_MAGIC).u32(3).u64(source.tensors.length).u64(meta.count).bytes(meta.bytes.done());
  let offset = 0;
  source.tensors.forEach((t, i) => {
    head.str(plan.names[i]).u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(ggmlId(plan.types[i])).u64(offset);
    offset = alignGguf(offset + plan.sizes[i]);
  });
  return head.done();
}

/**
 * Streams every tensor's bytes from `dataStart`, each at an aligned offset (Q4_0 / Q8_0 planes
 * joined back into ggml blocks); a tensor that reads other than its size is refused. Returns the
 * aligned end of the data.
 */
async function writeGgufData(fh: FileHandle, source: ModelSource, plan: GgufTensorPlan, dataStart: number, path: string): Promise<number> {
  const { toF32, types, sizes } = plan;
  let at = dataStart;
  for (let i = 0; i < source.tensors.length; i++) {
    const t = source.tensors[i];
    const pieces = toF32[i]
      ? [new Uint8Array(Float32Array.from(floatValues(t, await t.read())).buffer)]
      : types[i] === 'Q4_0' || types[i] === 'Q8_0'
        ? [await t.read()]
        : readChunks(t);
    let got = 0;
    for await (const raw of pieces) {
      const bytes =
        types[i] === 'Q4_0' ? joinBlocks(raw, sizes[i] / 18, 16) : types[i] === 'Q8_0' ? joinBlocks(raw, sizes[i] / 34, 32) : raw;
      got += bytes.length;
      if (got > sizes[i]) break;
      await fh.write(bytes, 0, bytes.length, at + got - bytes.length);
    }
    if (got !== sizes[i])
      throw new GgufError(
        'GGUF_BAD_TENSOR_INFO',
        `${t.name} read ${got > sizes[i] ? `more than ${sizes[i]}` : got} bytes, expected ${sizes[i]}`,
        { file: path, field: t.name },
      );
    at = alignGguf(at + got);
  }
  return at;
}
