/**
 * GGUF v3 writer: a llama model source (config, SentencePiece vocabulary, tensors) as a file
 * llama.cpp loads, so the two engines can be compared on identical weights. Tensors stream to
 * disk one at a time; the file is written under a hidden partial name (created exclusively, so
 * a planted symlink is never followed), fsynced and renamed into place.
 *
 * Each tensor keeps its encoding: f32 → F32, f16 → F16, bf16 → BF16, q4 symmetric group 32 with
 * f16 scales → Q4_0 and i8 per-group 32 with f16 scales → Q8_0 (IEBIN's planes interleaved back
 * into ggml blocks, byte for byte what the importer splits), and the block dtypes (q4_k, q5_k,
 * q6_k, iq4_nl) → their ggml types as they are. Anything else has no GGUF type and
 * is refused by name.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BLOCK_FORMATS, isBlockDtype, type BlockDtype } from './blocks.js';
import { GgufError } from './errors.js';
import type { SpmTokenizerSpec } from './header.js';
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from './gguf.js';
import type { ModelSource, SourceTensor } from './source.js';

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
  if (shape[shape.length - 1] % 32 !== 0) throw new GgufError('GGUF_BAD_TENSOR_INFO', `a ${type} row must be a whole number of 32-element blocks, got ${shape[shape.length - 1]}`);
  return (n / 32) * (type === 'Q4_0' ? 18 : 34);
}

/** IEBIN planes (all payloads, padded to 64, then all f16 scales) → ggml blocks {f16 d; payload}. The inverse of splitBlocks. */
export function joinBlocks(planes: Uint8Array, blocks: number, payload: number): Uint8Array {
  const sOff = Math.ceil((blocks * payload) / 64) * 64;
  if (planes.length < sOff + 2 * blocks) throw new GgufError('GGUF_BAD_TENSOR_INFO', `planes of ${planes.length} bytes cannot hold ${blocks} blocks`);
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

/** Little-endian GGUF header serialization. */
class HeaderBytes {
  private parts: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  private fixed(size: number, write: (b: Buffer) => void): this {
    const b = Buffer.alloc(size);
    write(b);
    this.push(b);
    return this;
  }
  u32(v: number): this {
    return this.fixed(4, (b) => b.writeUInt32LE(v));
  }
  i32(v: number): this {
    return this.fixed(4, (b) => b.writeInt32LE(v));
  }
  u64(v: number): this {
    return this.fixed(8, (b) => b.writeBigUInt64LE(BigInt(v)));
  }
  f32(v: number): this {
    return this.fixed(4, (b) => b.writeFloatLE(v));
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    this.push(b);
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// GGUF metadata value type ids.
const T_U32 = 4;
const T_I32 = 5;
const T_F32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;

/** The llama metadata llama.cpp reads, from a config and a SentencePiece vocabulary. */
function llamaMetadata(source: ModelSource, fileType: number, name: string): { count: number; bytes: HeaderBytes } {
  const c = source.config;
  const tok = source.tokenizer as SpmTokenizerSpec;
  const h = new HeaderBytes();
  let count = 0;
  const kv = (key: string, type: number, write: (h: HeaderBytes) => void) => {
    h.str(key).u32(type);
    write(h);
    count++;
  };
  const u32 = (key: string, v: number) => kv(key, T_U32, (b) => b.u32(v));
  const f32 = (key: string, v: number) => kv(key, T_F32, (b) => b.f32(v));
  const bool = (key: string, v: boolean) => kv(key, T_BOOL, (b) => b.bytes(Buffer.from([v ? 1 : 0])));
  const str = (key: string, v: string) => kv(key, T_STRING, (b) => b.str(v));
  kv('general.architecture', T_STRING, (b) => b.str('llama'));
  str('general.name', name);
  u32('general.file_type', fileType);
  if (fileType !== GGML.F32.fileType && fileType !== GGML.F16.fileType && fileType !== GGML.BF16.fileType) u32('general.quantization_version', 2);
  u32('llama.context_length', c.context_length);
  u32('llama.embedding_length', c.dim);
  u32('llama.block_count', c.n_layers);
  u32('llama.feed_forward_length', c.ffn_dim);
  u32('llama.attention.head_count', c.n_heads);
  u32('llama.attention.head_count_kv', c.n_kv_heads);
  u32('llama.rope.dimension_count', c.head_dim);
  f32('llama.attention.layer_norm_rms_epsilon', c.norm_eps);
  f32('llama.rope.freq_base', c.rope_theta);
  u32('llama.vocab_size', c.vocab_size);
  str('tokenizer.ggml.model', 'llama');
  kv('tokenizer.ggml.tokens', T_ARRAY, (b) => {
    b.u32(T_STRING).u64(tok.pieces.length);
    for (const p of tok.pieces) b.str(p);
  });
  kv('tokenizer.ggml.scores', T_ARRAY, (b) => {
    b.u32(T_F32).u64(tok.scores.length);
    for (const s of tok.scores) b.f32(s);
  });
  kv('tokenizer.ggml.token_type', T_ARRAY, (b) => {
    b.u32(T_I32).u64(tok.types.length);
    for (const t of tok.types) b.i32(t);
  });
  u32('tokenizer.ggml.bos_token_id', c.bos_id);
  u32('tokenizer.ggml.eos_token_id', c.eos_id);
  u32('tokenizer.ggml.unknown_token_id', tok.unk_id);
  bool('tokenizer.ggml.add_bos_token', tok.add_bos);
  bool('tokenizer.ggml.add_eos_token', tok.add_eos);
  bool('tokenizer.ggml.add_space_prefix', tok.add_space_prefix);
  return { count, bytes: h };
}

/**
 * Writes `source` (a llama model with a SentencePiece vocabulary and adjacent-pair RoPE, the GGUF
 * convention) as a GGUF v3 file at `path`. Returns the file's size in bytes.
 */
export async function writeGguf(source: ModelSource, path: string, options: WriteGgufOptions = {}): Promise<number> {
  const c = source.config;
  const refuse = (field: string, message: string): never => {
    throw new GgufError('GGUF_BAD_METADATA', message, { file: path, field });
  };
  if (c.architecture !== 'llama') refuse('architecture', `the GGUF writer writes llama models; this one is ${c.architecture}`);
  if (c.rope_style !== 'adjacent') refuse('rope_style', 'llama GGUF files hold Q/K rows for adjacent-pair RoPE; this model is rotate_half (convert it from its original checkpoint instead)');
  if (c.rope_scaling) refuse('rope_scaling', 'RoPE scaling is not written to GGUF');
  if (c.attn_qkv_bias) refuse('attn_qkv_bias', 'q/k/v biases are not part of the llama GGUF architecture');
  if (c.sliding_window) refuse('sliding_window', 'a sliding window is not part of the llama GGUF architecture');
  if (source.tokenizer.model !== 'spm') refuse('tokenizer', `the GGUF writer writes SentencePiece vocabularies; this model's is ${source.tokenizer.model}`);
  const types = source.tensors.map(ggmlTypeOf);
  const sizes = source.tensors.map((t, i) => tensorBytes(types[i], t.shape));
  // The file type names the type of the 2-D tensors (norms stay F32).
  const matrixTypes = new Set(types.filter((_, i) => source.tensors[i].shape.length === 2));
  const only = [...matrixTypes][0];
  // llama.cpp's file types for the block formats: Q4_K_M 15, Q5_K_M 17, Q6_K 18, IQ4_NL 25, MXFP4_MOE 38.
  const blockFileType: Record<BlockDtype, number> = { q4_k: 15, q5_k: 17, q6_k: 18, iq4_nl: 25, mxfp4: 38 };
  const fileType = matrixTypes.size !== 1 ? GGML.F32.fileType : isBlockDtype(only) ? blockFileType[only] : GGML[only].fileType;
  const meta = llamaMetadata(source, fileType, options.name ?? `ie-${source.synth?.preset ?? 'model'}`);
  const align = (n: number) => Math.ceil(n / GGUF_DEFAULT_ALIGNMENT) * GGUF_DEFAULT_ALIGNMENT;
  const head = new HeaderBytes().u32(GGUF_MAGIC).u32(3).u64(source.tensors.length).u64(meta.count).bytes(meta.bytes.done());
  let offset = 0;
  source.tensors.forEach((t, i) => {
    head.str(t.name).u32(t.shape.length);
    for (const d of [...t.shape].reverse()) head.u64(d);
    head.u32(ggmlId(types[i])).u64(offset);
    offset = align(offset + sizes[i]);
  });
  const headBytes = head.done();
  const dataStart = align(headBytes.length);
  const partial = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  const fh = await open(partial, 'wx');
  let ok = false;
  try {
    await fh.write(headBytes, 0, headBytes.length, 0);
    let at = dataStart;
    for (let i = 0; i < source.tensors.length; i++) {
      const t = source.tensors[i];
      const raw = await t.read();
      const bytes = types[i] === 'Q4_0' ? joinBlocks(raw, sizes[i] / 18, 16) : types[i] === 'Q8_0' ? joinBlocks(raw, sizes[i] / 34, 32) : raw;
      if (bytes.length !== sizes[i]) throw new GgufError('GGUF_BAD_TENSOR_INFO', `${t.name} read ${bytes.length} bytes, expected ${sizes[i]}`, { file: path, field: t.name });
      await fh.write(bytes, 0, bytes.length, at);
      at = align(at + bytes.length);
    }
    // Padding after the last tensor, so the file ends on the alignment like llama.cpp's own.
    if (at > dataStart) await fh.truncate(at);
    await fh.sync();
    ok = true;
    await fh.close();
    await rename(partial, path);
    return at;
  } finally {
    if (!ok) {
      await fh.close().catch(() => undefined);
      await unlink(partial).catch(() => undefined);
    }
  }
}
