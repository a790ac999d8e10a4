/**
 * config.json ↔ ModelConfig. Llama, Mistral, Qwen2 and gpt-oss configs read into a checked
 * ModelConfig, problems named by config.json's keys; a ModelConfig written back as the config.json
 * HF's conversion writes (gpt-oss: exactly the keys of openai/gpt-oss-20b's).
 */
import { HfModelError, type FormatErrorCode } from '../errors.js';
import { CONFIG_LIMITS, configProblems, type Architecture, type ModelConfig } from '../llama.js';
import type { FloatDtype } from '../layout.js';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  GptOssForCausalLM: 'gpt-oss',
};
const MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', gpt_oss: 'gpt-oss' };

/** config.json's key for each ModelConfig field a problem can name. */
const HF_CONFIG_KEYS: Record<string, string> = {
  'moe.n_experts': 'num_local_experts',
  'moe.experts_per_token': 'num_experts_per_tok',
  'moe.swiglu_limit': 'swiglu_limit',
  n_layers: 'num_hidden_layers',
  n_heads: 'num_attention_heads',
  n_kv_heads: 'num_key_value_heads',
  dim: 'hidden_size',
  ffn_dim: 'intermediate_size',
  norm_eps: 'rms_norm_eps',
  context_length: 'max_position_embeddings',
  bos_id: 'bos_token_id',
  eos_id: 'eos_token_id',
  vocab_size: 'vocab_size',
  head_dim: 'head_dim',
  rope_theta: 'rope_theta',
  sliding_window: 'sliding_window',
  sliding_layers: 'layer_types',
  'rope_scaling.original_context_length': 'rope_scaling.original_max_position_embeddings',
};

/** Typed reads of config.json's top-level keys, failing as HF_BAD_CONFIG on the key at fault. */
interface HfConfigReader {
  cfg: Record<string, unknown>;
  fail(field: string, message: string, code?: FormatErrorCode): never;
  /** A non-negative safe integer (`dflt` when the key is absent or null). */
  int(k: string, dflt?: number): number;
  /** A finite number (`dflt` when the key is absent or null). */
  num(k: string, dflt?: number): number;
  /** true or false (`dflt` when the key is absent or null): "true", a string, is refused, not read as the default. */
  bool(k: string, dflt: boolean): boolean;
  /** A token id or null (absent): a number is checked against the vocabulary later, anything else is refused here. */
  tokenId(k: string): number | null;
}

/** A config.json value as a message shows it: JSON, at most 80 characters. */
function shown(v: unknown): string {
  // JSON has no spelling for them (a 1e999 in config.json parses as Infinity, which stringify writes as null).
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined; // nested too deep to print
  }
  if (s === undefined) return typeof v;
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function hfConfigReader(cfg: Record<string, unknown>, file: string): HfConfigReader {
  const fail = (field: string, message: string, code: FormatErrorCode = 'HF_BAD_CONFIG'): never => {
    throw new HfModelError(code, message, { file, field });
  };
  const int = (k: string, dflt?: number): number => {
    const v = cfg[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(k, `must be a non-negative integer, got ${shown(cfg[k])}`);
    return v as number;
  };
  const num = (k: string, dflt?: number): number => {
    const v = cfg[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(k, `must be a number, got ${shown(cfg[k])}`);
    return v as number;
  };
  const bool = (k: string, dflt: boolean): boolean => {
    const v = cfg[k];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') fail(k, `must be true or false, got ${shown(v)}`);
    return v as boolean;
  };
  const tokenId = (k: string): number | null => {
    const v = cfg[k];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number') fail(k, `must be a token id (a number), got ${shown(v)}`);
    return v as number;
  };
  return { cfg, fail, int, num, bool, tokenId };
}

/**
 * `eos_token_id`: a token id or a list of them (Llama 3: the first is EOS, the others end a turn
 * too); null, absent or an empty list: none. Every entry must be a number.
 */
function hfEosIds({ cfg, fail, tokenId }: HfConfigReader): number[] {
  const v = cfg.eos_token_id;
  if (!Array.isArray(v)) {
    const id = tokenId('eos_token_id');
    return id === null ? [] : [id];
  }
  return v.map((x, i) => {
    if (typeof x !== 'number') fail(`eos_token_id[${i}]`, `must be a token id (a number), got ${shown(x)}`);
    return x as number;
  });
}

/** config.json → ModelConfig. */
export function hfConfigToModelConfig(cfg: Record<string, unknown>, file: string): ModelConfig {
  const r = hfConfigReader(cfg, file);
  const { fail, int, num, bool } = r;
  const arch = hfArchitecture(r);
  const gptOss = arch === 'gpt-oss';
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') fail('hidden_act', `is ${shown(act)}; llama-family models use silu`);
  // Booleans read as booleans: "true" (a string) is refused, not taken for the default.
  const attentionBias = bool('attention_bias', gptOss);
  if (attentionBias && arch !== 'qwen2' && !gptOss)
    fail('attention_bias', 'is true; biases on the attention output projection are not supported');
  if (bool('mlp_bias', false)) fail('mlp_bias', 'is true; MLP biases are not supported');
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nLayers = int('num_hidden_layers');
  // Before anything is sized by it (layer_types below, the expected tensors later).
  if (nLayers < 1 || nLayers > CONFIG_LIMITS.n_layers)
    fail('num_hidden_layers', `must be an integer in 1..${CONFIG_LIMITS.n_layers}, got ${nLayers}`);
  // GptOssConfig's head_dim defaults to 64 (2880 / 64 heads would be 45); a null one, and the
  // other architectures' absent one, is hidden_size / num_attention_heads.
  const headDim =
    gptOss && cfg.head_dim === undefined
      ? 64
      : cfg.head_dim === undefined || cfg.head_dim === null
        ? nHeads > 0
          ? dim / nHeads
          : 0
        : int('head_dim');
  if (!Number.isInteger(headDim)) fail('num_attention_heads', `hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  const eosIds = hfEosIds(r);
  const bosId = r.tokenId('bos_token_id');
  const tied = bool('tie_word_embeddings', false);
  const { rope_scaling, linearFactor } = hfRopeScaling(r, gptOss);
  const { sliding_window, sliding_layers, moe } = hfSlidingAndExperts(r, arch, nLayers);
  const eosId = eosIds[0] ?? 2;
  const config: ModelConfig = {
    architecture: arch,
    dim,
    n_layers: nLayers,
    n_heads: nHeads,
    n_kv_heads: int('num_key_value_heads', nHeads),
    head_dim: headDim,
    ffn_dim: int('intermediate_size'),
    vocab_size: int('vocab_size'),
    context_length: int('max_position_embeddings', 2048),
    rope_theta: num('rope_theta', 10000),
    rope_style: 'rotate_half',
    rope_scaling,
    norm_eps: num('rms_norm_eps', 1e-6),
    tied_classifier: tied,
    attn_qkv_bias: arch === 'qwen2' || (gptOss && attentionBias),
    attn_output_bias: gptOss && attentionBias,
    attn_sinks: gptOss,
    sliding_window,
    sliding_layers,
    moe,
    // gpt-oss configs name no BOS (its chat format starts with <|start|>): the EOS id stands in.
    bos_id: bosId ?? (gptOss ? eosId : 1),
    eos_id: eosId,
    // Llama 3 lists several: the first is EOS, the others (e.g. <|eot_id|>) end a turn too.
    ...(eosIds.length > 1 ? { stop_ids: eosIds.slice(1).filter((x) => x !== eosId) } : {}),
    // Linear scaling divides every pair's frequency by the factor: the per-pair divisors, all alike.
    ...(linearFactor !== undefined && headDim > 0 && headDim % 2 === 0
      ? { rope_freq_factors: Array.from({ length: headDim / 2 }, () => linearFactor) }
      : {}),
  };
  // Checked here, before anything is sized by the config, and named by config.json's keys.
  const problem = configProblems(config)[0];
  if (problem) {
    const key = HF_CONFIG_KEYS[problem[0]] ?? (problem[0].startsWith('stop_ids') ? 'eos_token_id' : problem[0]);
    fail(key, `${problem[1]} (ie's ${problem[0]})`);
  }
  return config;
}

/** The architecture from `architectures[0]`, else `model_type`. */
function hfArchitecture({ cfg, fail }: HfConfigReader): Architecture {
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as unknown[]) : [];
  // Own keys only: "__proto__", "constructor" or "toString" is no architecture.
  const known = (table: Record<string, Architecture>, k: unknown) =>
    typeof k === 'string' && Object.hasOwn(table, k) ? table[k] : undefined;
  const arch = known(ARCHITECTURES, archs[0]) ?? known(MODEL_TYPES, cfg.model_type);
  if (!arch)
    fail(
      'architectures',
      `is ${JSON.stringify(cfg.architectures ?? cfg.model_type)}; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
      'HF_UNSUPPORTED_ARCHITECTURE',
    );
  return arch as Architecture;
}

/**
 * `rope_scaling`: null or `"default"` (none), Llama 3's, linear (`linearFactor`: every pair's
 * frequency divided by it, as HF's inv_freq / factor), or (gpt-oss only) YaRN with HF's defaults.
 * Dynamic NTK scaling (a base that moves with the sequence's length) is refused.
 */
function hfRopeScaling(
  { cfg, fail }: HfConfigReader,
  gptOss: boolean,
): { rope_scaling: ModelConfig['rope_scaling']; linearFactor?: number } {
  const rs = cfg.rope_scaling;
  if (rs === null || rs === undefined) return { rope_scaling: null };
  if (typeof rs !== 'object' || Array.isArray(rs)) fail('rope_scaling', 'must be an object or null');
  const r = rs as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const f = (k: string, dflt?: number) => {
    const v = r[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`rope_scaling.${k}`, 'must be a number');
    return v as number;
  };
  if (type === 'default') return { rope_scaling: null };
  if (type === 'linear' && !gptOss) {
    const factor = f('factor');
    if (!(factor > 0)) fail('rope_scaling.factor', `must be positive, got ${factor}`);
    return { rope_scaling: null, linearFactor: factor };
  }
  if (type === 'llama3') {
    const orig = f('original_max_position_embeddings');
    if (!Number.isSafeInteger(orig) || orig < 1)
      fail('rope_scaling.original_max_position_embeddings', `must be a positive integer, got ${orig}`);
    return {
      rope_scaling: {
        type: 'llama3',
        factor: f('factor'),
        low_freq_factor: f('low_freq_factor'),
        high_freq_factor: f('high_freq_factor'),
        original_context_length: orig,
      },
    };
  }
  if (type === 'yarn' && gptOss) {
    // HF's defaults: beta_fast 32, beta_slow 1, truncate true; no attention_factor / mscale overrides.
    for (const k of ['attention_factor', 'mscale', 'mscale_all_dim'])
      if (r[k] !== undefined && r[k] !== null)
        fail(`rope_scaling.${k}`, 'is set; ie applies YaRN with its default attention scaling 0.1*ln(factor) + 1 only');
    const truncate = r.truncate ?? true;
    if (typeof truncate !== 'boolean') fail('rope_scaling.truncate', 'must be true or false');
    const orig = r.original_max_position_embeddings ?? cfg.initial_context_length;
    if (typeof orig !== 'number' || !Number.isSafeInteger(orig) || orig < 1)
      fail('rope_scaling.original_max_position_embeddings', `must be a positive integer, got ${JSON.stringify(orig)}`);
    return {
      rope_scaling: {
        type: 'yarn',
        factor: f('factor'),
        original_context_length: orig as number,
        beta_fast: f('beta_fast', 32),
        beta_slow: f('beta_slow', 1),
        truncate: truncate as boolean,
      },
    };
  }
  return fail(
    'rope_scaling.rope_type',
    `is ${JSON.stringify(type)}; supported: "default", "llama3"${gptOss ? ', "yarn"' : ', "linear" ("yarn" for gpt-oss)'}`,
  );
}

/** The sliding window (Mistral's, Qwen2's when enabled, gpt-oss's per layer) and gpt-oss's experts. */
function hfSlidingAndExperts(
  { cfg, fail, int, num, bool }: HfConfigReader,
  arch: Architecture,
  nLayers: number,
): Pick<ModelConfig, 'sliding_window' | 'sliding_layers' | 'moe'> {
  if (arch !== 'gpt-oss') {
    if (arch === 'llama') return { sliding_window: null, sliding_layers: null, moe: null };
    // null or absent: no window; one of the wrong type ("4096") is refused, not dropped. Its value is checked with the config.
    const window = cfg.sliding_window;
    if (window !== null && window !== undefined && typeof window !== 'number')
      fail('sliding_window', `must be a number of tokens or null, got ${shown(window)}`);
    const used = arch === 'mistral' || bool('use_sliding_window', false);
    if (!used || typeof window !== 'number') return { sliding_window: null, sliding_layers: null, moe: null };
    if (arch === 'mistral') return { sliding_window: window, sliding_layers: null, moe: null };
    // Qwen2 slides the layers `layer_types` names, else those from max_window_layers on (HF's default 28).
    let slidingLayers: boolean[];
    if (cfg.layer_types !== undefined && cfg.layer_types !== null) slidingLayers = hfLayerTypes(cfg.layer_types, nLayers, fail);
    else {
      const from = int('max_window_layers', 28);
      slidingLayers = Array.from({ length: nLayers }, (_, i) => i >= from);
    }
    if (slidingLayers.every((x) => !x)) return { sliding_window: null, sliding_layers: null, moe: null };
    return { sliding_window: window, sliding_layers: slidingLayers.every((x) => x) ? null : slidingLayers, moe: null };
  }
  const sliding = int('sliding_window');
  // HF's GptOssConfig default: layer i slides when i is even.
  const slidingLayers = hfLayerTypes(
    cfg.layer_types ?? Array.from({ length: nLayers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    nLayers,
    fail,
  );
  const moe = {
    n_experts: int('num_local_experts'),
    experts_per_token: int('num_experts_per_tok', cfg.experts_per_token as number | undefined),
    swiglu_limit: num('swiglu_limit', 7),
  };
  return { sliding_window: sliding, sliding_layers: slidingLayers, moe };
}

/** `layer_types`: one "sliding_attention" or "full_attention" per layer, as whether it slides. */
function hfLayerTypes(types: unknown, nLayers: number, fail: HfConfigReader['fail']): boolean[] {
  if (!Array.isArray(types) || types.length !== nLayers)
    fail('layer_types', `must list ${nLayers} entries (num_hidden_layers), got ${JSON.stringify(types).slice(0, 80)}`);
  return (types as unknown[]).map((t, i) => {
    if (t === 'sliding_attention') return true;
    if (t === 'full_attention') return false;
    return fail(`layer_types[${i}]`, `is ${JSON.stringify(t)}; layers are "sliding_attention" or "full_attention"`);
  });
}

/** What config.json needs beyond the ModelConfig (gpt-oss). */
export interface HfConfigExtras {
  /** `pad_token_id` (gpt-oss checkpoints name <|endoftext|>); null when unknown. */
  pad_token_id?: number | null;
  /** Whether the experts are stored as MXFP4 blocks (adds `quantization_config`). */
  mxfp4?: boolean;
}

const HF_ARCHITECTURE_NAMES: Record<Architecture, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  'gpt-oss': 'GptOssForCausalLM',
};

/** ModelConfig → config.json (the inverse of {@link hfConfigToModelConfig}); gpt-oss gets exactly the keys of openai/gpt-oss-20b's config.json. */
export function modelConfigToHfConfig(c: ModelConfig, dtype: FloatDtype, extras: HfConfigExtras = {}): Record<string, unknown> {
  if (c.architecture === 'gpt-oss' && c.moe) return gptOssHfConfig(c, c.moe, extras);
  const linear = linearRopeFactor(c);
  return {
    architectures: [HF_ARCHITECTURE_NAMES[c.architecture]],
    model_type: c.architecture,
    hidden_size: c.dim,
    num_hidden_layers: c.n_layers,
    num_attention_heads: c.n_heads,
    num_key_value_heads: c.n_kv_heads,
    head_dim: c.head_dim,
    intermediate_size: c.ffn_dim,
    vocab_size: c.vocab_size,
    max_position_embeddings: c.context_length,
    rope_theta: c.rope_theta,
    rope_scaling: linear !== undefined ? { rope_type: 'linear', factor: linear } : hfRopeScalingOut(c.rope_scaling),
    rms_norm_eps: c.norm_eps,
    tie_word_embeddings: c.tied_classifier,
    hidden_act: 'silu',
    bos_token_id: c.bos_id,
    eos_token_id: c.eos_id,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    ...(c.sliding_window !== null ? { sliding_window: c.sliding_window, use_sliding_window: true } : {}),
    // Qwen2 reads which layers slide (HF's default: from layer 28 on); Mistral slides them all.
    ...(c.sliding_window !== null && c.architecture === 'qwen2'
      ? c.sliding_layers
        ? { layer_types: c.sliding_layers.map((x) => (x ? 'sliding_attention' : 'full_attention')) }
        : { max_window_layers: 0 }
      : {}),
  };
}

/** The factor of linear RoPE scaling: per-pair divisors all alike (and not 1), and no other scaling. */
function linearRopeFactor(c: ModelConfig): number | undefined {
  const f = c.rope_freq_factors;
  return !c.rope_scaling && f && f.length > 0 && f[0] !== 1 && f.every((x) => x === f[0]) ? f[0] : undefined;
}

/** `rope_scaling` as config.json holds it (the inverse of {@link hfRopeScaling}). */
function hfRopeScalingOut(rs: ModelConfig['rope_scaling']): Record<string, unknown> | null {
  if (!rs) return rs;
  if (rs.type === 'llama3')
    return {
      rope_type: 'llama3',
      factor: rs.factor,
      low_freq_factor: rs.low_freq_factor,
      high_freq_factor: rs.high_freq_factor,
      original_max_position_embeddings: rs.original_context_length,
    };
  return {
    beta_fast: rs.beta_fast,
    beta_slow: rs.beta_slow,
    factor: rs.factor,
    original_max_position_embeddings: rs.original_context_length,
    rope_type: 'yarn',
    truncate: rs.truncate,
  };
}

/** openai/gpt-oss-20b's keys, in its (sorted) order. It names no BOS: one is written only when it is not the EOS (the importer's stand-in). */
function gptOssHfConfig(c: ModelConfig, moe: NonNullable<ModelConfig['moe']>, extras: HfConfigExtras): Record<string, unknown> {
  const rs = c.rope_scaling;
  return {
    architectures: [HF_ARCHITECTURE_NAMES['gpt-oss']],
    attention_bias: c.attn_qkv_bias,
    attention_dropout: 0,
    ...(c.bos_id !== c.eos_id ? { bos_token_id: c.bos_id } : {}),
    eos_token_id: c.eos_id,
    experts_per_token: moe.experts_per_token,
    head_dim: c.head_dim,
    hidden_act: 'silu',
    hidden_size: c.dim,
    initial_context_length: rs?.original_context_length ?? 4096,
    initializer_range: 0.02,
    intermediate_size: c.ffn_dim,
    layer_types: (c.sliding_layers ?? Array.from({ length: c.n_layers }, () => c.sliding_window !== null)).map((s) =>
      s ? 'sliding_attention' : 'full_attention',
    ),
    max_position_embeddings: c.context_length,
    model_type: 'gpt_oss',
    num_attention_heads: c.n_heads,
    num_experts_per_tok: moe.experts_per_token,
    num_hidden_layers: c.n_layers,
    num_key_value_heads: c.n_kv_heads,
    num_local_experts: moe.n_experts,
    output_router_logits: false,
    pad_token_id: extras.pad_token_id ?? null,
    ...(extras.mxfp4
      ? {
          quantization_config: {
            modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'],
            quant_method: 'mxfp4',
          },
        }
      : {}),
    rms_norm_eps: c.norm_eps,
    rope_scaling: hfRopeScalingOut(rs),
    rope_theta: c.rope_theta,
    router_aux_loss_coef: 0.9,
    sliding_window: c.sliding_window,
    swiglu_limit: moe.swiglu_limit,
    tie_word_embeddings: c.tied_classifier,
    transformers_version: '4.55.0.dev0',
    use_cache: true,
    vocab_size: c.vocab_size,
  };
}
