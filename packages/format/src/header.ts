/**
 * model.ie.json: its types and its validation. Everything here is checked before any
 * byte of model.ie.bin is trusted; sizes and ranges use BigInt so that no hostile value
 * can overflow, and every failure is an IebinError naming the file and the field.
 */
import { createHash } from 'node:crypto';
import { IebinError, type FormatErrorCode } from './errors.js';
import {
  DTYPES,
  GROUP_SIZES,
  IEBIN_ALIGNMENT,
  IEBIN_FORMAT_NAME,
  IEBIN_VERSION,
  MAX_RANK,
  SCALE_DTYPES,
  alignUp,
  isFloatDtype,
  matrixDims,
  quantGeometry,
  tensorByteSize,
  type Dtype,
  type QuantSpec,
  type TensorLayout,
} from './layout.js';
import { BLOCK_FORMATS, isBlockDtype, type BlockDtype } from './blocks.js';
import { ARCHITECTURES, ROPE_STYLES, configProblems, expectedTensors, type ModelConfig } from './llama.js';
import { chatTemplateProblem, specialTokenProblem, type ChatTemplateSpec } from './chat-template.js';
import { jsonErrorPosition } from './file.js';

export interface TensorEntry {
  /** Canonical name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  dtype: Dtype;
  /** Logical shape, outermost first ([N, K] for a matrix that maps K inputs to N outputs), whatever the layout. */
  shape: number[];
  /** Byte offset in model.ie.bin, a multiple of 64. */
  offset: number;
  /** Byte size, exactly what dtype, shape and quant imply. */
  bytes: number;
  layout: TensorLayout;
  quant: QuantSpec | null;
  /** CRC-32 (IEEE 802.3, zlib's) of the tensor's bytes, 8 lowercase hex digits. */
  crc32: string;
}

/** llama2.c's tokenizer.bin: pieces with scores, encoded by run.c's merge-by-score loop. */
export interface Llama2cTokenizerSpec {
  model: 'llama2c';
  pieces: string[];
  scores: number[];
  max_piece_bytes: number;
  /** Pieces that are not valid UTF-8: index → base64 of the raw bytes (the `pieces` entry is then ""). */
  raw_pieces?: Record<string, string>;
}
/** SentencePiece-style vocabulary (GGUF `tokenizer.ggml.model == "llama"`). */
export interface SpmTokenizerSpec {
  model: 'spm';
  pieces: string[];
  scores: number[];
  /** SentencePiece piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
  types: number[];
  unk_id: number;
  add_bos: boolean;
  add_eos: boolean;
  add_space_prefix: boolean;
  raw_pieces?: Record<string, string>;
}
/** Byte-level BPE with merges (GGUF `tokenizer.ggml.model == "gpt2"`). */
export interface Gpt2TokenizerSpec {
  model: 'gpt2';
  pieces: string[];
  types: number[];
  merges: string[];
  pre: string | null;
  add_bos: boolean;
  raw_pieces?: Record<string, string>;
}
/** A Hugging Face tokenizer.json stored beside model.ie.json. */
export interface HfTokenizerRef {
  model: 'hf';
  file: string;
  bytes: number;
  sha256: string;
}
export type TokenizerSpec = Llama2cTokenizerSpec | SpmTokenizerSpec | Gpt2TokenizerSpec | HfTokenizerRef;

export interface SourceFile {
  file: string;
  bytes: number;
  sha256: string;
}
export interface Provenance {
  /** Name and version of the program that wrote the file. */
  converter: string;
  source_format: 'llama2c' | 'gguf' | 'hf' | 'iebin' | 'synth';
  sources: SourceFile[];
  synth?: { preset: string; seed: number };
  notes?: string[];
}

export interface IebinHeader {
  format: 'iebin';
  version: 1;
  config: ModelConfig;
  tokenizer: TokenizerSpec;
  provenance: Provenance;
  bin: { file: string; bytes: number; alignment: number };
  tensors: TensorEntry[];
  /** Audit record of how weights were quantized (manifest hash, gate figures), or null. */
  quantization: Record<string, unknown> | null;
  /** The model's own chat template and the special-token strings it uses; absent: the model has none. */
  chat?: ChatTemplateSpec;
}

export interface IebinLimits {
  /** Largest model.ie.json accepted, in bytes. */
  maxHeaderBytes: number;
  maxTensors: number;
}
export const DEFAULT_IEBIN_LIMITS: IebinLimits = Object.freeze({ maxHeaderBytes: 64 * 1024 * 1024, maxTensors: 65536 });
/**
 * The deepest nesting of objects and arrays model.ie.json may have (the header object itself is
 * level 1; the headers ie writes nest far less). Checked before anything walks the header recursively
 * (JSON.stringify for the checksum, inspect --json): 100,000 nested objects would overflow the stack.
 */
export const MAX_HEADER_DEPTH = 64;

const NAME_RE = /^[A-Za-z0-9_.-]{1,256}$/;
const FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}$/;
const HEX8_RE = /^[0-9a-f]{8}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

/** Walks a parsed JSON value, throwing IebinError with the JSON path of what is wrong. */
class Checker {
  constructor(readonly file: string) {}
  fail(code: FormatErrorCode, field: string, message: string): never {
    throw new IebinError(code, message, { file: this.file, field });
  }
  obj(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail('IEBIN_BAD_FIELD', path, `must be an object, got ${kind(v)}`);
    return v as Record<string, unknown>;
  }
  arr(v: unknown, path: string, max: number, code: FormatErrorCode = 'IEBIN_BAD_FIELD'): unknown[] {
    if (!Array.isArray(v)) this.fail('IEBIN_BAD_FIELD', path, `must be an array, got ${kind(v)}`);
    if (v.length > max) this.fail(code, path, `has ${v.length} entries, more than the cap of ${max}`);
    return v;
  }
  str(v: unknown, path: string, re?: RegExp): string {
    if (typeof v !== 'string') this.fail('IEBIN_BAD_FIELD', path, `must be a string, got ${kind(v)}`);
    if (re && !re.test(v)) this.fail('IEBIN_BAD_FIELD', path, `has an invalid value ${JSON.stringify(v.slice(0, 80))}`);
    return v;
  }
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[], code: FormatErrorCode = 'IEBIN_BAD_FIELD'): T {
    if (typeof v !== 'string' || !allowed.includes(v as T))
      this.fail(code, path, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }
  int(v: unknown, path: string, min: number, max: number = Number.MAX_SAFE_INTEGER, code: FormatErrorCode = 'IEBIN_BAD_FIELD'): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      this.fail(code, path, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    return v;
  }
  num(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v))
      this.fail('IEBIN_BAD_FIELD', path, `must be a finite number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(v: unknown, path: string): boolean {
    if (typeof v !== 'boolean') this.fail('IEBIN_BAD_FIELD', path, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

/** The header's sections in their canonical text (one line per section and per tensor). */
function headerBody(h: IebinHeader): string[] {
  return [
    `  "format": ${JSON.stringify(h.format)},`,
    `  "version": ${h.version},`,
    `  "config": ${JSON.stringify(h.config)},`,
    `  "provenance": ${JSON.stringify(h.provenance)},`,
    `  "bin": ${JSON.stringify(h.bin)},`,
    `  "quantization": ${JSON.stringify(h.quantization)},`,
    `  "tokenizer": ${JSON.stringify(h.tokenizer)},`,
    // Only when present: headers without a template keep the canonical text (and checksum) they always had.
    ...(h.chat ? [`  "chat": ${JSON.stringify(h.chat)},`] : []),
    '  "tensors": [',
    h.tensors.map((t) => `    ${JSON.stringify(t)}`).join(',\n'),
    '  ],',
  ];
}

/** sha256 of the canonical text of a (validated) header: what `header_sha256` records. */
export function headerChecksum(h: IebinHeader): string {
  return createHash('sha256').update(headerBody(h).join('\n'), 'utf8').digest('hex');
}

/**
 * model.ie.json text: one line per section and per tensor, deterministic, ending in its own
 * checksum. A valid header is written in its canonical form (as the reader will see it, field
 * order and defaults included), so that the checksum the reader computes is the one written.
 */
export function formatHeaderJson(h: IebinHeader): string {
  let canon = h;
  try {
    canon = validateIebinHeader(JSON.parse(`{${headerBody(h).join('\n').slice(0, -1)}}`), 'model.ie.json');
  } catch {
    // Not a valid header (tests write broken ones on purpose): written as given.
  }
  return ['{', ...headerBody(canon), `  "header_sha256": ${JSON.stringify(headerChecksum(canon))}`, '}', ''].join('\n');
}

const HEADER_FIELDS = new Set([
  'format',
  'version',
  'config',
  'provenance',
  'bin',
  'quantization',
  'tokenizer',
  'chat',
  'tensors',
  'header_sha256',
]);

/**
 * Parses and validates model.ie.json text (structure and tensor table; the bin file itself is
 * checked by {@link IebinReader}), and checks `header_sha256` against the canonical text of what
 * was read: a flipped digit that still validates (a CRC, rope_theta) is caught here. Headers
 * written before the field existed have none and are read as they are.
 */
export function parseIebinHeader(text: string, file: string, limits: IebinLimits = DEFAULT_IEBIN_LIMITS): IebinHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    // Where, never what: the message must not quote the file (it may be /etc/passwd given by mistake).
    throw new IebinError('IEBIN_HEADER_NOT_JSON', `is not valid JSON (${jsonErrorPosition(e)}); re-export the model`, { file });
  }
  const header = validateIebinHeader(raw, file, limits);
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!HEADER_FIELDS.has(k))
      throw new IebinError(
        'IEBIN_UNKNOWN_FIELD',
        `has a top-level field this reader does not know (${k.length > 40 ? `${k.slice(0, 40)}…` : k}): it was edited or corrupted, or written by a newer ie`,
        { file, field: k },
      );
  }
  if (o.header_sha256 !== undefined && o.header_sha256 !== headerChecksum(header)) {
    throw new IebinError(
      'IEBIN_HEADER_CHECKSUM',
      'does not match its own checksum (header_sha256): it was edited or corrupted after export; re-export the model',
      { file, field: 'header_sha256' },
    );
  }
  return header;
}

export function validateIebinHeader(raw: unknown, file: string, limits: IebinLimits = DEFAULT_IEBIN_LIMITS): IebinHeader {
  const c = new Checker(file);
  checkDepth(c, raw);
  const h = c.obj(raw, '$');
  if (h.format !== IEBIN_FORMAT_NAME)
    c.fail('IEBIN_BAD_FORMAT_NAME', 'format', `must be "${IEBIN_FORMAT_NAME}", got ${JSON.stringify(h.format)}`);
  if (h.version !== IEBIN_VERSION)
    c.fail('IEBIN_UNSUPPORTED_VERSION', 'version', `is ${JSON.stringify(h.version)}; this reader knows version ${IEBIN_VERSION}`);
  const config = checkConfig(c, h.config);
  const tokenizer = checkTokenizer(c, h.tokenizer, config);
  const provenance = checkProvenance(c, h.provenance);
  const b = c.obj(h.bin, 'bin');
  const bin = {
    file: c.str(b.file, 'bin.file', FILE_RE),
    bytes: c.int(b.bytes, 'bin.bytes', 0),
    alignment: c.int(b.alignment, 'bin.alignment', IEBIN_ALIGNMENT, IEBIN_ALIGNMENT),
  };
  const rawTensors = c.arr(h.tensors, 'tensors', limits.maxTensors, 'IEBIN_TOO_MANY_TENSORS');
  const tensors = rawTensors.map((t, i) => checkTensor(c, t, `tensors[${i}]`));
  const quantization = h.quantization === undefined || h.quantization === null ? null : c.obj(h.quantization, 'quantization');
  const header: IebinHeader = { format: 'iebin', version: 1, config, tokenizer, provenance, bin, tensors, quantization };
  if (h.chat !== undefined) header.chat = checkChat(c, h.chat);
  checkTableGeometry(c, header);
  checkModelTensors(c, header);
  return header;
}

/**
 * No object or array nested deeper than {@link MAX_HEADER_DEPTH}, found without recursion (an
 * explicit stack); the field named is the top-level one that holds the deep value.
 */
function checkDepth(c: Checker, raw: unknown): void {
  const stack: Array<[value: object, depth: number, field: string]> = [];
  const push = (v: unknown, depth: number, field: string) => {
    if (typeof v !== 'object' || v === null) return;
    if (depth > MAX_HEADER_DEPTH)
      c.fail('IEBIN_BAD_FIELD', field, `nests objects and arrays deeper than ${MAX_HEADER_DEPTH} levels; it was edited or corrupted`);
    stack.push([v, depth, field]);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return;
  for (const [k, v] of Object.entries(raw)) push(v, 2, k.length > 40 ? `${k.slice(0, 40)}…` : k);
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [v, depth, field] = top;
    if (Array.isArray(v)) for (const x of v) push(x, depth + 1, field);
    else for (const k in v) push((v as Record<string, unknown>)[k], depth + 1, field);
  }
}

function checkConfig(c: Checker, v: unknown): ModelConfig {
  const o = c.obj(v, 'config');
  const p = (k: string) => `config.${k}`;
  const rs = o.rope_scaling;
  let rope_scaling: ModelConfig['rope_scaling'] = null;
  if (rs !== null && rs !== undefined) {
    const r = c.obj(rs, p('rope_scaling'));
    const type = c.oneOf(r.type, p('rope_scaling.type'), ['llama3', 'yarn'] as const);
    rope_scaling =
      type === 'llama3'
        ? {
            type,
            factor: c.num(r.factor, p('rope_scaling.factor')),
            low_freq_factor: c.num(r.low_freq_factor, p('rope_scaling.low_freq_factor')),
            high_freq_factor: c.num(r.high_freq_factor, p('rope_scaling.high_freq_factor')),
            original_context_length: c.int(r.original_context_length, p('rope_scaling.original_context_length'), 1),
          }
        : {
            type,
            factor: c.num(r.factor, p('rope_scaling.factor')),
            original_context_length: c.int(r.original_context_length, p('rope_scaling.original_context_length'), 1),
            beta_fast: c.num(r.beta_fast, p('rope_scaling.beta_fast')),
            beta_slow: c.num(r.beta_slow, p('rope_scaling.beta_slow')),
            truncate: c.bool(r.truncate, p('rope_scaling.truncate')),
          };
  }
  // Fields added with gpt-oss: headers written before them load with false / null.
  const absent = (v: unknown) => v === null || v === undefined;
  let sliding_layers: boolean[] | null = null;
  if (!absent(o.sliding_layers))
    sliding_layers = c.arr(o.sliding_layers, p('sliding_layers'), 1 << 16).map((x, i) => c.bool(x, p(`sliding_layers[${i}]`)));
  let moe: ModelConfig['moe'] = null;
  if (!absent(o.moe)) {
    const m = c.obj(o.moe, p('moe'));
    moe = {
      n_experts: c.int(m.n_experts, p('moe.n_experts'), 1),
      experts_per_token: c.int(m.experts_per_token, p('moe.experts_per_token'), 1),
      swiglu_limit: c.num(m.swiglu_limit, p('moe.swiglu_limit')),
    };
  }
  const config: ModelConfig = {
    architecture: c.oneOf(o.architecture, p('architecture'), ARCHITECTURES),
    dim: c.int(o.dim, p('dim'), 1),
    n_layers: c.int(o.n_layers, p('n_layers'), 1),
    n_heads: c.int(o.n_heads, p('n_heads'), 1),
    n_kv_heads: c.int(o.n_kv_heads, p('n_kv_heads'), 1),
    head_dim: c.int(o.head_dim, p('head_dim'), 1),
    ffn_dim: c.int(o.ffn_dim, p('ffn_dim'), 1),
    vocab_size: c.int(o.vocab_size, p('vocab_size'), 1),
    context_length: c.int(o.context_length, p('context_length'), 1),
    rope_theta: c.num(o.rope_theta, p('rope_theta')),
    rope_style: c.oneOf(o.rope_style, p('rope_style'), ROPE_STYLES),
    rope_scaling,
    norm_eps: c.num(o.norm_eps, p('norm_eps')),
    tied_classifier: c.bool(o.tied_classifier, p('tied_classifier')),
    attn_qkv_bias: c.bool(o.attn_qkv_bias, p('attn_qkv_bias')),
    attn_output_bias: absent(o.attn_output_bias) ? false : c.bool(o.attn_output_bias, p('attn_output_bias')),
    attn_sinks: absent(o.attn_sinks) ? false : c.bool(o.attn_sinks, p('attn_sinks')),
    sliding_window: absent(o.sliding_window) ? null : c.int(o.sliding_window, p('sliding_window'), 1),
    sliding_layers,
    moe,
    bos_id: c.int(o.bos_id, p('bos_id'), 0),
    eos_id: c.int(o.eos_id, p('eos_id'), 0),
    ...(absent(o.rope_freq_factors)
      ? {}
      : {
          rope_freq_factors: c
            .arr(o.rope_freq_factors, p('rope_freq_factors'), 1 << 15)
            .map((x, i) => c.num(x, p(`rope_freq_factors[${i}]`))),
        }),
    ...(absent(o.stop_ids) ? {} : { stop_ids: c.arr(o.stop_ids, p('stop_ids'), 64).map((x, i) => c.int(x, p(`stop_ids[${i}]`), 0)) }),
  };
  const problems = configProblems(config);
  if (problems.length) c.fail('IEBIN_BAD_CONFIG', p(problems[0][0]), problems[0][1]);
  return config;
}

function checkPieces(
  c: Checker,
  o: Record<string, unknown>,
  path: string,
  vocab: number,
): { pieces: string[]; raw_pieces?: Record<string, string> } {
  const pieces = c.arr(o.pieces, `${path}.pieces`, vocab);
  if (pieces.length !== vocab)
    c.fail('IEBIN_BAD_TOKENIZER', `${path}.pieces`, `has ${pieces.length} pieces, the config's vocab_size is ${vocab}`);
  for (let i = 0; i < pieces.length; i++)
    if (typeof pieces[i] !== 'string') c.fail('IEBIN_BAD_TOKENIZER', `${path}.pieces[${i}]`, 'must be a string');
  const out: { pieces: string[]; raw_pieces?: Record<string, string> } = { pieces: pieces as string[] };
  if (o.raw_pieces !== undefined) {
    const r = c.obj(o.raw_pieces, `${path}.raw_pieces`);
    for (const [k, v] of Object.entries(r)) {
      const idx = Number(k);
      if (!Number.isSafeInteger(idx) || idx < 0 || idx >= vocab || String(idx) !== k)
        c.fail('IEBIN_BAD_TOKENIZER', `${path}.raw_pieces`, `key ${JSON.stringify(k)} is not a token id`);
      c.str(v, `${path}.raw_pieces.${k}`, /^[A-Za-z0-9+/]*={0,2}$/);
    }
    out.raw_pieces = r as Record<string, string>;
  }
  return out;
}

function checkNumbers(c: Checker, v: unknown, path: string, n: number, integer: boolean): number[] {
  const a = c.arr(v, path, n);
  if (a.length !== n) c.fail('IEBIN_BAD_TOKENIZER', path, `has ${a.length} entries, expected ${n}`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (typeof x !== 'number' || !Number.isFinite(x) || (integer && !Number.isSafeInteger(x)))
      c.fail('IEBIN_BAD_TOKENIZER', `${path}[${i}]`, `must be a finite ${integer ? 'integer' : 'number'}`);
  }
  return a as number[];
}

function checkTokenizer(c: Checker, v: unknown, config: ModelConfig): TokenizerSpec {
  const o = c.obj(v, 'tokenizer');
  const model = c.oneOf(o.model, 'tokenizer.model', ['llama2c', 'spm', 'gpt2', 'hf'] as const, 'IEBIN_BAD_TOKENIZER');
  const vocab = config.vocab_size;
  switch (model) {
    case 'llama2c':
      return {
        model,
        ...checkPieces(c, o, 'tokenizer', vocab),
        scores: checkNumbers(c, o.scores, 'tokenizer.scores', vocab, false),
        max_piece_bytes: c.int(o.max_piece_bytes, 'tokenizer.max_piece_bytes', 1, 1 << 16),
      };
    case 'spm':
      return {
        model,
        ...checkPieces(c, o, 'tokenizer', vocab),
        scores: checkNumbers(c, o.scores, 'tokenizer.scores', vocab, false),
        types: checkNumbers(c, o.types, 'tokenizer.types', vocab, true),
        unk_id: c.int(o.unk_id, 'tokenizer.unk_id', 0, vocab - 1),
        add_bos: c.bool(o.add_bos, 'tokenizer.add_bos'),
        add_eos: c.bool(o.add_eos, 'tokenizer.add_eos'),
        add_space_prefix: c.bool(o.add_space_prefix, 'tokenizer.add_space_prefix'),
      };
    case 'gpt2': {
      const merges = c.arr(o.merges, 'tokenizer.merges', 1 << 24);
      for (let i = 0; i < merges.length; i++)
        if (typeof merges[i] !== 'string') c.fail('IEBIN_BAD_TOKENIZER', `tokenizer.merges[${i}]`, 'must be a string');
      return {
        model,
        ...checkPieces(c, o, 'tokenizer', vocab),
        types: checkNumbers(c, o.types, 'tokenizer.types', vocab, true),
        merges: merges as string[],
        pre: o.pre === null || o.pre === undefined ? null : c.str(o.pre, 'tokenizer.pre'),
        add_bos: c.bool(o.add_bos, 'tokenizer.add_bos'),
      };
    }
    case 'hf':
      return {
        model,
        file: c.str(o.file, 'tokenizer.file', FILE_RE),
        bytes: c.int(o.bytes, 'tokenizer.bytes', 0),
        sha256: c.str(o.sha256, 'tokenizer.sha256', HEX64_RE),
      };
  }
}

const CHAT_FIELDS = new Set(['template', 'bos_token', 'eos_token']);

/** `chat`: a template (bounded, no NUL) and optional special-token strings; nothing else. */
function checkChat(c: Checker, v: unknown): ChatTemplateSpec {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    c.fail('IEBIN_BAD_CHAT_TEMPLATE', 'chat', `must be an object {template, bos_token?, eos_token?}, got ${kind(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!CHAT_FIELDS.has(k))
      c.fail('IEBIN_BAD_CHAT_TEMPLATE', `chat.${k.length > 40 ? `${k.slice(0, 40)}…` : k}`, 'is not a chat field this reader knows');
  const problem = chatTemplateProblem(o.template);
  if (problem) c.fail('IEBIN_BAD_CHAT_TEMPLATE', 'chat.template', `${problem}; re-export the model`);
  const out: ChatTemplateSpec = { template: o.template as string };
  for (const k of ['bos_token', 'eos_token'] as const) {
    if (o[k] === undefined) continue;
    const p = specialTokenProblem(o[k]);
    if (p) c.fail('IEBIN_BAD_CHAT_TEMPLATE', `chat.${k}`, `${p}; re-export the model`);
    out[k] = o[k] as string;
  }
  return out;
}

function checkProvenance(c: Checker, v: unknown): Provenance {
  const o = c.obj(v, 'provenance');
  const sources = c.arr(o.sources, 'provenance.sources', 4096).map((s, i) => {
    const so = c.obj(s, `provenance.sources[${i}]`);
    return {
      file: c.str(so.file, `provenance.sources[${i}].file`),
      bytes: c.int(so.bytes, `provenance.sources[${i}].bytes`, 0),
      sha256: c.str(so.sha256, `provenance.sources[${i}].sha256`, HEX64_RE),
    };
  });
  const out: Provenance = {
    converter: c.str(o.converter, 'provenance.converter'),
    source_format: c.oneOf(o.source_format, 'provenance.source_format', ['llama2c', 'gguf', 'hf', 'iebin', 'synth'] as const),
    sources,
  };
  if (o.synth !== undefined) {
    const s = c.obj(o.synth, 'provenance.synth');
    out.synth = { preset: c.str(s.preset, 'provenance.synth.preset'), seed: c.int(s.seed, 'provenance.synth.seed', 0) };
  }
  if (o.notes !== undefined) out.notes = c.arr(o.notes, 'provenance.notes', 1024).map((n, i) => c.str(n, `provenance.notes[${i}]`));
  return out;
}

/** One entry of `tensors`: its name, dtype, shape, layout and quant record, and a byte range of the size they imply. */
function checkTensor(c: Checker, v: unknown, path: string): TensorEntry {
  const o = c.obj(v, path);
  const name = c.str(o.name, `${path}.name`, NAME_RE);
  const dtype = c.oneOf(o.dtype, `${path}.dtype`, DTYPES, 'IEBIN_BAD_DTYPE');
  const shape = checkShape(c, o.shape, `${path}.shape`);
  const lo = c.obj(o.layout, `${path}.layout`);
  const layout: TensorLayout = {
    order: c.oneOf(lo.order, `${path}.layout.order`, ['row_major', 'pretransposed'] as const, 'IEBIN_BAD_LAYOUT'),
    block_k: c.int(lo.block_k, `${path}.layout.block_k`, 0, 1 << 30, 'IEBIN_BAD_LAYOUT'),
  };
  let quant: QuantSpec | null = null;
  if (isBlockDtype(dtype)) checkBlockTensor(c, o, path, dtype, shape);
  else if (isFloatDtype(dtype)) {
    if (o.quant !== null && o.quant !== undefined) c.fail('IEBIN_BAD_QUANT', `${path}.quant`, `must be null for ${dtype}`);
  } else quant = checkQuant(c, o, path, dtype, shape);
  checkLayoutFits(c, path, dtype, shape, layout, quant);
  const offset = c.int(o.offset, `${path}.offset`, 0, Number.MAX_SAFE_INTEGER, 'IEBIN_RANGE_OUT_OF_FILE');
  if (offset % IEBIN_ALIGNMENT !== 0) c.fail('IEBIN_MISALIGNED', `${path}.offset`, `${offset} is not a multiple of ${IEBIN_ALIGNMENT}`);
  const bytes = c.int(o.bytes, `${path}.bytes`, 0, Number.MAX_SAFE_INTEGER, 'IEBIN_SIZE_MISMATCH');
  const expected = tensorByteSize(dtype, shape, quant);
  if (BigInt(bytes) !== expected)
    c.fail('IEBIN_SIZE_MISMATCH', `${path}.bytes`, `is ${bytes}, but ${dtype} ${JSON.stringify(shape)} takes ${expected} bytes`);
  const crc32 = c.str(o.crc32, `${path}.crc32`, HEX8_RE);
  return { name, dtype, shape, offset, bytes, layout, quant, crc32 };
}

/** 1..MAX_RANK dims of 1..2^40 whose product (in BigInt) stays a safe integer. */
function checkShape(c: Checker, rawShape: unknown, path: string): number[] {
  if (!Array.isArray(rawShape) || rawShape.length < 1 || rawShape.length > MAX_RANK)
    c.fail('IEBIN_BAD_SHAPE', path, `must be an array of 1..${MAX_RANK} dims`);
  const shape = rawShape.map((d, i) => c.int(d, `${path}[${i}]`, 1, 2 ** 40, 'IEBIN_BAD_SHAPE'));
  let elements = 1n;
  for (const d of shape) elements *= BigInt(d);
  if (elements > BigInt(Number.MAX_SAFE_INTEGER)) c.fail('IEBIN_BAD_SHAPE', path, 'has more elements than can be addressed');
  return shape;
}

/** ggml blocks carry their own scales: no quant record, 2-D (or 3-D [E, N, K], stacked experts), whole blocks per row. */
function checkBlockTensor(c: Checker, o: Record<string, unknown>, path: string, dtype: BlockDtype, shape: number[]): void {
  if (o.quant !== null && o.quant !== undefined)
    c.fail('IEBIN_BAD_QUANT', `${path}.quant`, `must be null for ${dtype} (its blocks hold their scales)`);
  if (shape.length !== 2 && shape.length !== 3)
    c.fail('IEBIN_BAD_SHAPE', `${path}.shape`, `${dtype} tensors must be 2-D, or 3-D for stacked experts`);
  const elems = BLOCK_FORMATS[dtype].elems;
  if (shape[shape.length - 1] % elems !== 0)
    c.fail(
      'IEBIN_BAD_SHAPE',
      `${path}.shape`,
      `a ${dtype} row is a whole number of ${elems}-element blocks; ${shape[shape.length - 1]} columns are not`,
    );
}

/** The quant record of a 2-D q4 / i8 tensor: a scheme and granularity its dtype allows, and plane offsets exactly where its geometry puts them. */
function checkQuant(c: Checker, o: Record<string, unknown>, path: string, dtype: 'i8' | 'q4', shape: number[]): QuantSpec {
  if (shape.length !== 2) c.fail('IEBIN_BAD_SHAPE', `${path}.shape`, `${dtype} tensors must be 2-D`);
  const q = c.obj(o.quant, `${path}.quant`);
  const K = shape[1];
  const scheme = c.oneOf(
    q.scheme,
    `${path}.quant.scheme`,
    dtype === 'q4' ? (['symmetric', 'affine'] as const) : (['symmetric'] as const),
    'IEBIN_BAD_QUANT',
  );
  const granularity = c.oneOf(
    q.granularity,
    `${path}.quant.granularity`,
    dtype === 'q4' ? (['per_group'] as const) : (['per_group', 'per_row'] as const),
    'IEBIN_BAD_QUANT',
  );
  const group_size =
    granularity === 'per_row'
      ? c.int(q.group_size, `${path}.quant.group_size`, K, K, 'IEBIN_BAD_QUANT')
      : c.int(q.group_size, `${path}.quant.group_size`, 1, 1 << 30, 'IEBIN_BAD_QUANT');
  if (granularity === 'per_group' && !(GROUP_SIZES as readonly number[]).includes(group_size))
    c.fail('IEBIN_BAD_QUANT', `${path}.quant.group_size`, `must be one of ${GROUP_SIZES.join(', ')}, got ${group_size}`);
  const scale_dtype = c.oneOf(q.scale_dtype, `${path}.quant.scale_dtype`, SCALE_DTYPES, 'IEBIN_BAD_QUANT');
  const g = quantGeometry(dtype, shape[0], K, { scheme, granularity, group_size, scale_dtype });
  const scales_offset = c.int(q.scales_offset, `${path}.quant.scales_offset`, 0, Number.MAX_SAFE_INTEGER, 'IEBIN_BAD_QUANT');
  if (BigInt(scales_offset) !== g.scalesOffset)
    c.fail(
      'IEBIN_BAD_QUANT',
      `${path}.quant.scales_offset`,
      `must be ${g.scalesOffset} (the quant plane rounded up to 64 bytes), got ${scales_offset}`,
    );
  let zeros_offset: number | null = null;
  if (scheme === 'affine') {
    zeros_offset = c.int(q.zeros_offset, `${path}.quant.zeros_offset`, 0, Number.MAX_SAFE_INTEGER, 'IEBIN_BAD_QUANT');
    if (BigInt(zeros_offset) !== g.zerosOffset)
      c.fail('IEBIN_BAD_QUANT', `${path}.quant.zeros_offset`, `must be ${g.zerosOffset}, got ${zeros_offset}`);
  } else if (q.zeros_offset !== null && q.zeros_offset !== undefined) {
    c.fail('IEBIN_BAD_QUANT', `${path}.quant.zeros_offset`, 'must be null for a symmetric scheme');
  }
  return { scheme, granularity, group_size, scale_dtype, scales_offset, zeros_offset };
}

/** Pretransposed is for 2-D float tensors, unblocked; blocked-K for 2-D non-block tensors, in whole 64s and whole groups. */
function checkLayoutFits(c: Checker, path: string, dtype: Dtype, shape: number[], layout: TensorLayout, quant: QuantSpec | null): void {
  if (layout.order === 'pretransposed') {
    if (!isFloatDtype(dtype) || shape.length !== 2)
      c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.order`, 'pretransposed is allowed for 2-D f32/f16/bf16 tensors only');
    if (layout.block_k !== 0) c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.block_k`, 'a pretransposed tensor cannot also be blocked');
  }
  if (layout.block_k !== 0) {
    if (isBlockDtype(dtype))
      c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.block_k`, `${dtype} tensors are stored row-major as whole ggml blocks`);
    if (shape.length !== 2) c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.block_k`, 'blocked-K needs a 2-D tensor');
    if (layout.block_k % IEBIN_ALIGNMENT !== 0)
      c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.block_k`, `must be a multiple of 64, got ${layout.block_k}`);
    if (quant && quant.granularity === 'per_group' && layout.block_k % quant.group_size !== 0)
      c.fail('IEBIN_BAD_LAYOUT', `${path}.layout.block_k`, `must be a multiple of the group size ${quant.group_size}`);
  }
}

/** Tensors in table order must tile model.ie.bin: aligned, no overlap, no gap beyond padding, ending at the file's end. */
function checkTableGeometry(c: Checker, h: IebinHeader): void {
  const seen = new Set<string>();
  let end = 0n;
  h.tensors.forEach((t, i) => {
    if (seen.has(t.name)) c.fail('IEBIN_DUPLICATE_TENSOR', `tensors[${i}].name`, `${t.name} appears twice`);
    seen.add(t.name);
    const off = BigInt(t.offset);
    const expectedOffset = alignUp(end);
    if (off < end)
      c.fail('IEBIN_OVERLAP', `tensors[${i}].offset`, `${t.name} starts at ${off}, inside the previous tensor (which ends at ${end})`);
    if (off > expectedOffset)
      c.fail(
        'IEBIN_HOLE',
        `tensors[${i}].offset`,
        `${t.name} starts at ${off}; the previous tensor ends at ${end}, so it must start at ${expectedOffset}`,
      );
    end = off + BigInt(t.bytes);
    if (end > BigInt(h.bin.bytes))
      c.fail(
        'IEBIN_RANGE_OUT_OF_FILE',
        `tensors[${i}]`,
        `${t.name} ends at byte ${end}, past the end of ${h.bin.file} (${h.bin.bytes} bytes)`,
      );
  });
  if (end !== BigInt(h.bin.bytes)) c.fail('IEBIN_HOLE', 'bin.bytes', `the last tensor ends at ${end} but bin.bytes is ${h.bin.bytes}`);
}

/** The tensor table must be exactly the model the config describes. */
function checkModelTensors(c: Checker, h: IebinHeader): void {
  const byName = new Map(h.tensors.map((t, i) => [t.name, { t, i }]));
  const expected = expectedTensors(h.config);
  for (const e of expected) {
    const got = byName.get(e.name);
    if (!got)
      c.fail(
        'IEBIN_MISSING_TENSOR',
        'tensors',
        `${e.name} is missing (the config says ${h.config.n_layers} layers${h.config.tied_classifier ? ', tied classifier' : ', separate classifier'})`,
      );
    if (got.t.shape.length !== e.shape.length || got.t.shape.some((d, k) => d !== e.shape[k])) {
      c.fail(
        'IEBIN_BAD_SHAPE',
        `tensors[${got.i}].shape`,
        `${e.name} is ${JSON.stringify(got.t.shape)}, the config implies ${JSON.stringify(e.shape)}`,
      );
    }
    if (
      e.role !== 'projection' &&
      e.role !== 'classifier' &&
      e.role !== 'embedding' &&
      e.role !== 'experts' &&
      !isFloatDtype(got.t.dtype)
    ) {
      c.fail('IEBIN_BAD_DTYPE', `tensors[${got.i}].dtype`, `${e.name} is a ${e.role} and must stay f32/f16/bf16`);
    }
    if (e.role === 'embedding' && (got.t.layout.order !== 'row_major' || got.t.layout.block_k !== 0)) {
      c.fail(
        'IEBIN_BAD_LAYOUT',
        `tensors[${got.i}].layout`,
        'the embedding table must be plain row-major (rows are looked up by token id)',
      );
    }
  }
  if (expected.length !== h.tensors.length) {
    const names = new Set(expected.map((e) => e.name));
    const i = h.tensors.findIndex((t) => !names.has(t.name));
    c.fail(
      'IEBIN_UNEXPECTED_TENSOR',
      `tensors[${i}].name`,
      `${h.tensors[i].name} is not part of a ${h.config.architecture} model with this config`,
    );
  }
}

/** Rows x cols of a 2-D tensor (tests and tools use it with quantGeometry). */
export function tensorMatrixDims(t: Pick<TensorEntry, 'shape'>): { rows: number; cols: number } {
  return matrixDims(t.shape);
}
