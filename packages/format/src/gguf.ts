/**
 * GGUF v2/v3 reader (llama.cpp's format), hardened: every count is checked against the
 * bytes that remain before anything is allocated, every tensor range against the file.
 * `openGguf` imports a llama-family GGUF as a model source; F32, F16, BF16, Q8_0, Q4_0, Q4_K,
 * Q5_K, Q6_K and IQ4_NL tensors map onto IEBIN dtypes without loss (Q4_0 is IEBIN q4 symmetric,
 * group 32, f16 scales, byte for byte; Q8_0 is IEBIN i8 per-group 32, f16 scales; the K-quants
 * and IQ4_NL are IEBIN block dtypes holding the ggml blocks as they are). gpt-oss files import too:
 * MXFP4 experts (3-D, ggml type 39) are the IEBIN mxfp4 block dtype byte for byte.
 */
import { basename } from 'node:path';
import { GgufError, type FormatErrorCode } from './errors.js';
import { RandomAccessFile } from './file.js';
import { chatTemplateProblem, specialTokenProblem, type ChatTemplateSpec } from './chat-template.js';
import { byteLevelPreDefaults } from './byte-level-bpe.js';
import type { Gpt2TokenizerSpec, SpmTokenizerSpec } from './header.js';
import { configProblems, expectedTensors, type Architecture, type ModelConfig } from './llama.js';
import { mxfp4NanBlock } from './blocks.js';
import type { ModelSource, SourceTensor } from './source.js';
import type { QuantParams } from './writer.js';
import type { Dtype } from './layout.js';
import type { BlockDtype } from './blocks.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

export const GGUF_VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
export type GgufValue = number | bigint | boolean | string | GgufArray;
export interface GgufArray {
  type: (typeof GGUF_VALUE_TYPES)[number];
  values: GgufValue[];
}

/** ggml tensor types: [name, block elements, block bytes]. Only some can be imported. */
export const GGML_TYPES: Record<number, [string, number, number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  9: ['Q8_1', 32, 36],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  15: ['Q8_K', 256, 292],
  20: ['IQ4_NL', 32, 18],
  24: ['I8', 1, 1],
  25: ['I16', 1, 2],
  26: ['I32', 1, 4],
  27: ['I64', 1, 8],
  28: ['F64', 1, 8],
  30: ['BF16', 1, 2],
  39: ['MXFP4', 32, 17],
};
const IMPORTABLE = new Set([0, 1, 2, 8, 30, 12, 13, 14, 20, 39]);
/** ggml block types imported as IEBIN block dtypes, byte for byte. */
const BLOCK_TYPE: Record<number, BlockDtype> = { 12: 'q4_k', 13: 'q5_k', 14: 'q6_k', 20: 'iq4_nl', 39: 'mxfp4' };
/** gpt-oss's GGUF names that differ from the canonical ones. */
const GPT_OSS_ALIASES: Record<string, string> = { 'post_attention_norm.weight': 'ffn_norm.weight' };

export interface GgufTensorInfo {
  name: string;
  /** ggml dims, innermost first. */
  ne: number[];
  type: number;
  /** Offset from the start of the data section. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
}

export interface GgufLimits {
  maxTensors: number;
  maxKeys: number;
  /** The longest metadata string value (a key is at most 64 KiB, a tensor name 256 bytes). */
  maxStringBytes: number;
  maxArrayDepth: number;
  /** The most elements one metadata array may have (a vocabulary, its scores, its merges). */
  maxArrayLength: number;
  /**
   * What the parsed metadata may cost in memory, estimated per value before it is allocated
   * (16 bytes a number, 32 a bigint, 32 plus its length a string): a file cannot make the parser
   * hold much more than its own size, whatever its arrays claim.
   */
  maxMetadataBytes: number;
}
/** Far above any real model's (gpt-oss's o200k vocabulary: 201,088 tokens and 446,189 merges, ~30 MB parsed). */
export const DEFAULT_GGUF_LIMITS: GgufLimits = Object.freeze({
  maxTensors: 1 << 16,
  maxKeys: 1 << 16,
  maxStringBytes: 1 << 24,
  maxArrayDepth: 2,
  maxArrayLength: 1 << 21,
  maxMetadataBytes: 256 << 20,
});

/** Estimated memory of one parsed metadata value of each type (strings add their length). */
const VALUE_COST = [16, 16, 16, 16, 16, 16, 16, 16, 32, 48, 32, 32, 16];

/** Thrown internally when the bytes given end before the header does but the file goes on. */
class NeedMore {
  constructor(readonly end: number) {}
}

const MIN_VALUE_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];

class Cursor {
  pos = 0;
  /** Estimated bytes of metadata parsed so far (see GgufLimits.maxMetadataBytes). */
  spent = 0;
  private readonly dv: DataView;
  // ignoreBOM: a string that starts with U+FEFF keeps it (Llama 2's vocabulary has it as a piece).
  private readonly dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  constructor(
    private readonly b: Uint8Array,
    private readonly fileSize: number,
    private readonly file: string,
  ) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.length);
  }
  fail(code: FormatErrorCode, message: string, field?: string): never {
    throw new GgufError(code, message, { file: this.file, field });
  }
  /** Bytes the file still has after the cursor. */
  get remaining(): number {
    return this.fileSize - this.pos;
  }
  need(n: number, field: string): void {
    if (this.pos + n > this.fileSize)
      this.fail('GGUF_TRUNCATED', `ends at byte ${this.fileSize} inside ${field} (needs ${this.pos + n})`, field);
    if (this.pos + n > this.b.length) throw new NeedMore(this.pos + n);
  }
  u8(f: string) {
    this.need(1, f);
    return this.dv.getUint8(this.pos++);
  }
  u32(f: string) {
    this.need(4, f);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u64(f: string): bigint {
    this.need(8, f);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  /** A u64 that must fit a safe integer and stay under `max`. */
  count(f: string, max: number, code: FormatErrorCode = 'GGUF_TOO_MANY_ENTRIES'): number {
    const v = this.u64(f);
    if (v > BigInt(max)) this.fail(code, `is ${v}, more than ${max}`, f);
    return Number(v);
  }
  /** Charges `bytes` of estimated memory against the metadata budget, before it is allocated. */
  charge(bytes: number, limits: GgufLimits, f: string): void {
    this.spent += bytes;
    if (this.spent > limits.maxMetadataBytes)
      this.fail(
        'GGUF_TOO_MANY_ENTRIES',
        `metadata would take more than the ${limits.maxMetadataBytes}-byte cap in memory (at byte ${this.pos})`,
        f,
      );
  }
  str(f: string, maxBytes: number, limits?: GgufLimits): string {
    const n = this.u64(f);
    if (n > BigInt(maxBytes) || n > BigInt(this.remaining))
      this.fail('GGUF_BAD_STRING', `has length ${n}, more than ${Math.min(maxBytes, this.remaining)} bytes available`, f);
    const len = Number(n);
    if (limits) this.charge(len, limits, f);
    this.need(len, f);
    const s = this.b.subarray(this.pos, this.pos + len);
    this.pos += len;
    try {
      return this.dec.decode(s);
    } catch {
      this.fail('GGUF_BAD_STRING', 'is not valid UTF-8', f);
    }
  }
  value(type: number, f: string, limits: GgufLimits, depth: number): GgufValue {
    switch (type) {
      case 0:
        return this.u8(f);
      case 1: {
        this.need(1, f);
        return this.dv.getInt8(this.pos++);
      }
      case 2: {
        this.need(2, f);
        const v = this.dv.getUint16(this.pos, true);
        this.pos += 2;
        return v;
      }
      case 3: {
        this.need(2, f);
        const v = this.dv.getInt16(this.pos, true);
        this.pos += 2;
        return v;
      }
      case 4:
        return this.u32(f);
      case 5: {
        this.need(4, f);
        const v = this.dv.getInt32(this.pos, true);
        this.pos += 4;
        return v;
      }
      case 6: {
        this.need(4, f);
        const v = this.dv.getFloat32(this.pos, true);
        this.pos += 4;
        return v;
      }
      case 7: {
        const v = this.u8(f);
        if (v > 1) this.fail('GGUF_BAD_VALUE_TYPE', `is a bool with byte value ${v}`, f);
        return v === 1;
      }
      case 8:
        return this.str(f, limits.maxStringBytes, limits);
      case 9: {
        if (depth >= limits.maxArrayDepth) this.fail('GGUF_BAD_VALUE_TYPE', `nests arrays deeper than ${limits.maxArrayDepth}`, f);
        const et = this.u32(`${f}.type`);
        if (et >= GGUF_VALUE_TYPES.length) this.fail('GGUF_BAD_VALUE_TYPE', `has element type ${et}`, f);
        const n = this.u64(`${f}.length`);
        // Refuse before allocating: each element takes at least MIN_VALUE_BYTES, and costs VALUE_COST in memory.
        if (n > BigInt(limits.maxArrayLength))
          this.fail('GGUF_TOO_MANY_ENTRIES', `claims ${n} elements, more than the cap of ${limits.maxArrayLength}`, f);
        if (n * BigInt(MIN_VALUE_BYTES[et]) > BigInt(this.remaining))
          this.fail('GGUF_TOO_MANY_ENTRIES', `claims ${n} elements, more than the ${this.remaining} bytes left can hold`, f);
        const len = Number(n);
        this.charge(16 + len * (8 + VALUE_COST[et]), limits, f);
        const values: GgufValue[] = new Array(len);
        for (let i = 0; i < len; i++) values[i] = this.value(et, f, limits, depth + 1);
        return { type: GGUF_VALUE_TYPES[et], values };
      }
      case 10:
        return this.u64(f);
      case 11: {
        this.need(8, f);
        const v = this.dv.getBigInt64(this.pos, true);
        this.pos += 8;
        return v;
      }
      case 12: {
        this.need(8, f);
        const v = this.dv.getFloat64(this.pos, true);
        this.pos += 8;
        return v;
      }
      default:
        this.fail('GGUF_BAD_VALUE_TYPE', `has value type ${type}`, f);
    }
  }
}

/**
 * Parses a GGUF header from its first bytes. `bytes` may be a prefix of the file (whose
 * full size is `fileSize`); if the header runs past it, {@link readGguf} reads more.
 */
export function parseGguf(bytes: Uint8Array, fileSize: number, file: string, limits: GgufLimits = DEFAULT_GGUF_LIMITS): GgufFile {
  const c = new Cursor(bytes, fileSize, file);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) c.fail('GGUF_BAD_MAGIC', 'does not start with "GGUF"; it is not a GGUF file', 'magic');
  const version = c.u32('version');
  if (version !== 2 && version !== 3)
    c.fail('GGUF_UNSUPPORTED_VERSION', `is GGUF version ${version}; versions 2 and 3 are supported`, 'version');
  const nTensors = c.count('tensor_count', limits.maxTensors);
  const nKv = c.count('metadata_kv_count', limits.maxKeys);
  if (nTensors * 32 + nKv * 13 > c.remaining)
    c.fail('GGUF_TOO_MANY_ENTRIES', `claims ${nTensors} tensors and ${nKv} keys, more than the file can hold`, 'tensor_count');
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata[${i}].key`, 1 << 16, limits);
    c.charge(64, limits, key);
    if (metadata.has(key)) c.fail('GGUF_DUPLICATE_KEY', `${key} appears twice`, key);
    const type = c.u32(key);
    metadata.set(key, c.value(type, key, limits, 0));
  }
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const a = metadata.get('general.alignment');
  if (a !== undefined) {
    if (typeof a !== 'number') c.fail('GGUF_BAD_METADATA', `general.alignment must be a u32, got ${ggufValueKind(a)}`, 'general.alignment');
    else if (!Number.isInteger(a) || a < 1 || a > 1 << 20 || (a & (a - 1)) !== 0)
      c.fail('GGUF_BAD_METADATA', `general.alignment is ${a}, not a power of two in 1..${1 << 20}`, 'general.alignment');
    else alignment = a;
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const f = `tensors[${i}]`;
    const name = c.str(`${f}.name`, 256);
    if (names.has(name)) c.fail('GGUF_BAD_TENSOR_INFO', `tensor ${name} appears twice`, `${f}.name`);
    names.add(name);
    const nd = c.u32(`${f}.n_dims`);
    if (nd < 1 || nd > 4) c.fail('GGUF_BAD_TENSOR_INFO', `${name} has ${nd} dims (1..4 allowed)`, `${f}.n_dims`);
    const ne: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nd; d++) {
      const v = c.u64(`${f}.ne[${d}]`);
      if (v < 1n || v > 1n << 40n) c.fail('GGUF_BAD_TENSOR_INFO', `${name} has dim ${d} = ${v}`, `${f}.ne[${d}]`);
      ne.push(Number(v));
      elements *= v;
    }
    if (elements > BigInt(Number.MAX_SAFE_INTEGER))
      c.fail('GGUF_BAD_TENSOR_INFO', `${name} has more elements than can be addressed`, `${f}.ne`);
    const type = c.u32(`${f}.type`);
    const t = GGML_TYPES[type];
    if (!t) c.fail('GGUF_UNSUPPORTED_TENSOR_TYPE', `${name} has unknown ggml type ${type}`, `${f}.type`);
    if (ne[0] % t[1] !== 0)
      c.fail('GGUF_BAD_TENSOR_INFO', `${name}: ne[0] = ${ne[0]} is not a multiple of the ${t[0]} block size ${t[1]}`, `${f}.ne[0]`);
    const bytes = (elements / BigInt(t[1])) * BigInt(t[2]);
    const off = c.u64(`${f}.offset`);
    if (off % BigInt(alignment) !== 0n) c.fail('GGUF_MISALIGNED', `${name} offset ${off} is not a multiple of ${alignment}`, `${f}.offset`);
    if (off + bytes > BigInt(fileSize))
      c.fail('GGUF_RANGE_OUT_OF_FILE', `${name} (${bytes} bytes at data+${off}) lies outside the ${fileSize}-byte file`, `${f}.offset`);
    tensors.push({ name, ne, type, offset: Number(off), bytes: Number(bytes) });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  const sorted = [...tensors].sort((x, y) => x.offset - y.offset);
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (dataOffset + t.offset + t.bytes > fileSize)
      c.fail('GGUF_RANGE_OUT_OF_FILE', `${t.name} ends at byte ${dataOffset + t.offset + t.bytes}, past the ${fileSize}-byte file`, t.name);
    if (i > 0 && sorted[i - 1].offset + sorted[i - 1].bytes > t.offset)
      c.fail('GGUF_OVERLAP', `${t.name} overlaps ${sorted[i - 1].name}`, t.name);
  }
  return { version, metadata, tensors, alignment, dataOffset };
}

/** Reads and parses a GGUF header, fetching only as many bytes as the header takes. */
export async function readGguf(f: RandomAccessFile, limits: GgufLimits = DEFAULT_GGUF_LIMITS): Promise<GgufFile> {
  let n = Math.min(f.size, 1 << 20);
  for (;;) {
    const bytes = await f.read(0, n);
    try {
      return parseGguf(bytes, f.size, f.path, limits);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      n = Math.min(f.size, Math.max(n * 2, e.end));
    }
  }
}

/** What a metadata value is, for messages: "a string", "an array", "a bool", "a number". */
function ggufValueKind(v: GgufValue): string {
  if (typeof v === 'object') return 'an array';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'string') return 'a string';
  return typeof v === 'bigint' ? 'a 64-bit integer' : 'a number';
}

/** An f32 metadata value as the shortest decimal that reads back as the same f32 (1e-5, not 9.99999974e-6). */
function shortestF32(v: GgufValue | undefined): GgufValue | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v) || Number.isInteger(v)) return v;
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

function meta(g: GgufFile, file: string) {
  const fail = (key: string, message: string): never => {
    throw new GgufError('GGUF_BAD_METADATA', `${key} ${message}`, { file, field: key });
  };
  const num = (key: string, dflt?: number): number => {
    const v = shortestF32(g.metadata.get(key));
    if (v === undefined) {
      if (dflt === undefined) fail(key, 'is missing');
      return dflt as number;
    }
    const x = typeof v === 'bigint' ? Number(v) : v;
    if (typeof x !== 'number') fail(key, `must be a number, got ${ggufValueKind(v)}`);
    if (!Number.isFinite(x)) fail(key, `must be a finite number, got ${x}`);
    return x as number;
  };
  const int = (key: string, dflt?: number): number => {
    const x = num(key, dflt);
    if (!Number.isSafeInteger(x) || x < 0) fail(key, `must be a non-negative integer, got ${x}`);
    return x;
  };
  const str = (key: string, dflt?: string): string => {
    const v = g.metadata.get(key);
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'string') fail(key, v === undefined ? 'is missing' : 'must be a string');
    return v as string;
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = g.metadata.get(key);
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') fail(key, 'must be a bool');
    return v as boolean;
  };
  const arr = (key: string, types: string[], optional = false): GgufValue[] | undefined => {
    const v = g.metadata.get(key);
    if (v === undefined) {
      if (optional) return undefined;
      fail(key, 'is missing');
    }
    if (typeof v !== 'object' || !types.includes((v as GgufArray).type)) fail(key, `must be an array of ${types.join('/')}`);
    return (v as GgufArray).values;
  };
  const has = (key: string): boolean => g.metadata.has(key);
  return { num, int, str, bool, arr, fail, has };
}

/** The end-of-turn and end-of-message ids a GGUF names besides EOS (`stop_ids`), if any. */
function stopIds(m: ReturnType<typeof meta>, eos: number, vocab: number): { stop_ids?: number[] } {
  const ids: number[] = [];
  for (const key of ['tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id']) {
    let id: number;
    try {
      id = m.int(key, -1);
    } catch {
      continue; // a malformed optional id (some writers store -1 for none) is no stop token
    }
    if (id >= 0 && id < vocab && id !== eos && !ids.includes(id)) ids.push(id);
  }
  return ids.length ? { stop_ids: ids } : {};
}

type GgufMeta = ReturnType<typeof meta>;

const GGUF_ARCHITECTURES: Record<string, Architecture> = { llama: 'llama', qwen2: 'qwen2', 'gpt-oss': 'gpt-oss' };

/** Opens a GGUF file as a model source (llama, qwen2 and gpt-oss architectures). */
export async function openGguf(path: string): Promise<ModelSource> {
  const f = await RandomAccessFile.open(path, (code, message) => new GgufError(code, message, { file: path }));
  try {
    const g = await readGguf(f);
    const m = meta(g, path);
    const arch = ggufArchitecture(m, path);
    const gptOss = arch === 'gpt-oss';
    const byName = ggufTensorsByName(g, gptOss, path);
    const { config, tokens } = await ggufConfig(f, g, m, arch, byName, path);
    checkGgufConfig(m, arch, config);
    const tokenizer = ggufTokenizer(g, m, tokens, config.vocab_size, path);
    const notes = [`GGUF v${g.version} ${basename(path)}, architecture ${arch}`];
    const chat = ggufChatTemplate(g, m, tokens, config);
    if (chat) notes.push(`chat template from tokenizer.chat_template (${Buffer.byteLength(chat.template, 'utf8')} bytes)`);
    if (config.tied_classifier && byName.has('output.weight')) {
      byName.delete('output.weight');
      notes.push('output.weight is byte-identical to token_embd.weight: stored once, classifier tied');
    }
    const tensors = ggufSourceTensors(f, g, byName, config, arch, path);
    if (gptOss)
      notes.push(
        'gpt-oss: post_attention_norm → ffn_norm; sliding window on even layers and YaRN without rounding (truncate false), as llama.cpp does not record them; swiglu_limit 7',
      );
    return {
      format: 'gguf',
      config,
      tokenizer,
      files: [path],
      tensors,
      notes,
      ...(chat ? { chat } : {}),
      close: () => f.close(),
    };
  } catch (e) {
    await f.close();
    throw e;
  }
}

/** general.architecture, if it is one ie imports. */
function ggufArchitecture(m: GgufMeta, path: string): string {
  const arch = m.str('general.architecture');
  // An own key only: "constructor" or "__proto__" is no architecture.
  if (!Object.hasOwn(GGUF_ARCHITECTURES, arch))
    throw new GgufError(
      'GGUF_UNSUPPORTED_ARCHITECTURE',
      `general.architecture is ${JSON.stringify(arch)}; llama, qwen2 and gpt-oss are supported`,
      { file: path, field: 'general.architecture' },
    );
  return arch;
}

/**
 * The file's tensors by canonical name (gpt-oss aliases resolved), `rope_freqs.weight` included.
 * Two GGUF tensors that resolve to one name (`blk.N.post_attention_norm.weight` beside
 * `blk.N.ffn_norm.weight` in a gpt-oss file) are refused, both named: neither is dropped silently.
 */
function ggufTensorsByName(g: GgufFile, gptOss: boolean, path: string): Map<string, GgufTensorInfo> {
  const canonical = (name: string) => {
    const b = /^(blk\.\d+\.)(.+)$/.exec(name);
    return gptOss && b && Object.hasOwn(GPT_OSS_ALIASES, b[2]) ? b[1] + GPT_OSS_ALIASES[b[2]] : name;
  };
  const byName = new Map<string, GgufTensorInfo>();
  g.tensors.forEach((t, i) => {
    const name = canonical(t.name);
    const prior = byName.get(name);
    if (prior)
      throw new GgufError('GGUF_BAD_TENSOR_INFO', `tensors ${prior.name} and ${t.name} are both ${name} (gpt-oss aliases); keep one`, {
        file: path,
        field: `tensors[${i}].name`,
      });
    byName.set(name, t);
  });
  return byName;
}

/**
 * The model's config from the metadata, and the vocabulary's pieces (read where a missing one is
 * reported before the sizes that follow it). Takes `rope_freqs.weight` out of `byName`: it is read
 * into the config. The config is not yet checked ({@link checkGgufConfig}).
 */
async function ggufConfig(
  f: RandomAccessFile,
  g: GgufFile,
  m: GgufMeta,
  arch: string,
  byName: Map<string, GgufTensorInfo>,
  path: string,
): Promise<{ config: ModelConfig; tokens: string[] }> {
  const gptOss = arch === 'gpt-oss';
  // Llama 3.1's RoPE scaling as llama.cpp stores it: one divisor per frequency, read into the config.
  const ropeFreqs = byName.get('rope_freqs.weight');
  byName.delete('rope_freqs.weight');
  const dim = m.int(`${arch}.embedding_length`);
  const nHeads = m.int(`${arch}.attention.head_count`);
  const headDim = m.int(`${arch}.attention.key_length`, nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const ropeDims = m.int(`${arch}.rope.dimension_count`, headDim);
  if (ropeDims !== headDim)
    m.fail(`${arch}.rope.dimension_count`, `is ${ropeDims}; partial rotary embeddings (head_dim ${headDim}) are not supported`);
  const emb = byName.get('token_embd.weight');
  if (emb?.ne.length !== 2)
    throw new GgufError('GGUF_BAD_METADATA', 'token_embd.weight is missing or not 2-D', { file: path, field: 'token_embd.weight' });
  const tokens = m.arr('tokenizer.ggml.tokens', ['string']) as string[];
  const vocab = m.int(`${arch}.vocab_size`, emb.ne[1]);
  const nLayers = m.int(`${arch}.block_count`);
  const eos = m.int('tokenizer.ggml.eos_token_id', 2);
  const { moe, rope_scaling, sliding_window, sliding_layers, linearFactor } = ggufRopeAndExperts(g, m, arch);
  const freqFactors = ropeFreqs ? await ropeFreqFactors(f, g, ropeFreqs, path) : undefined;
  const config: ModelConfig = {
    architecture: GGUF_ARCHITECTURES[arch],
    dim,
    n_layers: nLayers,
    n_heads: nHeads,
    n_kv_heads: m.int(`${arch}.attention.head_count_kv`, nHeads),
    head_dim: headDim,
    ffn_dim: gptOss ? m.int(`${arch}.expert_feed_forward_length`) : m.int(`${arch}.feed_forward_length`),
    vocab_size: vocab,
    context_length: m.int(`${arch}.context_length`),
    rope_theta: m.num(`${arch}.rope.freq_base`, 10000),
    // llama.cpp applies adjacent-pair RoPE to llama and rotate-half (NEOX) to qwen2 and gpt-oss.
    rope_style: arch === 'llama' ? 'adjacent' : 'rotate_half',
    rope_scaling,
    norm_eps: m.num(`${arch}.attention.layer_norm_rms_epsilon`, 1e-5),
    tied_classifier: !byName.has('output.weight') || (await sameBytes(f, g, byName.get('output.weight') as GgufTensorInfo, emb)),
    attn_qkv_bias: gptOss || byName.has('blk.0.attn_q.bias'),
    attn_output_bias: gptOss,
    attn_sinks: gptOss,
    sliding_window,
    sliding_layers,
    moe,
    // gpt-oss files may carry no BOS id (nothing is prepended in its chat format): the EOS id stands in.
    bos_id: m.int('tokenizer.ggml.bos_token_id', gptOss ? eos : 1),
    eos_id: eos,
    // llama.cpp also ends a generation on the end-of-turn / end-of-message tokens it is told of.
    ...stopIds(m, eos, vocab),
    // Linear scaling divides every pair's frequency by its factor, on top of rope_freqs' own.
    ...(freqFactors || linearFactor !== undefined
      ? {
          rope_freq_factors: (freqFactors ?? Array.from({ length: Math.floor(headDim / 2) }, () => 1)).map((x) => x * (linearFactor ?? 1)),
        }
      : {}),
  };
  return { config, tokens };
}

/**
 * RoPE scaling, experts and sliding window: gpt-oss's (YaRN optional), none for the others. A
 * gpt-oss `sliding_layers` comes back empty: it is sized by block_count only once the config's
 * caps are checked ({@link checkGgufConfig}).
 */
function ggufRopeAndExperts(
  g: GgufFile,
  m: GgufMeta,
  arch: string,
): Pick<ModelConfig, 'moe' | 'rope_scaling' | 'sliding_window' | 'sliding_layers'> & { linearFactor?: number } {
  const scalingType = g.metadata.get(`${arch}.rope.scaling.type`);
  const scaled = scalingType !== undefined && scalingType !== 'none';
  if (arch !== 'gpt-oss') {
    if (scaled && scalingType !== 'linear')
      m.fail(`${arch}.rope.scaling.type`, `is ${String(scalingType)}; RoPE scaling from GGUF is linear or none here`);
    // As llama.cpp: a scaling factor (or the older rope.scale_linear) divides the frequencies.
    const key = g.metadata.has(`${arch}.rope.scaling.factor`) ? `${arch}.rope.scaling.factor` : `${arch}.rope.scale_linear`;
    const factor = g.metadata.has(key) ? m.num(key) : 0;
    if (!(Number.isFinite(factor) && factor >= 0)) m.fail(key, `is ${factor}; a scaling factor is positive (0: none)`);
    return {
      moe: null,
      rope_scaling: null,
      sliding_window: null,
      sliding_layers: null,
      ...(factor > 0 && factor !== 1 ? { linearFactor: factor } : {}),
    };
  }
  // llama.cpp writes no swiglu limit (its gpt-oss graph hard-codes 7) and slides on even layers.
  const moe = { n_experts: m.int(`${arch}.expert_count`), experts_per_token: m.int(`${arch}.expert_used_count`), swiglu_limit: 7 };
  const sliding_window = m.int(`${arch}.attention.sliding_window`);
  let rope_scaling: ModelConfig['rope_scaling'] = null;
  if (scaled) {
    if (scalingType !== 'yarn') m.fail(`${arch}.rope.scaling.type`, `is ${String(scalingType)}; gpt-oss uses yarn`);
    // gpt-oss's YaRN range is not rounded (truncate false); GGUF has no key for it.
    rope_scaling = {
      type: 'yarn',
      factor: m.num(`${arch}.rope.scaling.factor`),
      original_context_length: m.int(`${arch}.rope.scaling.original_context_length`),
      beta_fast: m.num(`${arch}.rope.scaling.yarn_beta_fast`, 32),
      beta_slow: m.num(`${arch}.rope.scaling.yarn_beta_slow`, 1),
      truncate: false,
    };
  }
  return { moe, rope_scaling, sliding_window, sliding_layers: [] };
}

/**
 * Every cap and consistency check before anything is sized by the config (a block_count of 2^31
 * allocates nothing), problems named by the metadata key they came from; then sizes a gpt-oss
 * model's `sliding_layers` (even layers slide).
 */
function checkGgufConfig(m: GgufMeta, arch: string, config: ModelConfig): void {
  const gptOss = arch === 'gpt-oss';
  const bos = 'tokenizer.ggml.bos_token_id';
  const eos = 'tokenizer.ggml.eos_token_id';
  // The GGUF key each ModelConfig field came from (a field with none, such as swiglu_limit, keeps its name).
  const keyOf: Record<string, string> = {
    dim: `${arch}.embedding_length`,
    n_layers: `${arch}.block_count`,
    n_heads: `${arch}.attention.head_count`,
    n_kv_heads: `${arch}.attention.head_count_kv`,
    head_dim: `${arch}.attention.key_length`,
    ffn_dim: `${arch}.${gptOss ? 'expert_feed_forward_length' : 'feed_forward_length'}`,
    vocab_size: `${arch}.vocab_size`,
    context_length: `${arch}.context_length`,
    rope_theta: `${arch}.rope.freq_base`,
    norm_eps: `${arch}.attention.layer_norm_rms_epsilon`,
    'rope_scaling.factor': `${arch}.rope.scaling.factor`,
    'rope_scaling.original_context_length': `${arch}.rope.scaling.original_context_length`,
    'rope_scaling.beta_fast': `${arch}.rope.scaling.yarn_beta_fast`,
    'rope_scaling.beta_slow': `${arch}.rope.scaling.yarn_beta_slow`,
    rope_freq_factors: 'rope_freqs.weight',
    sliding_window: `${arch}.attention.sliding_window`,
    'moe.n_experts': `${arch}.expert_count`,
    'moe.experts_per_token': `${arch}.expert_used_count`,
    // gpt-oss files may name no BOS: the EOS id stands in for it.
    bos_id: gptOss && !m.has(bos) ? eos : bos,
    eos_id: eos,
  };
  const key = (field: string) => (Object.hasOwn(keyOf, field) ? keyOf[field] : field);
  const sizeProblem = configProblems({ ...config, sliding_layers: null })[0];
  if (sizeProblem) m.fail(key(sizeProblem[0]), `describes an impossible model: ${sizeProblem[0]} ${sizeProblem[1]}`);
  if (gptOss) config.sliding_layers = Array.from({ length: config.n_layers }, (_, i) => i % 2 === 0);
  const problem = configProblems(config)[0];
  if (problem) m.fail(key(problem[0]), `describes an inconsistent model: ${problem[0]} ${problem[1]}`);
}

/** The vocabulary as a SentencePiece ("llama") or byte-level BPE ("gpt2") tokenizer spec. */
function ggufTokenizer(g: GgufFile, m: GgufMeta, tokens: string[], vocab: number, path: string): SpmTokenizerSpec | Gpt2TokenizerSpec {
  if (tokens.length !== vocab) m.fail('tokenizer.ggml.tokens', `has ${tokens.length} tokens, the model's vocabulary is ${vocab}`);
  const tokModel = m.str('tokenizer.ggml.model');
  const types = (m.arr('tokenizer.ggml.token_type', ['i32', 'u32', 'i8', 'u8'], true) as number[] | undefined) ?? tokens.map(() => 1);
  if (types.length !== vocab) m.fail('tokenizer.ggml.token_type', `has ${types.length} entries for ${vocab} tokens`);
  if (tokModel === 'llama') {
    const scores = m.arr('tokenizer.ggml.scores', ['f32']) as number[];
    if (scores.length !== vocab) m.fail('tokenizer.ggml.scores', `has ${scores.length} entries for ${vocab} tokens`);
    if (scores.some((s) => !Number.isFinite(s))) m.fail('tokenizer.ggml.scores', 'holds a non-finite score');
    const unkId = m.int('tokenizer.ggml.unknown_token_id', 0);
    if (unkId >= vocab) m.fail('tokenizer.ggml.unknown_token_id', `is ${unkId}, not a token id (the vocabulary has ${vocab} tokens)`);
    return {
      model: 'spm',
      pieces: tokens,
      scores,
      types,
      unk_id: unkId,
      add_bos: m.bool('tokenizer.ggml.add_bos_token', true),
      add_eos: m.bool('tokenizer.ggml.add_eos_token', false),
      add_space_prefix: m.bool('tokenizer.ggml.add_space_prefix', true),
    };
  }
  if (tokModel === 'gpt2') {
    const pre = g.metadata.has('tokenizer.ggml.pre') ? m.str('tokenizer.ggml.pre') : null;
    return {
      model: 'gpt2',
      pieces: tokens,
      types,
      merges: m.arr('tokenizer.ggml.merges', ['string']) as string[],
      pre,
      // Absent, llama.cpp's default by the pre-tokenizer: BOS for Llama 3's family.
      add_bos: m.bool('tokenizer.ggml.add_bos_token', byteLevelPreDefaults(pre).addBos),
    };
  }
  throw new GgufError(
    'GGUF_BAD_METADATA',
    `tokenizer.ggml.model is ${JSON.stringify(tokModel)}; "llama" (SentencePiece) and "gpt2" (BPE) are supported`,
    { file: path, field: 'tokenizer.ggml.model' },
  );
}

/** tokenizer.chat_template, if the file has one, with the BOS / EOS strings a template writes. */
function ggufChatTemplate(g: GgufFile, m: GgufMeta, tokens: string[], config: ModelConfig): ChatTemplateSpec | undefined {
  if (!g.metadata.has('tokenizer.chat_template')) return undefined;
  const template = m.str('tokenizer.chat_template');
  const problem = chatTemplateProblem(template);
  if (problem) m.fail('tokenizer.chat_template', problem);
  // The strings a template writes as {{ bos_token }} / {{ eos_token }}: the pieces of the ids the file names.
  const named = (key: string, id: number) => (g.metadata.has(key) && specialTokenProblem(tokens[id]) === null ? tokens[id] : undefined);
  const bos_token = named('tokenizer.ggml.bos_token_id', config.bos_id);
  const eos_token = named('tokenizer.ggml.eos_token_id', config.eos_id);
  return { template, ...(bos_token === undefined ? {} : { bos_token }), ...(eos_token === undefined ? {} : { eos_token }) };
}

/** The config's expected tensors, in its order, from the file's: none missing, none extra, every shape as the metadata implies. */
function ggufSourceTensors(
  f: RandomAccessFile,
  g: GgufFile,
  byName: Map<string, GgufTensorInfo>,
  config: ModelConfig,
  arch: string,
  path: string,
): SourceTensor[] {
  const expected = expectedTensors(config);
  const expectedNames = new Set(expected.map((t) => t.name));
  for (const [name, t] of byName) {
    if (!expectedNames.has(name))
      throw new GgufError('GGUF_BAD_METADATA', `tensor ${t.name} is not part of a ${arch} model with this config`, {
        file: path,
        field: t.name,
      });
  }
  return expected.map((e) => {
    const t = byName.get(e.name);
    if (!t) throw new GgufError('GGUF_BAD_METADATA', `tensor ${e.name} is missing`, { file: path, field: e.name });
    const shape = [...t.ne].reverse();
    if (shape.length !== e.shape.length || shape.some((d, i) => d !== e.shape[i])) {
      throw new GgufError(
        'GGUF_BAD_TENSOR_INFO',
        `${e.name} has shape ${JSON.stringify(shape)}, the metadata implies ${JSON.stringify(e.shape)}`,
        { file: path, field: e.name },
      );
    }
    return { ...ggufTensor(f, g, t, shape, path), name: e.name };
  });
}

/** The f32 values of `rope_freqs.weight` (at most 2^15 of them). */
async function ropeFreqFactors(f: RandomAccessFile, g: GgufFile, t: GgufTensorInfo, path: string): Promise<number[]> {
  if (t.type !== 0 || t.ne.length !== 1 || t.ne[0] > 1 << 15)
    throw new GgufError('GGUF_BAD_TENSOR_INFO', 'rope_freqs.weight must be a 1-D F32 tensor of head_dim / 2 factors', {
      file: path,
      field: t.name,
    });
  const b = await f.read(g.dataOffset + t.offset, t.bytes);
  return Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + t.bytes)));
}

/** Whether two tensors hold the same type, dims and bytes (a classifier stored twice). */
async function sameBytes(f: RandomAccessFile, g: GgufFile, a: GgufTensorInfo, b: GgufTensorInfo): Promise<boolean> {
  if (a.type !== b.type || a.bytes !== b.bytes || a.ne.join() !== b.ne.join()) return false;
  const chunk = 1 << 22;
  for (let at = 0; at < a.bytes; at += chunk) {
    const n = Math.min(chunk, a.bytes - at);
    const [x, y] = await Promise.all([f.read(g.dataOffset + a.offset + at, n), f.read(g.dataOffset + b.offset + at, n)]);
    if (Buffer.compare(x, y) !== 0) return false;
  }
  return true;
}

function ggufTensor(f: RandomAccessFile, g: GgufFile, t: GgufTensorInfo, shape: number[], path: string): SourceTensor {
  if (!IMPORTABLE.has(t.type)) {
    throw new GgufError(
      'GGUF_UNSUPPORTED_TENSOR_TYPE',
      `${t.name} is ${GGML_TYPES[t.type][0]}; ie imports F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, IQ4_NL and MXFP4 without loss (requantize the GGUF to one of those)`,
      { file: path, field: t.name },
    );
  }
  const at = g.dataOffset + t.offset;
  const read = () => f.read(at, t.bytes);
  const float: Record<number, Dtype> = { 0: 'f32', 1: 'f16', 30: 'bf16' };
  if (float[t.type]) return { name: t.name, dtype: float[t.type], shape, quant: null, read };
  if (BLOCK_TYPE[t.type]) {
    if (shape.length !== 2 && shape.length !== 3)
      throw new GgufError('GGUF_BAD_TENSOR_INFO', `${t.name} is ${GGML_TYPES[t.type][0]} but neither 2-D nor 3-D (stacked experts)`, {
        file: path,
        field: t.name,
      });
    if (BLOCK_TYPE[t.type] !== 'mxfp4') return { name: t.name, dtype: BLOCK_TYPE[t.type], shape, quant: null, read };
    return {
      name: t.name,
      dtype: 'mxfp4',
      shape,
      quant: null,
      read: async () => {
        const b = await read();
        const nan = mxfp4NanBlock(b);
        if (nan >= 0)
          throw new GgufError('GGUF_BAD_TENSOR_DATA', `${t.name}: block ${nan} has scale 255 (E8M0 NaN); MXFP4 scales must be 0..254`, {
            file: path,
            field: t.name,
          });
        return b;
      },
    };
  }
  if (shape.length !== 2) throw new GgufError('GGUF_BAD_TENSOR_INFO', `${t.name} is quantized but not 2-D`, { file: path, field: t.name });
  const q4 = t.type === 2;
  const quant: QuantParams = { scheme: 'symmetric', granularity: 'per_group', group_size: 32, scale_dtype: 'f16' };
  return {
    name: t.name,
    dtype: q4 ? 'q4' : 'i8',
    shape,
    quant,
    read: async () => splitBlocks(await read(), q4 ? 16 : 32),
  };
}

/** ggml blocks {f16 d; payload[n]} → IEBIN planes: all payloads, pad to 64, all scales. */
export function splitBlocks(blocks: Uint8Array, payload: number): Uint8Array {
  const bs = payload + 2;
  const n = blocks.length / bs;
  const qBytes = n * payload;
  const sOff = Math.ceil(qBytes / 64) * 64;
  const out = new Uint8Array(sOff + n * 2);
  for (let i = 0; i < n; i++) {
    const b = i * bs;
    out[sOff + 2 * i] = blocks[b];
    out[sOff + 2 * i + 1] = blocks[b + 1];
    out.set(blocks.subarray(b + 2, b + bs), i * payload);
  }
  return out;
}
