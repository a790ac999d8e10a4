/**
 * Hugging Face model directories: config.json, model.safetensors or a sharded
 * model.safetensors.index.json, tokenizer.json. Llama, Mistral and Qwen2 (with its q/k/v
 * biases) architectures; TinyLlama and SmolLM are Llama. Weights stay as they are: HF
 * checkpoints pair RoPE dimensions as rotate-half (their Q/K rows are permuted relative
 * to Meta's adjacent-pair layout), so the importer records `rope_style: "rotate_half"`.
 *
 * gpt-oss (GptOssForCausalLM): experts as MXFP4 `*_blocks` / `*_scales` pairs are re-packed
 * into ggml mxfp4 blocks without loss; `gate_up_proj` interleaves gate (even rows) and up (odd
 * rows), split into ffn_gate_exps and ffn_up_exps, its bias likewise. A dequantized checkpoint
 * (float `gate_up_proj` [E, dim, 2*ffn] and `down_proj` [E, ffn, dim], stored for x @ W) is
 * transposed into the same [E, N, K] tensors, kept float.
 */
import type { Stats } from 'node:fs';
import { copyFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HfModelError, type FormatErrorCode } from './errors.js';
import { RandomAccessFile } from './file.js';
import { mxfp4FromHf } from './blocks.js';
import { adjacentToRotateHalfPermutation, configProblems, expectedTensors, permuteRows, type Architecture, type ModelConfig } from './llama.js';
import { dtypeElementBytes, type FloatDtype } from './layout.js';
import { SAFETENSORS_FLOAT_DTYPES, readSafetensorsHeader, writeSafetensors, type SafetensorsEntry } from './safetensors.js';
import { synthHfTokenizerJson } from './synth.js';
import type { ModelSource, SourceTensor } from './source.js';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  GptOssForCausalLM: 'gpt-oss',
};
const MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', gpt_oss: 'gpt-oss' };
/** HF per-layer tensors of gpt-oss experts that make up, or are split into, canonical tensors. */
const EXPERT_PARTS = ['gate_up_proj_blocks', 'gate_up_proj_scales', 'gate_up_proj_bias', 'gate_up_proj', 'down_proj_blocks', 'down_proj_scales', 'down_proj'].map((p) => `mlp.experts.${p}`);
const MAX_JSON = 64 << 20;

/**
 * HF tensor name → canonical name (null: a known tensor ie does not need; undefined: not a tensor
 * of a supported model, or one of gpt-oss's expert tensors that map onto canonical tensors
 * other than one to one: `gate_up_proj*`, `down_proj_blocks` / `_scales`, `down_proj`).
 */
export function canonicalHfName(name: string): string | null | undefined {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (name in fixed) return fixed[name];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const per: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'self_attn.o_proj.bias': 'attn_output.bias',
    'self_attn.sinks': 'attn_sinks.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
    'mlp.router.weight': 'ffn_gate_inp.weight',
    'mlp.router.bias': 'ffn_gate_inp.bias',
    'mlp.experts.down_proj_bias': 'ffn_down_exps.bias',
  };
  if (m[2] === 'self_attn.rotary_emb.inv_freq') return null;
  return per[m[2]] ? `blk.${m[1]}.${per[m[2]]}` : undefined;
}

/** The inverse of {@link canonicalHfName} for writing HF directories (one-to-one names only). */
export function hfName(canonical: string): string {
  const fixed: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
  };
  if (canonical in fixed) return fixed[canonical];
  const m = /^blk\.(\d+)\.(.+)$/.exec(canonical);
  if (!m) throw new RangeError(`not a canonical tensor name: ${canonical}`);
  const per: Record<string, string> = {
    'attn_norm.weight': 'input_layernorm.weight',
    'attn_q.weight': 'self_attn.q_proj.weight',
    'attn_k.weight': 'self_attn.k_proj.weight',
    'attn_v.weight': 'self_attn.v_proj.weight',
    'attn_q.bias': 'self_attn.q_proj.bias',
    'attn_k.bias': 'self_attn.k_proj.bias',
    'attn_v.bias': 'self_attn.v_proj.bias',
    'attn_output.weight': 'self_attn.o_proj.weight',
    'attn_output.bias': 'self_attn.o_proj.bias',
    'attn_sinks.weight': 'self_attn.sinks',
    'ffn_norm.weight': 'post_attention_layernorm.weight',
    'ffn_gate.weight': 'mlp.gate_proj.weight',
    'ffn_up.weight': 'mlp.up_proj.weight',
    'ffn_down.weight': 'mlp.down_proj.weight',
    'ffn_gate_inp.weight': 'mlp.router.weight',
    'ffn_gate_inp.bias': 'mlp.router.bias',
    'ffn_down_exps.bias': 'mlp.experts.down_proj_bias',
  };
  if (!per[m[2]]) throw new RangeError(`${canonical} has no one-to-one Hugging Face tensor`);
  return `model.layers.${m[1]}.${per[m[2]]}`;
}

async function readJson(path: string, code: FormatErrorCode, what: string): Promise<Record<string, unknown>> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch {
    throw new HfModelError(code, `is missing; a Hugging Face model directory needs ${what}`, { file: path });
  }
  if (st.size > MAX_JSON) throw new HfModelError(code, `is ${st.size} bytes, over the ${MAX_JSON}-byte cap`, { file: path });
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new HfModelError(code, `is not valid JSON (${(e as Error).message})`, { file: path });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HfModelError(code, 'must hold a JSON object', { file: path });
  return v as Record<string, unknown>;
}

/** config.json → ModelConfig. */
export function hfConfigToModelConfig(cfg: Record<string, unknown>, file: string): ModelConfig {
  const fail = (field: string, message: string, code: FormatErrorCode = 'HF_BAD_CONFIG'): never => {
    throw new HfModelError(code, message, { file, field });
  };
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as unknown[]) : [];
  const arch = (typeof archs[0] === 'string' && ARCHITECTURES[archs[0]]) || (typeof cfg.model_type === 'string' && MODEL_TYPES[cfg.model_type]);
  if (!arch) fail('architectures', `is ${JSON.stringify(cfg.architectures ?? cfg.model_type)}; supported: ${Object.keys(ARCHITECTURES).join(', ')}`, 'HF_UNSUPPORTED_ARCHITECTURE');
  const int = (k: string, dflt?: number): number => {
    const v = cfg[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(k, `must be a non-negative integer, got ${JSON.stringify(cfg[k])}`);
    return v as number;
  };
  const num = (k: string, dflt?: number): number => {
    const v = cfg[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(k, `must be a number, got ${JSON.stringify(cfg[k])}`);
    return v as number;
  };
  const gptOss = arch === 'gpt-oss';
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') fail('hidden_act', `is ${JSON.stringify(act)}; llama-family models use silu`);
  if (cfg.attention_bias === true && arch !== 'qwen2' && !gptOss) fail('attention_bias', 'is true; biases on the attention output projection are not supported');
  if (cfg.mlp_bias === true) fail('mlp_bias', 'is true; MLP biases are not supported');
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nLayers = int('num_hidden_layers');
  const headDim = cfg.head_dim === undefined || cfg.head_dim === null ? (nHeads > 0 ? dim / nHeads : 0) : int('head_dim');
  if (!Number.isInteger(headDim)) fail('num_attention_heads', `hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id;
  let rope_scaling: ModelConfig['rope_scaling'] = null;
  const rs = cfg.rope_scaling;
  if (rs !== null && rs !== undefined) {
    if (typeof rs !== 'object' || Array.isArray(rs)) fail('rope_scaling', 'must be an object or null');
    const r = rs as Record<string, unknown>;
    const type = r.rope_type ?? r.type;
    const f = (k: string, dflt?: number) => {
      const v = r[k] ?? dflt;
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`rope_scaling.${k}`, 'must be a number');
      return v as number;
    };
    if (type === 'llama3') {
      rope_scaling = { type: 'llama3', factor: f('factor'), low_freq_factor: f('low_freq_factor'), high_freq_factor: f('high_freq_factor'), original_context_length: f('original_max_position_embeddings') };
    } else if (type === 'yarn' && gptOss) {
      // HF's defaults: beta_fast 32, beta_slow 1, truncate true; no attention_factor / mscale overrides.
      for (const k of ['attention_factor', 'mscale', 'mscale_all_dim']) if (r[k] !== undefined && r[k] !== null) fail(`rope_scaling.${k}`, 'is set; ie applies YaRN with its default attention scaling 0.1*ln(factor) + 1 only');
      const truncate = r.truncate ?? true;
      if (typeof truncate !== 'boolean') fail('rope_scaling.truncate', 'must be true or false');
      const orig = r.original_max_position_embeddings ?? cfg.initial_context_length;
      if (typeof orig !== 'number' || !Number.isSafeInteger(orig) || orig < 1) fail('rope_scaling.original_max_position_embeddings', 'must be a positive integer');
      rope_scaling = { type: 'yarn', factor: f('factor'), original_context_length: orig as number, beta_fast: f('beta_fast', 32), beta_slow: f('beta_slow', 1), truncate: truncate as boolean };
    } else {
      fail('rope_scaling.rope_type', `is ${JSON.stringify(type)}; supported: "llama3"${gptOss ? ', "yarn"' : ' ("yarn" for gpt-oss)'}`);
    }
  }
  let sliding: number | null = null;
  let slidingLayers: boolean[] | null = null;
  if (arch === 'mistral' && typeof cfg.sliding_window === 'number') sliding = cfg.sliding_window;
  if (arch === 'qwen2' && cfg.use_sliding_window === true && typeof cfg.sliding_window === 'number') sliding = cfg.sliding_window;
  let moe: ModelConfig['moe'] = null;
  if (gptOss) {
    sliding = int('sliding_window');
    // HF's GptOssConfig default: layer i slides when i is even.
    const types = cfg.layer_types ?? Array.from({ length: nLayers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
    if (!Array.isArray(types) || types.length !== nLayers) fail('layer_types', `must list ${nLayers} entries (num_hidden_layers), got ${JSON.stringify(types).slice(0, 80)}`);
    slidingLayers = (types as unknown[]).map((t, i) => {
      if (t === 'sliding_attention') return true;
      if (t === 'full_attention') return false;
      return fail(`layer_types[${i}]`, `is ${JSON.stringify(t)}; gpt-oss layers are "sliding_attention" or "full_attention"`);
    });
    moe = { n_experts: int('num_local_experts'), experts_per_token: int('num_experts_per_tok', cfg.experts_per_token as number | undefined), swiglu_limit: num('swiglu_limit', 7) };
  }
  const eosId = typeof eos === 'number' ? eos : 2;
  const config: ModelConfig = {
    architecture: arch as Architecture,
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
    tied_classifier: cfg.tie_word_embeddings === true,
    attn_qkv_bias: arch === 'qwen2' || (gptOss && cfg.attention_bias !== false),
    attn_output_bias: gptOss && cfg.attention_bias !== false,
    attn_sinks: gptOss,
    sliding_window: sliding,
    sliding_layers: slidingLayers,
    moe,
    // gpt-oss configs name no BOS (its chat format starts with <|start|>): the EOS id stands in.
    bos_id: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : gptOss ? eosId : 1,
    eos_id: eosId,
  };
  // Checked here for gpt-oss (named by config.json's keys); other architectures' problems surface at export.
  const problem = gptOss ? configProblems(config)[0] : undefined;
  if (problem) {
    const keys: Record<string, string> = { 'moe.n_experts': 'num_local_experts', 'moe.experts_per_token': 'num_experts_per_tok', 'moe.swiglu_limit': 'swiglu_limit', n_layers: 'num_hidden_layers', n_heads: 'num_attention_heads', n_kv_heads: 'num_key_value_heads', dim: 'hidden_size', ffn_dim: 'intermediate_size', norm_eps: 'rms_norm_eps', context_length: 'max_position_embeddings', bos_id: 'bos_token_id', eos_id: 'eos_token_id', vocab_size: 'vocab_size', head_dim: 'head_dim' };
    fail(keys[problem[0]] ?? problem[0], `${problem[1]} (ie's ${problem[0]})`);
  }
  return config;
}

export interface OpenHfOptions {
  /** A tokenizer.json to use instead of the directory's own (for checkpoints shipped without one). */
  tokenizer?: string;
}

/** Opens a Hugging Face model directory as a model source. */
export async function openHfDir(dir: string, options: OpenHfOptions = {}): Promise<ModelSource> {
  const cfgPath = join(dir, 'config.json');
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error();
  } catch {
    throw new HfModelError('HF_NOT_A_MODEL_DIR', 'is not a directory; pass a Hugging Face model directory', { file: dir });
  }
  const cfg = await readJson(cfgPath, 'HF_NOT_A_MODEL_DIR', 'config.json');
  const config = hfConfigToModelConfig(cfg, cfgPath);
  const tokPath = options.tokenizer ?? join(dir, 'tokenizer.json');
  const tok = await readJson(tokPath, 'HF_BAD_TOKENIZER', 'tokenizer.json');
  if (typeof tok.model !== 'object' || tok.model === null) throw new HfModelError('HF_BAD_TOKENIZER', 'has no "model" object; is it a tokenizers-library tokenizer.json?', { file: tokPath, field: 'model' });

  // Which shard files hold which tensors.
  let shardFiles: string[];
  const indexPath = join(dir, 'model.safetensors.index.json');
  let weightMap: Map<string, string> | null = null;
  if (await exists(indexPath)) {
    const idx = await readJson(indexPath, 'HF_BAD_INDEX', 'model.safetensors.index.json');
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new HfModelError('HF_BAD_INDEX', 'has no weight_map object', { file: indexPath, field: 'weight_map' });
    weightMap = new Map();
    for (const [k, v] of Object.entries(wm)) {
      if (typeof v !== 'string' || v !== basename(v) || v.startsWith('.') || !v.endsWith('.safetensors')) {
        throw new HfModelError('HF_BAD_INDEX', `maps ${k} to ${JSON.stringify(v)}, not a .safetensors file in this directory`, { file: indexPath, field: `weight_map.${k}` });
      }
      weightMap.set(k, v);
    }
    shardFiles = [...new Set(weightMap.values())].sort();
  } else if (await exists(join(dir, 'model.safetensors'))) {
    shardFiles = ['model.safetensors'];
  } else {
    throw new HfModelError('HF_NOT_A_MODEL_DIR', 'has neither model.safetensors nor model.safetensors.index.json (pytorch .bin weights are not supported; save with safetensors)', { file: dir });
  }

  const opened: RandomAccessFile[] = [];
  const closeAll = async () => {
    for (const f of opened) await f.close().catch(() => undefined);
  };
  try {
    /** Every weight by HF name. */
    const found = new Map<string, { f: RandomAccessFile; e: SafetensorsEntry }>();
    const notes: string[] = [`Hugging Face ${config.architecture} model, ${shardFiles.length} safetensors file(s); rope_style rotate_half recorded, Q/K rows kept as stored`];
    const isExpertPart = (name: string) => /^model\.layers\.\d+\./.test(name) && EXPERT_PARTS.includes(name.replace(/^model\.layers\.\d+\./, ''));
    for (const sf of shardFiles) {
      const p = join(dir, sf);
      const f = await RandomAccessFile.open(p, (code, message) => new HfModelError(code, message, { file: p }));
      opened.push(f);
      const h = await readSafetensorsHeader(f);
      for (const e of h.entries) {
        if (weightMap && weightMap.get(e.name) !== sf) throw new HfModelError('HF_BAD_INDEX', `${e.name} is in ${sf} but the index maps it to ${weightMap.get(e.name) ?? 'nothing'}`, { file: indexPath, field: `weight_map.${e.name}` });
        const canon = canonicalHfName(e.name);
        if (canon === null) {
          notes.push(`${e.name} ignored (RoPE frequencies are computed)`);
          continue;
        }
        if (canon === undefined && !isExpertPart(e.name)) throw new HfModelError('HF_UNEXPECTED_TENSOR', `${e.name} is not part of a llama-family or gpt-oss model`, { file: p, field: e.name });
        if (found.has(e.name)) throw new HfModelError('HF_BAD_INDEX', `${e.name} appears in two files`, { file: p, field: e.name });
        found.set(e.name, { f, e });
      }
    }
    if (weightMap) {
      for (const k of weightMap.keys()) if (canonicalHfName(k) !== null && !found.has(k)) throw new HfModelError('HF_BAD_INDEX', `${k} is in the index but not in ${weightMap.get(k)}`, { file: indexPath, field: `weight_map.${k}` });
    }
    if (config.tied_classifier && found.has('lm_head.weight')) {
      found.delete('lm_head.weight');
      notes.push('lm_head.weight dropped: tie_word_embeddings is true');
    }
    const hasBlocks = [...found.keys()].find((k) => k.endsWith('_blocks'));
    if (hasBlocks) {
      const qc = cfg.quantization_config;
      const method = typeof qc === 'object' && qc !== null ? (qc as Record<string, unknown>).quant_method : undefined;
      if (method !== 'mxfp4') throw new HfModelError('HF_BAD_CONFIG', `is ${JSON.stringify(method)}, but ${hasBlocks} is an MXFP4 block tensor; expected "mxfp4"`, { file: cfgPath, field: 'quantization_config.quant_method' });
      for (const [k, v] of [['hidden_size', config.dim], ['intermediate_size', config.ffn_dim]] as const) {
        if (v % 32 !== 0) throw new HfModelError('HF_BAD_CONFIG', `is ${v}; MXFP4 experts need whole 32-element blocks per row, so it must be a multiple of 32`, { file: cfgPath, field: k });
      }
    }
    const recipes = expected(config, found);
    const used = new Set(recipes.flatMap((r) => r.hf));
    for (const [hf, { f }] of found) if (!used.has(hf)) throw new HfModelError('HF_UNEXPECTED_TENSOR', `${hf} does not fit the config (${config.n_layers} layers${config.moe ? `, ${config.moe.n_experts} experts` : ''})`, { file: f.path, field: hf });
    const tensors: SourceTensor[] = recipes.map((r) => {
      const parts = r.hf.map((hf) => {
        const got = found.get(hf);
        if (!got) throw new HfModelError('HF_MISSING_TENSOR', `${hf} is missing`, { file: dir, field: hf });
        return { hf, ...got };
      });
      for (const [i, part] of parts.entries()) {
        const want = r.parts[i];
        const bad = (what: string) => new HfModelError('HF_BAD_TENSOR', what, { file: part.f.path, field: part.hf });
        if (want.u8 ? part.e.dtype !== 'U8' : !SAFETENSORS_FLOAT_DTYPES[part.e.dtype]) throw bad(`${part.hf} is ${part.e.dtype}; ${want.u8 ? 'MXFP4 blocks and scales are U8' : 'weights must be F32, F16 or BF16'}`);
        if (want.shape.some((d) => !Number.isInteger(d))) throw bad(`${part.hf}: MXFP4 rows are whole 32-element blocks; the config's ${r.name} is ${JSON.stringify(r.shape)}`);
        if (part.e.shape.length !== want.shape.length || part.e.shape.some((d, k) => d !== want.shape[k])) {
          throw bad(`${part.hf} has shape ${JSON.stringify(part.e.shape)}, config.json implies ${JSON.stringify(want.shape)}`);
        }
      }
      const raw = (k: number) => parts[k].f.read(parts[k].e.begin, parts[k].e.end - parts[k].e.begin);
      const floatDtype = (k: number) => SAFETENSORS_FLOAT_DTYPES[parts[k].e.dtype];
      if (r.kind === 'mxfp4') {
        const [E, N, K] = r.sourceShape;
        return {
          name: r.name,
          dtype: 'mxfp4',
          shape: r.shape,
          quant: null,
          read: async () => {
            const [blocks, scales] = await Promise.all([raw(0), raw(1)]);
            const nan = scales.indexOf(255);
            if (nan >= 0) {
              const row = Math.floor(nan / (K / 32));
              throw new HfModelError('HF_BAD_TENSOR', `${parts[1].hf}: scale 255 (E8M0 NaN) at expert ${Math.floor(row / N)}, row ${row % N}, block ${nan % (K / 32)}; MXFP4 scales must be 0..254`, { file: parts[1].f.path, field: parts[1].hf });
            }
            const packed = mxfp4FromHf(blocks, scales, E * N, K, parts[0].hf);
            return r.split === undefined ? packed : takeRows(packed, E * N, (K / 32) * 17, r.split);
          },
        };
      }
      const dtype = floatDtype(0);
      const eb = dtypeElementBytes(dtype);
      return {
        name: r.name,
        dtype,
        shape: r.shape,
        quant: null,
        read: async () => {
          const b = await raw(0);
          if (r.kind === 'dense_experts') {
            // [E, K, N'] for x @ W → [E, N, K]; N' = 2N with gate/up interleaved.
            const [E, K, Np] = r.sourceShape;
            return transposeExperts(b, E, K, Np, eb, r.split);
          }
          // Interleaved gate/up bias [E, 2F]: every other element.
          return r.split === undefined ? b : takeRows(b, b.length / eb, eb, r.split);
        },
      };
    });
    if (config.moe) notes.push(`${config.moe.n_experts} experts: ${tensors.some((t) => t.dtype === 'mxfp4') ? 'MXFP4 blocks re-packed into ggml mxfp4 blocks (lossless)' : 'dense float experts transposed to [E, N, K]'}; gate_up_proj split into gate (even rows) and up (odd rows)`);
    return {
      format: 'hf',
      config,
      tokenizer: { model: 'hf', source: tokPath },
      files: [cfgPath, ...(weightMap ? [indexPath] : []), ...shardFiles.map((s) => join(dir, s)), tokPath],
      tensors,
      notes,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

interface Recipe {
  /** Canonical name and IEBIN shape. */
  name: string;
  shape: number[];
  /** HF tensors it is made of, with the shape and kind each must have. */
  hf: string[];
  parts: Array<{ shape: number[]; u8: boolean }>;
  kind: 'plain' | 'mxfp4' | 'dense_experts';
  /** The HF tensor's logical [E, N, K] (mxfp4) or [E, K, N] (dense experts). */
  sourceShape: number[];
  /** gate/up interleaved: keep the even (0) or odd (1) rows. */
  split?: 0 | 1;
}

/** How each expected tensor is read from the HF tensors present (`found` decides MXFP4 or dense experts). */
function expected(c: ModelConfig, found: ReadonlyMap<string, unknown>): Recipe[] {
  return expectedTensors(c).map((x): Recipe => {
    const m = /^blk\.(\d+)\.ffn_(gate|up|down)_exps\.(weight|bias)$/.exec(x.name);
    if (!m || (m[2] === 'down' && m[3] === 'bias')) return { name: x.name, shape: x.shape, hf: [hfName(x.name)], parts: [{ shape: x.shape, u8: false }], kind: 'plain', sourceShape: x.shape };
    const L = `model.layers.${m[1]}.mlp.experts.`;
    const [E, N, K] = x.shape;
    const fused = m[2] === 'down' ? 'down_proj' : 'gate_up_proj';
    const split = m[2] === 'gate' ? 0 : m[2] === 'up' ? 1 : undefined;
    const rows = split === undefined ? N : 2 * N;
    if (m[3] === 'bias') return { name: x.name, shape: x.shape, hf: [`${L}gate_up_proj_bias`], parts: [{ shape: [E, rows], u8: false }], kind: 'plain', sourceShape: [E, rows], split };
    if (found.has(`${L}${fused}`) && !found.has(`${L}${fused}_blocks`)) {
      return { name: x.name, shape: x.shape, hf: [`${L}${fused}`], parts: [{ shape: [E, K, rows], u8: false }], kind: 'dense_experts', sourceShape: [E, K, rows], split };
    }
    return {
      name: x.name,
      shape: x.shape,
      hf: [`${L}${fused}_blocks`, `${L}${fused}_scales`],
      parts: [{ shape: [E, rows, K / 32, 16], u8: true }, { shape: [E, rows, K / 32], u8: true }],
      kind: 'mxfp4',
      sourceShape: [E, rows, K],
      split,
    };
  });
}

/** Rows `parity`, parity + 2, … of a row-major tensor of `rows` rows of `rowBytes` bytes. */
function takeRows(src: Uint8Array, rows: number, rowBytes: number, parity: 0 | 1): Uint8Array {
  const out = new Uint8Array((rows / 2) * rowBytes);
  for (let r = parity, o = 0; r < rows; r += 2, o += rowBytes) out.set(src.subarray(r * rowBytes, (r + 1) * rowBytes), o);
  return out;
}

/** Stacked [E, K, N'] matrices (HF's x @ W form) → [E, N, K], N = N' or, with `split`, every other of N' columns. */
function transposeExperts(src: Uint8Array, E: number, K: number, Np: number, eb: number, split: 0 | 1 | undefined): Uint8Array {
  const N = split === undefined ? Np : Np / 2;
  const out = new Uint8Array(E * N * K * eb);
  for (let e = 0; e < E; e++) {
    for (let n = 0; n < N; n++) {
      const col = split === undefined ? n : 2 * n + split;
      for (let k = 0; k < K; k++) {
        const s = ((e * K + k) * Np + col) * eb;
        const d = ((e * N + n) * K + k) * eb;
        for (let i = 0; i < eb; i++) out[d + i] = src[s + i];
      }
    }
  }
  return out;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

export interface WriteHfOptions {
  /** Number of safetensors files; more than 1 writes model.safetensors.index.json. */
  shards?: number;
}

/** ModelConfig → config.json (the inverse of {@link hfConfigToModelConfig}). */
export function modelConfigToHfConfig(c: ModelConfig, dtype: FloatDtype): Record<string, unknown> {
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', 'gpt-oss': 'GptOssForCausalLM' }[c.architecture];
  const rs = c.rope_scaling;
  const gptOss = c.architecture === 'gpt-oss';
  return {
    architectures: [arch],
    model_type: gptOss ? 'gpt_oss' : c.architecture,
    hidden_size: c.dim,
    num_hidden_layers: c.n_layers,
    num_attention_heads: c.n_heads,
    num_key_value_heads: c.n_kv_heads,
    head_dim: c.head_dim,
    intermediate_size: c.ffn_dim,
    vocab_size: c.vocab_size,
    max_position_embeddings: c.context_length,
    rope_theta: c.rope_theta,
    rope_scaling:
      rs &&
      (rs.type === 'llama3'
        ? { rope_type: 'llama3', factor: rs.factor, low_freq_factor: rs.low_freq_factor, high_freq_factor: rs.high_freq_factor, original_max_position_embeddings: rs.original_context_length }
        : { rope_type: 'yarn', factor: rs.factor, beta_fast: rs.beta_fast, beta_slow: rs.beta_slow, original_max_position_embeddings: rs.original_context_length, truncate: rs.truncate }),
    rms_norm_eps: c.norm_eps,
    tie_word_embeddings: c.tied_classifier,
    hidden_act: 'silu',
    bos_token_id: c.bos_id,
    eos_token_id: c.eos_id,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    ...(c.sliding_window !== null && !gptOss ? { sliding_window: c.sliding_window, use_sliding_window: true } : {}),
    ...(gptOss && c.moe
      ? {
          attention_bias: c.attn_qkv_bias,
          sliding_window: c.sliding_window,
          layer_types: (c.sliding_layers ?? Array.from({ length: c.n_layers }, () => c.sliding_window !== null)).map((s) => (s ? 'sliding_attention' : 'full_attention')),
          num_local_experts: c.moe.n_experts,
          num_experts_per_tok: c.moe.experts_per_token,
          experts_per_token: c.moe.experts_per_token,
          swiglu_limit: c.moe.swiglu_limit,
        }
      : {}),
  };
}

/**
 * Writes a model source as a Hugging Face directory. Adjacent-pair sources get their Q/K
 * rows (and biases) permuted into HF's rotate-half order, as HF's own conversion does.
 * Tensors stream one at a time.
 */
export async function writeHfDir(source: ModelSource, outDir: string, options: WriteHfOptions = {}): Promise<void> {
  const c = source.config;
  if (c.rope_style !== 'adjacent' && c.rope_style !== 'rotate_half') throw new RangeError(`unknown rope style ${String(c.rope_style)}`);
  if (c.moe || c.attn_sinks || c.attn_output_bias) throw new HfModelError('HF_UNSUPPORTED_ARCHITECTURE', `writing ${c.architecture} models as Hugging Face directories is not supported (llama, mistral and qwen2 are)`, { file: outDir, field: 'architecture' });
  for (const t of source.tensors) if (t.quant) throw new HfModelError('HF_BAD_TENSOR', `${t.name} is quantized; Hugging Face directories hold F32/F16/BF16`, { field: t.name });
  await mkdir(outDir, { recursive: true });
  const permute = c.rope_style === 'adjacent';
  const qPerm = adjacentToRotateHalfPermutation(c.n_heads, c.head_dim);
  const kPerm = adjacentToRotateHalfPermutation(c.n_kv_heads, c.head_dim);
  const read = async (t: SourceTensor): Promise<Uint8Array> => {
    const b = await t.read();
    if (!permute) return b;
    const m = /\.attn_([qk])\.(weight|bias)$/.exec(t.name);
    if (!m) return b;
    const rowBytes = t.shape.length === 2 ? t.shape[1] * dtypeElementBytes(t.dtype as FloatDtype) : dtypeElementBytes(t.dtype as FloatDtype);
    return permuteRows(b, rowBytes, m[1] === 'q' ? qPerm : kPerm);
  };
  const stDtype = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;
  const n = Math.max(1, Math.min(options.shards ?? 1, source.tensors.length));
  const sizes = source.tensors.map((t) => t.shape.reduce((a, b) => a * b, 1) * dtypeElementBytes(t.dtype as FloatDtype));
  const total = sizes.reduce((a, b) => a + b, 0);
  // Cut into n shards of roughly equal bytes, in tensor order.
  const groups: SourceTensor[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  source.tensors.forEach((t, i) => {
    const g = Math.min(n - 1, Math.floor((acc * n) / total));
    groups[g].push(t);
    acc += sizes[i];
  });
  const nonEmpty = groups.filter((g) => g.length);
  const names = nonEmpty.length === 1 ? ['model.safetensors'] : nonEmpty.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(nonEmpty.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < nonEmpty.length; s++) {
    const ts = nonEmpty[s];
    for (const t of ts) weightMap[hfName(t.name)] = names[s];
    await writeSafetensors(join(outDir, names[s]), ts.map((t) => ({ name: hfName(t.name), dtype: stDtype[t.dtype as FloatDtype], shape: t.shape })), (i) => read(ts[i]), { format: 'pt' });
  }
  if (nonEmpty.length > 1) await writeFile(join(outDir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  const dtype = (source.tensors.find((t) => t.shape.length === 2)?.dtype ?? 'f32') as FloatDtype;
  if (source.tokenizer.model === 'hf') await copyFile(source.tokenizer.source, join(outDir, 'tokenizer.json'));
  else if (source.tokenizer.model === 'spm') await writeFile(join(outDir, 'tokenizer.json'), synthHfTokenizerJson(source.tokenizer));
  else throw new HfModelError('HF_BAD_TOKENIZER', `a ${source.tokenizer.model} tokenizer cannot be written as tokenizer.json`, { file: outDir });
  // config.json last: a directory without it is not mistaken for a model.
  await writeFile(join(outDir, 'config.json.partial'), JSON.stringify(modelConfigToHfConfig(c, dtype), null, 2));
  await rename(join(outDir, 'config.json.partial'), join(outDir, 'config.json'));
}
