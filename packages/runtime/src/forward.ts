/**
 * The llama forward pass as one kernels program over fixed buffers: embeddings, RMSNorm, q/k/v
 * projections (+ Qwen2 biases), RoPE from precomputed tables (both layouts, Llama 3 scaling),
 * the KV cache, grouped-query attention (sliding window for Mistral), the output projection,
 * the SwiGLU FFN, residual adds, the final norm and the classifier. The same program runs a
 * prefill chunk (up to `maxBatch` tokens, GEMM) and a decode step (one token, GEMV), and a step
 * of several sequences at once: the KV cache is an arena of `slots` slots, and params carry the
 * row count, the token ids, a (slot, position) per row and the rows whose logits are wanted.
 */
import type { ModelConfig } from '@ie/format';
import { type KernelContext, type Program, type ProgramOp, type View, type WeightMatrix, attentionMaxPositions } from '@ie/kernels';
import { totalmem } from 'node:os';
import { IeRuntimeError, InvalidOptionError, StepError } from './errors.js';
import type { ModelWeights } from './weights.js';

export type KvCacheType = 'f32' | 'f16';
/** How activations meet int8/int4 matrices: FP32 (fused dequantization) or int8 (quantized per 32, integer dot products). */
export type MatmulActivations = 'f32' | 'int8';

export interface ForwardOptions {
  /** Positions per KV slot. */
  contextLength: number;
  kvCache: KvCacheType;
  /** Largest number of rows (tokens of all sequences) in one step. */
  maxBatch: number;
  /** KV slots: sequences the arena holds at once. Default 1. */
  slots?: number;
  activations: MatmulActivations;
  /**
   * How activations meet the MoE experts (default 'f32'): gpt-oss defines its MXFP4 products on
   * unquantized activations, so the int8 path there is taken only when asked for explicitly.
   */
  expertActivations?: MatmulActivations;
  /**
   * Calibration mode (ie quantize): logits for every row of a chunk, not just the last, and
   * when `capture` is set, copies of every projection's input (and the classifier's) per row.
   */
  calibration?: { capture: boolean };
  /**
   * Logit rows a step may give beyond one per slot: the rows of a scored prompt chunk (StepRows
   * `logits: 'all'`). Default: as many as SCORE_LOGITS_BYTES holds (at least 1, at most maxBatch).
   */
  scoreRows?: number;
}

/**
 * The extra logits buffer for scored prompts (16 MiB: 131 rows of a 32,000-token vocabulary, 20 of
 * gpt-oss's 201,088). Its pages are untouched, so not resident, until a prompt is scored.
 */
export const SCORE_LOGITS_BYTES = 16 * 2 ** 20;

/** Where a projection's input is captured in calibration mode; each site feeds the matrices `captureConsumers` names. */
export type CaptureSite = 'attn_in' | 'attn_out_in' | 'ffn_in' | 'ffn_down_in' | 'classifier_in';

/**
 * Which matrices read each block's capture site, by name within block N. The forward pass binds
 * those projections through this table, so the matrices quantize judges against a site's rows are
 * the ones that run on them.
 */
export const CAPTURE_CONSUMERS: Readonly<Record<Exclude<CaptureSite, 'classifier_in'>, readonly string[]>> = {
  attn_in: ['attn_q.weight', 'attn_k.weight', 'attn_v.weight'],
  attn_out_in: ['attn_output.weight'],
  ffn_in: ['ffn_gate.weight', 'ffn_up.weight'],
  ffn_down_in: ['ffn_down.weight'],
};

/** The classifier matrix: the embedding when the model ties them. */
export function classifierName(c: ModelConfig): string {
  return c.tied_classifier ? 'token_embd.weight' : 'output.weight';
}

/** The full names of the matrices that read `site` of block `layer` (the classifier's site: layer -1). */
export function captureConsumers(c: ModelConfig, site: CaptureSite, layer: number): string[] {
  if (site === 'classifier_in') return [classifierName(c)];
  return CAPTURE_CONSUMERS[site].map((name) => `blk.${layer}.${name}`);
}

export interface Capture {
  /** -1 for the classifier's input. */
  layer: number;
  site: CaptureSite;
  width: number;
  /** maxBatch x width rows, valid for the rows of the last run. */
  data: Float32Array;
}

/**
 * RoPE's per-pair frequencies, with Llama 3 scaling or YaRN's (gpt-oss): YaRN blends interpolated
 * (freq / factor) and original frequencies across the correction range [low, high] of pair
 * indices (not rounded unless `truncate`) and scales cos/sin by the attention "concentration"
 * 0.1 ln(factor) + 1.
 */
export function ropeFrequencies(c: ModelConfig): { freqs: Float64Array; concentration: number } {
  const half = c.head_dim / 2;
  const freqs = new Float64Array(half);
  for (let i = 0; i < half; i++) freqs[i] = c.rope_theta ** (-(2 * i) / c.head_dim);
  // Llama 3.1 GGUF files carry their scaling as one divisor per frequency.
  if (c.rope_freq_factors) for (let i = 0; i < half; i++) freqs[i] /= c.rope_freq_factors[i];
  const rs = c.rope_scaling;
  if (rs?.type === 'llama3') {
    const lowWavelen = rs.original_context_length / rs.low_freq_factor;
    const highWavelen = rs.original_context_length / rs.high_freq_factor;
    for (let i = 0; i < half; i++) {
      const f = freqs[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) freqs[i] = f / rs.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (rs.original_context_length / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
        freqs[i] = (1 - smooth) * (f / rs.factor) + smooth * f;
      }
    }
  }
  if (rs?.type === 'yarn' && rs.factor > 1) {
    const range = (beta: number) => (half * Math.log(rs.original_context_length / (beta * 2 * Math.PI))) / Math.log(c.rope_theta);
    const low = rs.truncate ? Math.floor(range(rs.beta_fast)) : range(rs.beta_fast);
    const high = rs.truncate ? Math.ceil(range(rs.beta_slow)) : range(rs.beta_slow);
    for (let i = 0; i < half; i++) {
      const ramp = Math.min(1, Math.max(0, (i - low) / (high === low ? 0.001 : high - low)));
      freqs[i] = (freqs[i] / rs.factor) * ramp + freqs[i] * (1 - ramp);
    }
    return { freqs, concentration: 0.1 * Math.log(rs.factor) + 1 };
  }
  return { freqs, concentration: 1 };
}

/** RoPE angles for every position: cos and sin of pos * freq_i in float64 (times YaRN's concentration). */
export function ropeTables(c: ModelConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const half = c.head_dim / 2;
  const { freqs, concentration } = ropeFrequencies(c);
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(p * freqs[i]) * concentration;
      sin[p * half + i] = Math.sin(p * freqs[i]) * concentration;
    }
  return { cos, sin };
}

/** One sequence's rows of a step: `tokens` at positions pos.. of KV slot `slot`. */
export interface StepRows {
  slot: number;
  pos: number;
  tokens: readonly number[];
  /**
   * Whether the logits after its last token are wanted, or after every one of its tokens (`all`:
   * a prompt scored, each row's logits predicting the next token); the step's logit rows, in entry order.
   */
  logits: boolean | 'all';
}

// Params: the row count, the logit-row count, then per row a token id, the rows the hidden-state
// copy takes (1, or all of an embedding step), per row a (slot, position) pair,
// per logit row the step row it reads and its argmax.
export const PARAM_ROWS = 0;
export const PARAM_LOGIT_ROWS = 1;
export const PARAM_IDS = 2;

/** Every op of a step runs over the step's rows. */
const M = { mSlot: PARAM_ROWS } as const;
const rows = (b: number, width: number): View => [b, 0, width];
const shared = (b: number): View => [b, 0, 0];

/** The op that copies a capture site's rows into the capture's own buffer (a tap). */
function captureOp(from: number, to: number, width: number): ProgramOp {
  return { op: 'tap', x: rows(from, width), out: rows(to, width), n: width, ...M };
}

/** The activation buffers every layer reuses (indices into the program's buffers). */
interface Scratch {
  x: number;
  h: number;
  qb: number;
  kb: number;
  vb: number;
  att: number;
  ob: number;
  gate: number;
  up: number;
  act: number;
  cos: number;
  sin: number;
  /** MoE: router logits and the op's scratch rows (gathered inputs, gate/up outputs, expert outputs). */
  routerOut: number;
  moe: { x: View; gate: View; up: View; y: View } | null;
}

/** Layer l's attention window (0: it attends to every position). gpt-oss alternates sliding and full layers; Mistral slides on all. */
export function layerWindow(c: ModelConfig, l: number): number {
  return c.sliding_window !== null && (c.sliding_layers?.[l] ?? true) ? c.sliding_window : 0;
}

/**
 * KV cache rows per slot of layer l: every position (T), or for a sliding layer a ring of window +
 * B - 1 rows when that is fewer (a chunk of B rows never overwrites what its first row still sees).
 */
export function kvRows(c: ModelConfig, l: number, g: { B: number; T: number }): number {
  const w = layerWindow(c, l);
  return w > 0 ? Math.min(g.T, w + g.B - 1) : g.T;
}

/** A forward program under construction: its buffers, the step's geometry and what every block's ops share. */
class ProgramBuilder {
  readonly buffers: Array<Float32Array | Uint16Array> = [];
  readonly captures: Capture[] = [];
  /** Widths of the query rows and of the key/value rows. */
  readonly q: number;
  readonly kv: number;
  /** Where RoPE, the KV store and attention find each row's (slot, position). */
  readonly place: { seqSlot: number };
  readonly scratch: Scratch;

  constructor(
    readonly c: ModelConfig,
    private readonly weights: ModelWeights,
    readonly options: ForwardOptions,
    /** Rows per step, positions per slot, slots. */
    readonly geometry: { B: number; T: number; S: number; seqSlot: number },
  ) {
    this.q = c.n_heads * c.head_dim;
    this.kv = c.n_kv_heads * c.head_dim;
    this.place = { seqSlot: geometry.seqSlot };
    this.scratch = this.allocateScratch();
  }

  private allocateScratch(): Scratch {
    const { c, q, kv } = this;
    const { B, T } = this.geometry;
    const f32 = (n: number) => this.buf(new Float32Array(n));
    const tables = ropeTables(c, T);
    const moe = c.moe;
    return {
      x: f32(B * c.dim),
      h: f32(B * c.dim),
      qb: f32(B * q),
      kb: f32(B * kv),
      vb: f32(B * kv),
      att: f32(B * q),
      ob: f32(B * c.dim),
      gate: f32(B * c.ffn_dim),
      up: f32(B * c.ffn_dim),
      act: f32(B * c.ffn_dim),
      cos: this.buf(tables.cos),
      sin: this.buf(tables.sin),
      routerOut: moe ? f32(B * moe.n_experts) : -1,
      moe: moe
        ? {
            x: rows(f32(B * c.dim), c.dim),
            gate: rows(f32(B * c.ffn_dim), c.ffn_dim),
            up: rows(f32(B * c.ffn_dim), c.ffn_dim),
            y: rows(f32(B * c.dim), c.dim),
          }
        : null,
    };
  }

  buf(a: Float32Array | Uint16Array): number {
    return this.buffers.push(a) - 1;
  }

  /** A KV cache for layer l: every slot's rows (see kvRows). */
  kvCache(l: number): number {
    const n = this.geometry.S * kvRows(this.c, l, this.geometry) * this.kv;
    try {
      return this.buf(this.options.kvCache === 'f16' ? new Uint16Array(n) : new Float32Array(n));
    } catch (e) {
      // Past the largest typed array, or an allocation the OS refuses.
      if (!(e instanceof RangeError)) throw e;
      const { S, T } = this.geometry;
      throw new IeRuntimeError('IE_KV_CACHE_TOO_LARGE', `${kvCacheAdvice(S, T)} (layer ${l}'s cache of ${n} values: ${e.message})`, {
        cause: e,
      });
    }
  }

  vec(name: string): number {
    const v = this.weights.vectors.get(name);
    if (!v) throw new Error(`missing vector ${name}`);
    return this.buf(v);
  }

  mat(name: string): WeightMatrix {
    const m = this.weights.matrices.get(name);
    if (!m) throw new Error(`missing matrix ${name}`);
    return m;
  }

  experts(name: string): WeightMatrix[] {
    const m = this.weights.experts.get(name);
    if (!m) throw new Error(`missing experts ${name}`);
    return m;
  }

  /** The matrices that read a capture site, in the table's order. */
  consumers(site: CaptureSite, layer: number): WeightMatrix[] {
    return captureConsumers(this.c, site, layer).map((name) => this.mat(name));
  }

  // Float matrices ignore the int8 mode (the kernels run them with FP32 activations).
  matmul(matrix: WeightMatrix, x: View, out: View): ProgramOp {
    return { op: 'matmul', matrix, x, out, activations: this.options.activations, ...M };
  }

  rmsnorm(weight: string): ProgramOp {
    const { c, scratch: s } = this;
    return { op: 'rmsnorm', x: rows(s.x, c.dim), weight: shared(this.vec(weight)), out: rows(s.h, c.dim), n: c.dim, eps: c.norm_eps, ...M };
  }

  /** Calibration with capture: a copy of `width`-wide rows of buffer `from`, kept in `captures`. */
  capture(layer: number, site: CaptureSite, from: number, width: number): ProgramOp[] {
    if (!this.options.calibration?.capture) return [];
    const data = new Float32Array(this.geometry.B * width);
    this.captures.push({ layer, site, width, data });
    return [captureOp(from, this.buf(data), width)];
  }
}

/** Block l up to q/k/v: the attention norm, its capture, the three projections and Qwen2's biases. */
function qkvOps(b: ProgramBuilder, l: number): ProgramOp[] {
  const { c, q, kv, scratch: s } = b;
  const p = `blk.${l}.`;
  const [wq, wk, wv] = b.consumers('attn_in', l);
  const ops: ProgramOp[] = [
    b.rmsnorm(`${p}attn_norm.weight`),
    ...b.capture(l, 'attn_in', s.h, c.dim),
    b.matmul(wq, rows(s.h, c.dim), rows(s.qb, q)),
    b.matmul(wk, rows(s.h, c.dim), rows(s.kb, kv)),
    b.matmul(wv, rows(s.h, c.dim), rows(s.vb, kv)),
  ];
  if (c.attn_qkv_bias) {
    ops.push(
      { op: 'add', a: rows(s.qb, q), b: shared(b.vec(`${p}attn_q.bias`)), out: rows(s.qb, q), n: q, ...M },
      { op: 'add', a: rows(s.kb, kv), b: shared(b.vec(`${p}attn_k.bias`)), out: rows(s.kb, kv), n: kv, ...M },
      { op: 'add', a: rows(s.vb, kv), b: shared(b.vec(`${p}attn_v.bias`)), out: rows(s.vb, kv), n: kv, ...M },
    );
  }
  return ops;
}

/** Block l from q/k/v on: RoPE, the KV store, attention, its capture, the output projection and the residual add. */
function attentionOps(b: ProgramBuilder, l: number, kc: number, vc: number): ProgramOp[] {
  const { c, q, kv, place, scratch: s } = b;
  const { T, S } = b.geometry;
  const capacity = kvRows(c, l, b.geometry);
  const kvType = b.options.kvCache;
  const p = `blk.${l}.`;
  const rope = (x: number, width: number, heads: number): ProgramOp => ({
    op: 'rope',
    x: rows(x, width),
    cos: shared(s.cos),
    sin: shared(s.sin),
    heads,
    headDim: c.head_dim,
    style: c.rope_style,
    capacity: T,
    ...place,
    ...M,
  });
  const [wo] = b.consumers('attn_out_in', l);
  const ops: ProgramOp[] = [
    rope(s.qb, q, c.n_heads),
    rope(s.kb, kv, c.n_kv_heads),
    { op: 'store', x: rows(s.kb, kv), cache: rows(kc, kv), n: kv, kvType, capacity, positions: T, slots: S, ...place, ...M },
    { op: 'store', x: rows(s.vb, kv), cache: rows(vc, kv), n: kv, kvType, capacity, positions: T, slots: S, ...place, ...M },
    {
      op: 'attention',
      q: rows(s.qb, q),
      k: rows(kc, kv),
      v: rows(vc, kv),
      out: rows(s.att, q),
      heads: c.n_heads,
      kvHeads: c.n_kv_heads,
      headDim: c.head_dim,
      kvType,
      capacity,
      positions: T,
      slots: S,
      ...place,
      window: layerWindow(c, l),
      sinks: c.attn_sinks ? shared(b.vec(`${p}attn_sinks.weight`)) : undefined,
      ...M,
    },
    ...b.capture(l, 'attn_out_in', s.att, q),
    b.matmul(wo, rows(s.att, q), rows(s.ob, c.dim)),
  ];
  if (c.attn_output_bias)
    ops.push({ op: 'add', a: rows(s.ob, c.dim), b: shared(b.vec(`${p}attn_output.bias`)), out: rows(s.ob, c.dim), n: c.dim, ...M });
  ops.push({ op: 'add', a: rows(s.x, c.dim), b: rows(s.ob, c.dim), out: rows(s.x, c.dim), n: c.dim, ...M });
  return ops;
}

/** Block l's SwiGLU FFN, its two captures and the residual add. */
function ffnOps(b: ProgramBuilder, l: number): ProgramOp[] {
  const { c, scratch: s } = b;
  const [wGate, wUp] = b.consumers('ffn_in', l);
  const [wDown] = b.consumers('ffn_down_in', l);
  return [
    ...b.capture(l, 'ffn_in', s.h, c.dim),
    b.matmul(wGate, rows(s.h, c.dim), rows(s.gate, c.ffn_dim)),
    b.matmul(wUp, rows(s.h, c.dim), rows(s.up, c.ffn_dim)),
    { op: 'swiglu', gate: rows(s.gate, c.ffn_dim), up: rows(s.up, c.ffn_dim), out: rows(s.act, c.ffn_dim), n: c.ffn_dim, ...M },
    ...b.capture(l, 'ffn_down_in', s.act, c.ffn_dim),
    b.matmul(wDown, rows(s.act, c.ffn_dim), rows(s.ob, c.dim)),
    { op: 'add', a: rows(s.x, c.dim), b: rows(s.ob, c.dim), out: rows(s.x, c.dim), n: c.dim, ...M },
  ];
}

/** Block l's mixture-of-experts FFN (gpt-oss): the router and the moe op, which adds into the residual itself. */
function moeOps(b: ProgramBuilder, l: number): ProgramOp[] {
  const { c, scratch: s } = b;
  const moe = c.moe;
  if (!moe || !s.moe) throw new Error('moeOps needs a mixture-of-experts model');
  const p = `blk.${l}.`;
  const E = moe.n_experts;
  return [
    b.matmul(b.mat(`${p}ffn_gate_inp.weight`), rows(s.h, c.dim), rows(s.routerOut, E)),
    { op: 'add', a: rows(s.routerOut, E), b: shared(b.vec(`${p}ffn_gate_inp.bias`)), out: rows(s.routerOut, E), n: E, ...M },
    {
      op: 'moe',
      x: rows(s.h, c.dim),
      router: rows(s.routerOut, E),
      out: rows(s.x, c.dim),
      gate: b.experts(`${p}ffn_gate_exps.weight`),
      up: b.experts(`${p}ffn_up_exps.weight`),
      down: b.experts(`${p}ffn_down_exps.weight`),
      gateBias: rows(b.vec(`${p}ffn_gate_exps.bias`), c.ffn_dim),
      upBias: rows(b.vec(`${p}ffn_up_exps.bias`), c.ffn_dim),
      downBias: rows(b.vec(`${p}ffn_down_exps.bias`), c.dim),
      topK: moe.experts_per_token,
      limit: moe.swiglu_limit,
      alpha: 1.702,
      activations: b.options.expertActivations ?? 'f32',
      scratch: s.moe,
      ...M,
    },
  ];
}

/** Where the classifier's ops write: the forward's logits and hidden buffers and their param slots. */
interface ClassifierOut {
  logits: Float32Array;
  hidden: Float32Array;
  logitRows: number;
  hiddenAt: number;
  pickAt: number;
  argmaxAt: number;
}

const GIB = 2 ** 30;

function kvCacheAdvice(slots: number, positions: number): string {
  return `the KV cache of ${slots} sequence${slots === 1 ? '' : 's'} x ${positions} positions cannot be allocated: lower contextLength (--context, IE_CONTEXT) or sequences (ie serve --parallel), or store it as f16 (kvCache, --kv-cache f16, IE_KV_CACHE)`;
}

/**
 * Refuses a context longer than the attention kernels can score in their per-thread scratch
 * (compile() would refuse it with a bare KERNELS_BAD_ARGUMENT), naming the longest that fits.
 */
function checkAttentionFits(c: ModelConfig, positions: number, queries: number): void {
  const windows = new Set(Array.from({ length: c.n_layers }, (_, l) => layerWindow(c, l)));
  const most = Math.min(
    ...[...windows].map((window) =>
      attentionMaxPositions({ heads: c.n_heads, kvHeads: c.n_kv_heads, headDim: c.head_dim, window, queries }),
    ),
  );
  if (positions > most)
    throw new InvalidOptionError(
      'contextLength',
      `${positions} positions are more than this model's attention can score (at most ${most} with ${queries}-row steps: its scratch is capped at 1 GiB a thread); lower contextLength (--context, IE_CONTEXT)`,
    );
}

/**
 * Refuses a KV cache larger than the machine's memory before any of it is allocated: the
 * typed arrays would be granted lazily and the process killed once a long context filled them.
 */
function checkKvCacheFits(bytes: number, kvCache: KvCacheType, slots: number, positions: number): void {
  // A container's memory limit where one is set (os.totalmem() gives the host's).
  const limit = process.constrainedMemory?.() ?? 0;
  const total = limit > 0 ? Math.min(limit, totalmem()) : totalmem();
  if (bytes <= total) return;
  const half = kvCache === 'f32' ? ` (${(bytes / 2 / GIB).toFixed(1)} GiB as f16)` : '';
  throw new IeRuntimeError(
    'IE_KV_CACHE_TOO_LARGE',
    `${kvCacheAdvice(slots, positions)}: it needs ${(bytes / GIB).toFixed(1)} GiB${half}, this machine has ${(total / GIB).toFixed(1)} GiB`,
  );
}

/** The final norm, its capture, the hidden-state copy, and the classifier over the rows whose logits are wanted. */
function classifierOps(b: ProgramBuilder, o: ClassifierOut): ProgramOp[] {
  const { c, scratch: s } = b;
  const [classifier] = b.consumers('classifier_in', -1);
  const picked = b.buf(new Float32Array(o.logitRows * c.dim));
  const logits = b.buf(o.logits);
  return [
    b.rmsnorm('output_norm.weight'),
    ...b.capture(-1, 'classifier_in', s.h, c.dim),
    // The hidden state copy (embeddings): params[hiddenAt] rows, one unless a step asks for all.
    { op: 'tap', x: rows(s.h, c.dim), out: rows(b.buf(o.hidden), c.dim), n: c.dim, mSlot: o.hiddenAt },
    // Only the rows whose logits are wanted go through the classifier (calibration wants them all).
    ...[
      { op: 'gather', x: rows(s.h, c.dim), out: rows(picked, c.dim), n: c.dim, rowsSlot: o.pickAt } as const,
      b.matmul(classifier, rows(picked, c.dim), rows(logits, c.vocab_size)),
      { op: 'argmax', x: rows(logits, c.vocab_size), n: c.vocab_size, outSlot: o.argmaxAt } as const,
    ].map((op): ProgramOp => ({ ...op, mSlot: PARAM_LOGIT_ROWS, maxRows: o.logitRows })),
  ];
}

export class Forward {
  readonly program: Program;
  readonly params: Int32Array;
  /** Logits of the last step, one row of vocab_size per logit row (calibration: one per row). */
  readonly logits: Float32Array;
  readonly kvCacheBytes: number;
  /**
   * How many of its last positions a sequence may drop and still extend what is left: B with a
   * ring KV cache (sliding layers), unbounded without. Dropping more means running from position 0.
   */
  readonly ringSlack: number;
  /** KV slots of the arena. */
  readonly slots: number;
  /** Rows the logits buffer holds: the most logit rows one step may give. */
  readonly logitRows: number;
  private readonly seqAt: number;
  private readonly pickAt: number;
  private readonly argmaxAt: number;
  /** Calibration mode with capture: the projection inputs of the last run. */
  readonly captures: Capture[];
  /**
   * The final RMSNorm's output (the classifier's input), maxRows x dim: every row of a step run
   * with `hidden` (embeddings), else only row 0 (the copy is one row then).
   */
  readonly hidden: Float32Array;
  private readonly hiddenAt: number;
  /** Each layer's KV caches (slot s, position p at row s * capacity + p % capacity) and the width of a row. */
  private readonly kvLayers: Array<{ k: Float32Array | Uint16Array; v: Float32Array | Uint16Array; capacity: number }> = [];
  private kvWidth = 0;

  constructor(
    ctx: KernelContext,
    readonly config: ModelConfig,
    weights: ModelWeights,
    readonly options: ForwardOptions,
  ) {
    const c = config;
    const S = options.slots ?? 1;
    const B = Math.max(options.maxBatch, S);
    const T = options.contextLength;
    this.slots = S;
    // A step needs one logit row per sequence, and the rows of the prompt chunks it scores
    // (calibration: every row).
    const scoreRows = options.scoreRows ?? Math.max(1, Math.min(options.maxBatch, Math.floor(SCORE_LOGITS_BYTES / (4 * c.vocab_size))));
    this.logitRows = options.calibration ? B : Math.min(B, S + scoreRows);
    this.logits = new Float32Array(c.vocab_size * this.logitRows);
    this.hidden = new Float32Array(B * c.dim);
    // The hidden copy's row count sits after the ids (the layout from seqAt on is unchanged).
    this.hiddenAt = PARAM_IDS + B;
    this.seqAt = this.hiddenAt + 1;
    this.pickAt = this.seqAt + 2 * B;
    this.argmaxAt = this.pickAt + this.logitRows;
    this.params = new Int32Array(this.argmaxAt + this.logitRows);
    let rowsPerSlot = 0;
    let ring = false;
    for (let l = 0; l < c.n_layers; l++) {
      const rows = kvRows(c, l, { B, T });
      rowsPerSlot += rows;
      ring ||= rows < T;
    }
    this.kvCacheBytes = 2 * S * rowsPerSlot * c.n_kv_heads * c.head_dim * (options.kvCache === 'f16' ? 2 : 4);
    checkKvCacheFits(this.kvCacheBytes, options.kvCache, S, T);
    checkAttentionFits(c, T, B);
    // A ring keeps window + B - 1 rows: going back more than B positions loses keys the window needs.
    this.ringSlack = ring ? B : Number.POSITIVE_INFINITY;
    const b = new ProgramBuilder(c, weights, options, { B, T, S, seqSlot: this.seqAt });
    const ops: ProgramOp[] = [{ op: 'embed', matrix: b.mat('token_embd.weight'), out: rows(b.scratch.x, c.dim), idsSlot: PARAM_IDS, ...M }];
    for (let l = 0; l < c.n_layers; l++) {
      const [kc, vc] = [b.kvCache(l), b.kvCache(l)];
      this.kvLayers.push({ k: b.buffers[kc], v: b.buffers[vc], capacity: kvRows(c, l, { B, T }) });
      ops.push(
        ...qkvOps(b, l),
        ...attentionOps(b, l, kc, vc),
        b.rmsnorm(`blk.${l}.ffn_norm.weight`),
        ...(c.moe ? moeOps(b, l) : ffnOps(b, l)),
      );
    }
    const { logits, hidden, logitRows, hiddenAt, pickAt, argmaxAt } = this;
    ops.push(...classifierOps(b, { logits, hidden, logitRows, hiddenAt, pickAt, argmaxAt }));
    this.captures = b.captures;
    this.kvWidth = b.kv;
    this.program = ctx.compile({ buffers: b.buffers, params: this.params, maxRows: B, ops });
  }

  /**
   * Copies the keys and values of positions 0..length-1 of slot `from` into slot `to` (of a ring
   * layer, the last `capacity` of them: all it holds). Not while a step runs (Model.copyPrefix
   * takes its turn); the caller knows `from` still holds those positions (Sequence.copyFrom).
   */
  copyPrefix(from: number, to: number, length: number): void {
    for (const slot of [from, to])
      if (!Number.isSafeInteger(slot) || slot < 0 || slot >= this.slots)
        throw new StepError('IE_BAD_SLOT', `KV slot ${slot} is outside 0..${this.slots - 1}`);
    if (!Number.isSafeInteger(length) || length < 0 || length > this.options.contextLength)
      throw new StepError('IE_BAD_POSITION', `a prefix of ${length} positions does not fit the context 0..${this.options.contextLength}`);
    if (from === to) return;
    const w = this.kvWidth;
    // Positions lo..length-1 are rows p % capacity: one run, or two where a ring wraps.
    for (const { k, v, capacity } of this.kvLayers)
      for (const cache of [k, v])
        for (let p = Math.max(0, length - capacity); p < length; ) {
          const r = p % capacity;
          const n = Math.min(length - p, capacity - r);
          cache.copyWithin((to * capacity + r) * w, (from * capacity + r) * w, (from * capacity + r + n) * w);
          p += n;
        }
  }

  /** Rows one step may carry (tokens of all its sequences). */
  get maxRows(): number {
    return Math.max(this.options.maxBatch, this.slots);
  }

  /**
   * Writes a step's params, checking every index first (the kernels check again): slots in
   * 0..slots-1, each at most once, positions inside the context, token ids inside the
   * vocabulary, rows and logit rows within the buffers. Returns the logit rows' count.
   */
  private prepare(entries: readonly StepRows[], hidden = false): number {
    const c = this.config;
    const T = this.options.contextLength;
    const cal = !!this.options.calibration;
    const p = this.params;
    const seen = new Set<number>();
    let row = 0;
    let picks = 0;
    const pick = (r: number) => {
      if (picks >= this.logitRows) throw new StepError('IE_BAD_STEP', `the step wants more than ${this.logitRows} logit rows`);
      p[this.pickAt + picks++] = r;
    };
    if (entries.length === 0) throw new StepError('IE_BAD_STEP', 'a step needs at least one sequence');
    for (const e of entries) {
      if (!Number.isSafeInteger(e.slot) || e.slot < 0 || e.slot >= this.slots)
        throw new StepError('IE_BAD_SLOT', `KV slot ${e.slot} is outside 0..${this.slots - 1}`);
      if (seen.has(e.slot)) throw new StepError('IE_BAD_STEP', `KV slot ${e.slot} appears twice in one step`);
      seen.add(e.slot);
      const n = e.tokens.length;
      if (n < 1) throw new StepError('IE_BAD_STEP', `slot ${e.slot}: a step's entry needs at least one token`);
      if (!Number.isSafeInteger(e.pos) || e.pos < 0 || e.pos + n > T)
        throw new StepError('IE_BAD_POSITION', `slot ${e.slot}: positions ${e.pos}..${e.pos + n - 1} are outside the context 0..${T - 1}`);
      if (row + n > this.maxRows) throw new StepError('IE_BAD_STEP', `the step has more than ${this.maxRows} rows`);
      for (let i = 0; i < n; i++, row++) {
        const id = e.tokens[i];
        if (!Number.isSafeInteger(id) || id < 0 || id >= c.vocab_size)
          throw new StepError('IE_BAD_STEP', `token id ${id} is outside 0..${c.vocab_size - 1}`);
        p[PARAM_IDS + row] = id;
        p[this.seqAt + 2 * row] = e.slot;
        p[this.seqAt + 2 * row + 1] = e.pos + i;
        if (cal || e.logits === 'all') pick(row);
      }
      if (!cal && e.logits === true) pick(row - 1);
    }
    // A step without wanted logits still computes one row's (the kernels run at least one).
    if (picks === 0) p[this.pickAt + picks++] = row - 1;
    p[PARAM_ROWS] = row;
    p[PARAM_LOGIT_ROWS] = picks;
    p[this.hiddenAt] = hidden ? row : 1;
    return picks;
  }

  /** Runs one step of one or more sequences on a worker thread; logits row j is the j-th wanted row's. */
  async step(entries: readonly StepRows[], options: { hidden?: boolean } = {}): Promise<void> {
    this.prepare(entries, options.hidden);
    await this.program.runAsync();
  }

  /** Runs `tokens` at positions pos.. of KV slot `slot` on a worker thread; logits row 0 holds the last one's. */
  async run(tokens: readonly number[], pos: number, slot = 0): Promise<void> {
    await this.step([{ slot, pos, tokens, logits: true }]);
  }

  /** The same on the calling thread (benchmarks, tools). */
  runSync(tokens: readonly number[], pos: number, slot = 0): void {
    this.prepare([{ slot, pos, tokens, logits: true }]);
    this.program.run();
  }

  /** Logit row j of the last step. */
  logitsRow(j: number): Float32Array {
    const V = this.config.vocab_size;
    return this.logits.subarray(j * V, (j + 1) * V);
  }

  /** The argmax of logit row j of the last step. */
  argmaxOf(j: number): number {
    return this.params[this.argmaxAt + j];
  }

  /** The argmax of the last step's first logit row (a single sequence's). */
  get argmax(): number {
    return this.argmaxOf(0);
  }
}
