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
import type { KernelContext, Program, ProgramOp, View, WeightMatrix } from '@ie/kernels';
import { StepError } from './errors.js';
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
}

/** Where a projection's input is captured in calibration mode; each site feeds the listed matrices. */
export type CaptureSite = 'attn_in' | 'attn_out_in' | 'ffn_in' | 'ffn_down_in' | 'classifier_in';

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
  /** Whether the logits after its last token are wanted (the step's logit rows, in entry order). */
  logits: boolean;
}

// Params: the row count, the logit-row count, then per row a token id, the rows the hidden-state
// copy takes (1, or all of an embedding step), per row a (slot, position) pair,
// per logit row the step row it reads and its argmax.
export const PARAM_ROWS = 0;
export const PARAM_LOGIT_ROWS = 1;
export const PARAM_IDS = 2;

export class Forward {
  readonly program: Program;
  readonly params: Int32Array;
  /** Logits of the last step, one row of vocab_size per logit row (calibration: one per row). */
  readonly logits: Float32Array;
  readonly kvCacheBytes: number;
  /** KV slots of the arena. */
  readonly slots: number;
  /** Rows the logits buffer holds. */
  readonly logitRows: number;
  private readonly seqAt: number;
  private readonly pickAt: number;
  private readonly argmaxAt: number;
  /** Calibration mode with capture: the projection inputs of the last run. */
  readonly captures: Capture[] = [];
  /**
   * The final RMSNorm's output (the classifier's input), maxRows x dim: every row of a step run
   * with `hidden` (embeddings), else only row 0 (the copy is one row then).
   */
  readonly hidden: Float32Array;
  private readonly hiddenAt: number;

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
    const q = c.n_heads * c.head_dim;
    const kv = c.n_kv_heads * c.head_dim;
    const buffers: Array<Float32Array | Uint16Array> = [];
    const buf = (a: Float32Array | Uint16Array): number => buffers.push(a) - 1;
    const rows = (b: number, width: number): View => [b, 0, width];
    const shared = (b: number): View => [b, 0, 0];
    const x = buf(new Float32Array(B * c.dim));
    const h = buf(new Float32Array(B * c.dim));
    const qb = buf(new Float32Array(B * q));
    const kb = buf(new Float32Array(B * kv));
    const vb = buf(new Float32Array(B * kv));
    const att = buf(new Float32Array(B * q));
    const ob = buf(new Float32Array(B * c.dim));
    const gate = buf(new Float32Array(B * c.ffn_dim));
    const up = buf(new Float32Array(B * c.ffn_dim));
    const act = buf(new Float32Array(B * c.ffn_dim));
    const cal = options.calibration;
    // A step needs at most one logit row per sequence (calibration: every row).
    this.logitRows = cal ? B : S;
    this.logits = new Float32Array(c.vocab_size * this.logitRows);
    const logits = buf(this.logits);
    const picked = buf(new Float32Array(this.logitRows * c.dim));
    const tables = ropeTables(c, T);
    const cos = buf(tables.cos);
    const sin = buf(tables.sin);
    // The hidden copy's row count sits after the ids (the layout from seqAt on is unchanged).
    this.hiddenAt = PARAM_IDS + B;
    this.seqAt = this.hiddenAt + 1;
    this.pickAt = this.seqAt + 2 * B;
    this.argmaxAt = this.pickAt + this.logitRows;
    this.params = new Int32Array(this.argmaxAt + this.logitRows);
    const kvArray = () => (options.kvCache === 'f16' ? new Uint16Array(S * T * kv) : new Float32Array(S * T * kv));
    this.kvCacheBytes = c.n_layers * 2 * S * T * kv * (options.kvCache === 'f16' ? 2 : 4);
    const place = { seqSlot: this.seqAt };
    const vec = (name: string) => {
      const v = weights.vectors.get(name);
      if (!v) throw new Error(`missing vector ${name}`);
      return buf(v);
    };
    const mat = (name: string) => {
      const m = weights.matrices.get(name);
      if (!m) throw new Error(`missing matrix ${name}`);
      return m;
    };
    const experts = (name: string) => {
      const m = weights.experts.get(name);
      if (!m) throw new Error(`missing experts ${name}`);
      return m;
    };
    const moe = c.moe;
    // MoE: router logits and the op's scratch rows (gathered inputs, gate/up outputs, expert outputs).
    const routerOut = moe ? buf(new Float32Array(B * moe.n_experts)) : -1;
    const moeScratch = moe
      ? {
          x: rows(buf(new Float32Array(B * c.dim)), c.dim),
          gate: rows(buf(new Float32Array(B * c.ffn_dim)), c.ffn_dim),
          up: rows(buf(new Float32Array(B * c.ffn_dim)), c.ffn_dim),
          y: rows(buf(new Float32Array(B * c.dim)), c.dim),
        }
      : null;
    const M = { mSlot: PARAM_ROWS };
    const acts = options.activations;
    const style = c.rope_style;
    // Float matrices ignore the int8 mode (the kernels run them with FP32 activations).
    const matmul = (matrix: WeightMatrix, x: View, out: View): ProgramOp => ({ op: 'matmul', matrix, x, out, activations: acts, ...M });
    // A capture is `out = x + 0` into a buffer of its own (the add op with a zero row).
    const zeros = buf(new Float32Array(cal?.capture ? Math.max(c.dim, q, c.ffn_dim) : c.dim));
    this.hidden = new Float32Array(B * c.dim);
    const capture = (layer: number, site: CaptureSite, from: number, width: number): ProgramOp[] => {
      if (!cal?.capture) return [];
      const data = new Float32Array(B * width);
      this.captures.push({ layer, site, width, data });
      return [{ op: 'add', a: rows(from, width), b: shared(zeros), out: rows(buf(data), width), n: width, ...M }];
    };
    const ops: ProgramOp[] = [{ op: 'embed', matrix: mat('token_embd.weight'), out: rows(x, c.dim), idsSlot: PARAM_IDS, ...M }];
    for (let l = 0; l < c.n_layers; l++) {
      const p = `blk.${l}.`;
      const kc = buf(kvArray());
      const vc = buf(kvArray());
      ops.push(
        {
          op: 'rmsnorm',
          x: rows(x, c.dim),
          weight: shared(vec(`${p}attn_norm.weight`)),
          out: rows(h, c.dim),
          n: c.dim,
          eps: c.norm_eps,
          ...M,
        },
        ...capture(l, 'attn_in', h, c.dim),
        matmul(mat(`${p}attn_q.weight`), rows(h, c.dim), rows(qb, q)),
        matmul(mat(`${p}attn_k.weight`), rows(h, c.dim), rows(kb, kv)),
        matmul(mat(`${p}attn_v.weight`), rows(h, c.dim), rows(vb, kv)),
      );
      if (c.attn_qkv_bias) {
        ops.push(
          { op: 'add', a: rows(qb, q), b: shared(vec(`${p}attn_q.bias`)), out: rows(qb, q), n: q, ...M },
          { op: 'add', a: rows(kb, kv), b: shared(vec(`${p}attn_k.bias`)), out: rows(kb, kv), n: kv, ...M },
          { op: 'add', a: rows(vb, kv), b: shared(vec(`${p}attn_v.bias`)), out: rows(vb, kv), n: kv, ...M },
        );
      }
      ops.push(
        {
          op: 'rope',
          x: rows(qb, q),
          cos: shared(cos),
          sin: shared(sin),
          heads: c.n_heads,
          headDim: c.head_dim,
          style,
          capacity: T,
          ...place,
          ...M,
        },
        {
          op: 'rope',
          x: rows(kb, kv),
          cos: shared(cos),
          sin: shared(sin),
          heads: c.n_kv_heads,
          headDim: c.head_dim,
          style,
          capacity: T,
          ...place,
          ...M,
        },
        { op: 'store', x: rows(kb, kv), cache: rows(kc, kv), n: kv, kvType: options.kvCache, capacity: T, slots: S, ...place, ...M },
        { op: 'store', x: rows(vb, kv), cache: rows(vc, kv), n: kv, kvType: options.kvCache, capacity: T, slots: S, ...place, ...M },
        {
          op: 'attention',
          q: rows(qb, q),
          k: rows(kc, kv),
          v: rows(vc, kv),
          out: rows(att, q),
          heads: c.n_heads,
          kvHeads: c.n_kv_heads,
          headDim: c.head_dim,
          kvType: options.kvCache,
          capacity: T,
          slots: S,
          ...place,
          // gpt-oss alternates sliding and full layers; Mistral slides on all.
          window: c.sliding_window !== null && (c.sliding_layers?.[l] ?? true) ? c.sliding_window : 0,
          sinks: c.attn_sinks ? shared(vec(`${p}attn_sinks.weight`)) : undefined,
          ...M,
        },
        ...capture(l, 'attn_out_in', att, q),
        matmul(mat(`${p}attn_output.weight`), rows(att, q), rows(ob, c.dim)),
      );
      if (c.attn_output_bias)
        ops.push({ op: 'add', a: rows(ob, c.dim), b: shared(vec(`${p}attn_output.bias`)), out: rows(ob, c.dim), n: c.dim, ...M });
      ops.push(
        { op: 'add', a: rows(x, c.dim), b: rows(ob, c.dim), out: rows(x, c.dim), n: c.dim, ...M },
        {
          op: 'rmsnorm',
          x: rows(x, c.dim),
          weight: shared(vec(`${p}ffn_norm.weight`)),
          out: rows(h, c.dim),
          n: c.dim,
          eps: c.norm_eps,
          ...M,
        },
      );
      if (moe && moeScratch) {
        const E = moe.n_experts;
        ops.push(
          matmul(mat(`${p}ffn_gate_inp.weight`), rows(h, c.dim), rows(routerOut, E)),
          { op: 'add', a: rows(routerOut, E), b: shared(vec(`${p}ffn_gate_inp.bias`)), out: rows(routerOut, E), n: E, ...M },
          {
            op: 'moe',
            x: rows(h, c.dim),
            router: rows(routerOut, E),
            out: rows(x, c.dim),
            gate: experts(`${p}ffn_gate_exps.weight`),
            up: experts(`${p}ffn_up_exps.weight`),
            down: experts(`${p}ffn_down_exps.weight`),
            gateBias: rows(vec(`${p}ffn_gate_exps.bias`), c.ffn_dim),
            upBias: rows(vec(`${p}ffn_up_exps.bias`), c.ffn_dim),
            downBias: rows(vec(`${p}ffn_down_exps.bias`), c.dim),
            topK: moe.experts_per_token,
            limit: moe.swiglu_limit,
            alpha: 1.702,
            activations: options.expertActivations ?? 'f32',
            scratch: moeScratch,
            ...M,
          },
        );
        continue;
      }
      ops.push(
        ...capture(l, 'ffn_in', h, c.dim),
        matmul(mat(`${p}ffn_gate.weight`), rows(h, c.dim), rows(gate, c.ffn_dim)),
        matmul(mat(`${p}ffn_up.weight`), rows(h, c.dim), rows(up, c.ffn_dim)),
        { op: 'swiglu', gate: rows(gate, c.ffn_dim), up: rows(up, c.ffn_dim), out: rows(act, c.ffn_dim), n: c.ffn_dim, ...M },
        ...capture(l, 'ffn_down_in', act, c.ffn_dim),
        matmul(mat(`${p}ffn_down.weight`), rows(act, c.ffn_dim), rows(ob, c.dim)),
        { op: 'add', a: rows(x, c.dim), b: rows(ob, c.dim), out: rows(x, c.dim), n: c.dim, ...M },
      );
    }
    const classifier = mat(c.tied_classifier ? 'token_embd.weight' : 'output.weight');
    ops.push(
      { op: 'rmsnorm', x: rows(x, c.dim), weight: shared(vec('output_norm.weight')), out: rows(h, c.dim), n: c.dim, eps: c.norm_eps, ...M },
      ...capture(-1, 'classifier_in', h, c.dim),
      // The hidden state copy (embeddings): params[hiddenAt] rows, one unless a step asks for all.
      { op: 'add', a: rows(h, c.dim), b: shared(zeros), out: rows(buf(this.hidden), c.dim), n: c.dim, mSlot: this.hiddenAt },
      // Only the rows whose logits are wanted go through the classifier (calibration wants them all).
      ...[
        { op: 'gather', x: rows(h, c.dim), out: rows(picked, c.dim), n: c.dim, rowsSlot: this.pickAt } as const,
        matmul(classifier, rows(picked, c.dim), rows(logits, c.vocab_size)),
        { op: 'argmax', x: rows(logits, c.vocab_size), n: c.vocab_size, outSlot: this.argmaxAt } as const,
      ].map((o): ProgramOp => ({ ...o, mSlot: PARAM_LOGIT_ROWS, maxRows: this.logitRows })),
    );
    this.program = ctx.compile({ buffers, params: this.params, maxRows: B, ops });
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
        if (cal) p[this.pickAt + picks++] = row;
      }
      if (!cal && e.logits) p[this.pickAt + picks++] = row - 1;
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
