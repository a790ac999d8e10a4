/**
 * The architectures as IEBIN sees them: the model config, the canonical tensor names
 * (GGUF's, independent of the source) and the shape each must have. Llama, Mistral and Qwen2
 * are dense; gpt-oss adds a mixture of experts (stacked 3-D expert tensors), attention sinks,
 * biases on every attention projection, sliding attention on some layers and YaRN RoPE.
 */

export const ARCHITECTURES = ['llama', 'mistral', 'qwen2', 'gpt-oss'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];
export const ROPE_STYLES = ['adjacent', 'rotate_half'] as const;
/**
 * `adjacent`: RoPE rotates the pairs (2i, 2i+1) of each head (llama2.c, GGUF llama).
 * `rotate_half`: it rotates (i, i + head_dim/2) (Hugging Face checkpoints, whose Q/K rows
 * are permuted relative to the original Meta weights). The importer records the style and
 * leaves the weights as they are; the forward pass applies the recorded style.
 */
export type RopeStyle = (typeof ROPE_STYLES)[number];

/** Llama 3 frequency scaling (`rope_scaling.rope_type == "llama3"` in HF configs). */
export interface RopeScalingLlama3 {
  type: 'llama3';
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_context_length: number;
}

/**
 * YaRN frequency scaling (`rope_scaling.rope_type == "yarn"`; gpt-oss). With half = head_dim/2
 * and freq_i = theta^(-2i/head_dim): low = half*ln(orig/(beta_fast*2π))/ln(theta), high likewise
 * with beta_slow; `truncate` floors low and ceils high (HF's default; gpt-oss sets it false);
 * ramp_i = clamp((i - low)/(high - low), 0, 1); inv_freq_i = freq_i/factor*ramp_i + freq_i*(1 - ramp_i);
 * cos and sin are scaled by 0.1*ln(factor) + 1.
 */
export interface RopeScalingYarn {
  type: 'yarn';
  factor: number;
  original_context_length: number;
  beta_fast: number;
  beta_slow: number;
  truncate: boolean;
}

export type RopeScaling = RopeScalingLlama3 | RopeScalingYarn;

/**
 * A mixture of experts (gpt-oss): a router picks `experts_per_token` of `n_experts` per token
 * (top-k by logit, softmax over the chosen); each expert is a SwiGLU MLP whose gate is clamped
 * above at `swiglu_limit` and whose up projection is clamped to ±`swiglu_limit`.
 */
export interface MoeConfig {
  n_experts: number;
  experts_per_token: number;
  swiglu_limit: number;
}

export interface ModelConfig {
  architecture: Architecture;
  dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  head_dim: number;
  ffn_dim: number;
  vocab_size: number;
  context_length: number;
  rope_theta: number;
  rope_style: RopeStyle;
  rope_scaling: RopeScaling | null;
  norm_eps: number;
  /** The classifier reuses token_embd.weight (no output.weight tensor). */
  tied_classifier: boolean;
  /** q/k/v projections carry biases (Qwen2, gpt-oss). */
  attn_qkv_bias: boolean;
  /** The attention output projection carries a bias, `attn_output.bias` (gpt-oss). Absent in older headers: false. */
  attn_output_bias: boolean;
  /** One learned logit per query head, `attn_sinks.weight` [n_heads], joins each softmax denominator (gpt-oss). Absent: false. */
  attn_sinks: boolean;
  /** The sliding attention window (Mistral, gpt-oss), or null for full attention. */
  sliding_window: number | null;
  /**
   * Per layer, whether it uses `sliding_window` (gpt-oss alternates, layer 0 sliding); null: every
   * layer does when `sliding_window` is set. Absent: null.
   */
  sliding_layers: boolean[] | null;
  /** The mixture of experts replacing the dense MLP (gpt-oss; `ffn_dim` is then one expert's), or null. Absent: null. */
  moe: MoeConfig | null;
  bos_id: number;
  eos_id: number;
  /**
   * Per-pair RoPE frequency divisors (head_dim / 2 of them), as Llama 3.1 GGUF files store their
   * scaling (`rope_freqs.weight`): pair i turns at freq_i / factor_i. Absent: none.
   */
  rope_freq_factors?: number[];
  /**
   * Other token ids that end a generation (Llama 3's `<|eot_id|>` beside `<|end_of_text|>`: an HF
   * `eos_token_id` list, GGUF's eot/eom ids). Absent: none.
   */
  stop_ids?: number[];
}

/**
 * What a tensor is for. `router`: the MoE router matrix [n_experts, dim]; `experts`: stacked
 * expert matrices [n_experts, N, K]; `expert_bias`: stacked expert biases [n_experts, N];
 * `sinks`: the per-head attention sink logits. Norms, biases, sinks and expert biases stay float.
 */
export type TensorRole = 'embedding' | 'norm' | 'projection' | 'bias' | 'classifier' | 'router' | 'experts' | 'expert_bias' | 'sinks';

export interface ExpectedTensor {
  name: string;
  shape: number[];
  role: TensorRole;
}

/** Every tensor a model with this config has, in canonical order (the order exporters write). */
export function expectedTensors(c: ModelConfig): ExpectedTensor[] {
  const q = c.n_heads * c.head_dim;
  const kv = c.n_kv_heads * c.head_dim;
  const out: ExpectedTensor[] = [{ name: 'token_embd.weight', shape: [c.vocab_size, c.dim], role: 'embedding' }];
  for (let i = 0; i < c.n_layers; i++) {
    const b = `blk.${i}.`;
    out.push({ name: `${b}attn_norm.weight`, shape: [c.dim], role: 'norm' });
    out.push({ name: `${b}attn_q.weight`, shape: [q, c.dim], role: 'projection' });
    out.push({ name: `${b}attn_k.weight`, shape: [kv, c.dim], role: 'projection' });
    out.push({ name: `${b}attn_v.weight`, shape: [kv, c.dim], role: 'projection' });
    if (c.attn_qkv_bias) {
      out.push({ name: `${b}attn_q.bias`, shape: [q], role: 'bias' });
      out.push({ name: `${b}attn_k.bias`, shape: [kv], role: 'bias' });
      out.push({ name: `${b}attn_v.bias`, shape: [kv], role: 'bias' });
    }
    out.push({ name: `${b}attn_output.weight`, shape: [c.dim, q], role: 'projection' });
    if (c.attn_output_bias) out.push({ name: `${b}attn_output.bias`, shape: [c.dim], role: 'bias' });
    if (c.attn_sinks) out.push({ name: `${b}attn_sinks.weight`, shape: [c.n_heads], role: 'sinks' });
    out.push({ name: `${b}ffn_norm.weight`, shape: [c.dim], role: 'norm' });
    if (c.moe) {
      const E = c.moe.n_experts;
      out.push({ name: `${b}ffn_gate_inp.weight`, shape: [E, c.dim], role: 'router' });
      out.push({ name: `${b}ffn_gate_inp.bias`, shape: [E], role: 'bias' });
      out.push({ name: `${b}ffn_gate_exps.weight`, shape: [E, c.ffn_dim, c.dim], role: 'experts' });
      out.push({ name: `${b}ffn_up_exps.weight`, shape: [E, c.ffn_dim, c.dim], role: 'experts' });
      out.push({ name: `${b}ffn_down_exps.weight`, shape: [E, c.dim, c.ffn_dim], role: 'experts' });
      out.push({ name: `${b}ffn_gate_exps.bias`, shape: [E, c.ffn_dim], role: 'expert_bias' });
      out.push({ name: `${b}ffn_up_exps.bias`, shape: [E, c.ffn_dim], role: 'expert_bias' });
      out.push({ name: `${b}ffn_down_exps.bias`, shape: [E, c.dim], role: 'expert_bias' });
      continue;
    }
    out.push({ name: `${b}ffn_gate.weight`, shape: [c.ffn_dim, c.dim], role: 'projection' });
    out.push({ name: `${b}ffn_up.weight`, shape: [c.ffn_dim, c.dim], role: 'projection' });
    out.push({ name: `${b}ffn_down.weight`, shape: [c.dim, c.ffn_dim], role: 'projection' });
  }
  out.push({ name: 'output_norm.weight', shape: [c.dim], role: 'norm' });
  if (!c.tied_classifier) out.push({ name: 'output.weight', shape: [c.vocab_size, c.dim], role: 'classifier' });
  return out;
}

/**
 * The largest value each integer config field may take: what the kernels accept (heads and
 * head_dim ≤ 2^16, an attention window ≤ 2^24, a context ≤ 2^24) and far above any real model.
 * Importers check these before anything is sized by the config ({@link configProblems}).
 */
export const CONFIG_LIMITS = Object.freeze({
  dim: 1 << 30,
  n_layers: 1024,
  n_heads: 4096,
  n_kv_heads: 4096,
  head_dim: 65536,
  ffn_dim: 1 << 30,
  vocab_size: 1 << 24,
  context_length: 1 << 24,
  sliding_window: 1 << 24,
  n_experts: 65536,
  /** n_heads x head_dim (the width of Q). */
  q_width: 1 << 20,
});

/**
 * Problems with a config's internal consistency, as [field, message] pairs (empty when fine).
 * Cheap and allocation-free for any input: run it before anything is sized by the config
 * ({@link expectedTensors}, per-layer arrays).
 */
export function configProblems(c: ModelConfig): Array<[string, string]> {
  const p: Array<[string, string]> = [];
  sizeProblems(c, p);
  if (p.length) return p;
  // In this order: callers report the first problem.
  numberProblems(c, p);
  slidingProblems(c, p);
  ropeScalingProblems(c.rope_scaling, p);
  moeProblems(c, p);
  return p;
}

type Problems = Array<[string, string]>;

/** The integer sizes within CONFIG_LIMITS, and Q's width (n_heads x head_dim) once they are. */
function sizeProblems(c: ModelConfig, p: Problems): void {
  const posInt = (k: keyof ModelConfig & keyof typeof CONFIG_LIMITS) => {
    const max = CONFIG_LIMITS[k];
    const v = c[k] as unknown;
    if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > max)
      p.push([k, `must be an integer in 1..${max}, got ${String(v)}`]);
  };
  posInt('dim');
  posInt('n_layers');
  posInt('n_heads');
  posInt('n_kv_heads');
  posInt('head_dim');
  posInt('ffn_dim');
  posInt('vocab_size');
  posInt('context_length');
  if (p.length === 0 && c.n_heads * c.head_dim > CONFIG_LIMITS.q_width)
    p.push(['head_dim', `n_heads x head_dim is ${c.n_heads * c.head_dim}, more than ${CONFIG_LIMITS.q_width}`]);
}

/** Heads, RoPE and norm numbers, and the token ids (BOS, EOS, stop ids) within the vocabulary. */
function numberProblems(c: ModelConfig, p: Problems): void {
  if (c.n_heads % c.n_kv_heads !== 0) p.push(['n_kv_heads', `n_heads (${c.n_heads}) must be a multiple of n_kv_heads (${c.n_kv_heads})`]);
  if (c.head_dim % 2 !== 0) p.push(['head_dim', `must be even for RoPE, got ${c.head_dim}`]);
  if (!(Number.isFinite(c.rope_theta) && c.rope_theta > 0)) p.push(['rope_theta', `must be a positive number, got ${c.rope_theta}`]);
  if (!(Number.isFinite(c.norm_eps) && c.norm_eps > 0 && c.norm_eps < 1)) p.push(['norm_eps', `must be in (0, 1), got ${c.norm_eps}`]);
  // EOS first: where a file names no BOS (gpt-oss), BOS is EOS's id, and the problem is EOS's.
  for (const k of ['eos_id', 'bos_id'] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] < 0 || c[k] >= c.vocab_size)
      p.push([k, `must be a token id below vocab_size ${c.vocab_size}, got ${c[k]}`]);
  }
  if (c.rope_freq_factors !== undefined) {
    const f = c.rope_freq_factors;
    if (!Array.isArray(f) || f.length !== c.head_dim / 2)
      p.push(['rope_freq_factors', `must hold head_dim / 2 = ${c.head_dim / 2} factors`]);
    else if (f.some((x) => !(Number.isFinite(x) && x > 0))) p.push(['rope_freq_factors', 'must be positive finite numbers']);
  }
  if (c.stop_ids !== undefined) {
    if (!Array.isArray(c.stop_ids) || c.stop_ids.length > 64) p.push(['stop_ids', 'must be a list of at most 64 token ids']);
    else
      c.stop_ids.forEach((id, i) => {
        if (!Number.isSafeInteger(id) || id < 0 || id >= c.vocab_size)
          p.push([`stop_ids[${i}]`, `must be a token id below vocab_size ${c.vocab_size}, got ${id}`]);
      });
  }
}

/** The sliding window and its per-layer flags, and the boolean switches (checked between them). */
function slidingProblems(c: ModelConfig, p: Problems): void {
  if (
    c.sliding_window !== null &&
    (!Number.isSafeInteger(c.sliding_window) || c.sliding_window < 1 || c.sliding_window > CONFIG_LIMITS.sliding_window)
  )
    p.push(['sliding_window', `must be null or an integer in 1..${CONFIG_LIMITS.sliding_window}, got ${String(c.sliding_window)}`]);
  for (const k of ['attn_qkv_bias', 'attn_output_bias', 'attn_sinks', 'tied_classifier'] as const) {
    if (typeof c[k] !== 'boolean') p.push([k, `must be true or false, got ${String(c[k])}`]);
  }
  const sl = c.sliding_layers;
  if (sl !== null) {
    if (!Array.isArray(sl) || sl.length !== c.n_layers || sl.some((x) => typeof x !== 'boolean'))
      p.push(['sliding_layers', `must be null or ${c.n_layers} booleans (one per layer)`]);
    else if (c.sliding_window === null) p.push(['sliding_layers', 'is set but sliding_window is null']);
  }
}

/** Llama 3's or YaRN's parameters, positive and ordered. */
function ropeScalingProblems(rs: ModelConfig['rope_scaling'], p: Problems): void {
  if (rs === null) return;
  if (rs.type === 'llama3') {
    for (const k of ['factor', 'low_freq_factor', 'high_freq_factor', 'original_context_length'] as const) {
      if (!(Number.isFinite(rs[k]) && rs[k] > 0)) p.push([`rope_scaling.${k}`, 'must be a positive number']);
    }
    if (!Number.isSafeInteger(rs.original_context_length)) p.push(['rope_scaling.original_context_length', 'must be an integer']);
    if (rs.high_freq_factor <= rs.low_freq_factor) p.push(['rope_scaling.high_freq_factor', 'must exceed low_freq_factor']);
  } else if (rs.type === 'yarn') {
    for (const k of ['factor', 'original_context_length', 'beta_fast', 'beta_slow'] as const) {
      if (!(Number.isFinite(rs[k]) && rs[k] > 0)) p.push([`rope_scaling.${k}`, 'must be a positive number']);
    }
    if (!Number.isSafeInteger(rs.original_context_length)) p.push(['rope_scaling.original_context_length', 'must be an integer']);
    if (rs.factor < 1) p.push(['rope_scaling.factor', `must be at least 1, got ${rs.factor}`]);
    if (!(rs.beta_fast > rs.beta_slow)) p.push(['rope_scaling.beta_fast', `must exceed beta_slow (${rs.beta_slow}), got ${rs.beta_fast}`]);
    if (typeof rs.truncate !== 'boolean') p.push(['rope_scaling.truncate', 'must be true or false']);
  } else {
    p.push(['rope_scaling.type', `only "llama3" and "yarn" are supported, got ${String((rs as { type: unknown }).type)}`]);
  }
}

/** The experts' counts and SwiGLU limit; experts for gpt-oss, and only for it. */
function moeProblems(c: ModelConfig, p: Problems): void {
  const moe = c.moe;
  if (moe !== null) {
    if (typeof moe !== 'object') p.push(['moe', 'must be null or an object']);
    else {
      if (!Number.isSafeInteger(moe.n_experts) || moe.n_experts < 1 || moe.n_experts > CONFIG_LIMITS.n_experts)
        p.push(['moe.n_experts', `must be an integer in 1..${CONFIG_LIMITS.n_experts}, got ${moe.n_experts}`]);
      else if (!Number.isSafeInteger(moe.experts_per_token) || moe.experts_per_token < 1 || moe.experts_per_token > moe.n_experts)
        p.push(['moe.experts_per_token', `must be an integer in 1..n_experts (${moe.n_experts}), got ${moe.experts_per_token}`]);
      if (!(Number.isFinite(moe.swiglu_limit) && moe.swiglu_limit > 0))
        p.push(['moe.swiglu_limit', `must be a positive number, got ${moe.swiglu_limit}`]);
    }
  }
  if (c.architecture === 'gpt-oss' && moe === null) p.push(['moe', 'gpt-oss is a mixture of experts; moe must be set']);
  if (c.architecture !== 'gpt-oss' && moe !== null) p.push(['moe', `experts are supported for gpt-oss only, not ${c.architecture}`]);
}

/**
 * Weight bytes streamed per decoded token: every tensor except the embedding table (one row is
 * read) and, with `moe`, only experts_per_token / n_experts of each stacked expert tensor.
 */
export function weightBytesPerToken(
  tensors: ReadonlyArray<{ name: string; bytes: number; shape: readonly number[] }>,
  tied: boolean,
  moe: Pick<MoeConfig, 'n_experts' | 'experts_per_token'> | null = null,
): number {
  let total = 0;
  for (const t of tensors) {
    if (t.name === 'token_embd.weight') total += tied ? t.bytes : t.bytes / t.shape[0];
    else if (moe && /_exps\.(weight|bias)$/.test(t.name)) total += (t.bytes * moe.experts_per_token) / moe.n_experts;
    else total += t.bytes;
  }
  return Math.round(total);
}

/**
 * Row permutation between the two RoPE conventions for a Q or K projection with
 * `nHeads` heads: Hugging Face's conversion script moves Meta's row 2i+j of each head
 * (adjacent pairs) to row j*(headDim/2)+i (rotate-half pairs). Returns `perm` with
 * rotateHalfRow[r] = adjacentRow[perm[r]].
 */
export function adjacentToRotateHalfPermutation(nHeads: number, headDim: number): Int32Array {
  const half = headDim / 2;
  const perm = new Int32Array(nHeads * headDim);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < 2; j++) for (let i = 0; i < half; i++) perm[h * headDim + j * half + i] = h * headDim + 2 * i + j;
  }
  return perm;
}

/** Reorders whole rows of a row-major tensor: out row r = in row perm[r]. */
export function permuteRows(src: Uint8Array, rowBytes: number, perm: Int32Array): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let r = 0; r < perm.length; r++) out.set(src.subarray(perm[r] * rowBytes, (perm[r] + 1) * rowBytes), r * rowBytes);
  return out;
}

/** The inverse of a permutation. */
export function invertPermutation(perm: Int32Array): Int32Array {
  const inv = new Int32Array(perm.length);
  for (let i = 0; i < perm.length; i++) inv[perm[i]] = i;
  return inv;
}
