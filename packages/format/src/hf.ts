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
 * transposed into the same [E, N, K] tensors, kept float. `writeHfDir` writes gpt-oss models back
 * in that layout (config.json with the keys of openai/gpt-oss-20b's), MXFP4 experts streamed.
 */
import { constants } from 'node:fs';
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HfModelError, type FormatErrorCode } from './errors.js';
import { RandomAccessFile, jsonErrorPosition, readRegularFile } from './file.js';
import {
  MAX_CHAT_TEMPLATE_BYTES,
  chatTemplateProblem,
  pickChatTemplate,
  pickSpecialToken,
  type ChatTemplateSpec,
} from './chat-template.js';
import { isBlockDtype, mxfp4FromHf, mxfp4ToHf } from './blocks.js';
import {
  CONFIG_LIMITS,
  adjacentToRotateHalfPermutation,
  configProblems,
  expectedTensors,
  permuteRows,
  type Architecture,
  type ModelConfig,
} from './llama.js';
import { dtypeElementBytes, type FloatDtype } from './layout.js';
import {
  SAFETENSORS_DTYPE_BYTES,
  SAFETENSORS_FLOAT_DTYPES,
  readSafetensorsHeader,
  writeSafetensors,
  type SafetensorsEntry,
} from './safetensors.js';
import { synthGpt2TokenizerJson, synthHfTokenizerJson } from './synth.js';
import { ByteTaker, readChunks, type ModelSource, type SourceTensor } from './source.js';
import { commitRename, createStagingDir, discardTemp, fsyncDir, removeStaleTemps, syncFile, writeNewFile } from './safe-write.js';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  GptOssForCausalLM: 'gpt-oss',
};
const MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2', gpt_oss: 'gpt-oss' };
/** HF per-layer tensors of gpt-oss experts that make up, or are split into, canonical tensors. */
const EXPERT_PARTS = [
  'gate_up_proj_blocks',
  'gate_up_proj_scales',
  'gate_up_proj_bias',
  'gate_up_proj',
  'down_proj_blocks',
  'down_proj_scales',
  'down_proj',
].map((p) => `mlp.experts.${p}`);
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

async function readJson(path: string, code: FormatErrorCode, what: string, cap = MAX_JSON): Promise<Record<string, unknown>> {
  const bytes = await readRegularFile(
    path,
    cap,
    (c, message) =>
      new HfModelError(c, message === 'does not exist' ? `is missing; a Hugging Face model directory needs ${what}` : message, {
        file: path,
      }),
    code,
  );
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    // Say where, never what: the message must not quote the file's bytes.
    throw new HfModelError(code, e instanceof TypeError ? 'is not valid UTF-8' : `is not valid JSON (${jsonErrorPosition(e)})`, {
      file: path,
    });
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
  const arch =
    (typeof archs[0] === 'string' && ARCHITECTURES[archs[0]]) || (typeof cfg.model_type === 'string' && MODEL_TYPES[cfg.model_type]);
  if (!arch)
    fail(
      'architectures',
      `is ${JSON.stringify(cfg.architectures ?? cfg.model_type)}; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
      'HF_UNSUPPORTED_ARCHITECTURE',
    );
  const int = (k: string, dflt?: number): number => {
    const v = cfg[k] ?? dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      fail(k, `must be a non-negative integer, got ${JSON.stringify(cfg[k])}`);
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
  if (cfg.attention_bias === true && arch !== 'qwen2' && !gptOss)
    fail('attention_bias', 'is true; biases on the attention output projection are not supported');
  if (cfg.mlp_bias === true) fail('mlp_bias', 'is true; MLP biases are not supported');
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nLayers = int('num_hidden_layers');
  // Before anything is sized by it (layer_types below, the expected tensors later).
  if (nLayers < 1 || nLayers > CONFIG_LIMITS.n_layers)
    fail('num_hidden_layers', `must be an integer in 1..${CONFIG_LIMITS.n_layers}, got ${nLayers}`);
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
      rope_scaling = {
        type: 'llama3',
        factor: f('factor'),
        low_freq_factor: f('low_freq_factor'),
        high_freq_factor: f('high_freq_factor'),
        original_context_length: f('original_max_position_embeddings'),
      };
    } else if (type === 'yarn' && gptOss) {
      // HF's defaults: beta_fast 32, beta_slow 1, truncate true; no attention_factor / mscale overrides.
      for (const k of ['attention_factor', 'mscale', 'mscale_all_dim'])
        if (r[k] !== undefined && r[k] !== null)
          fail(`rope_scaling.${k}`, 'is set; ie applies YaRN with its default attention scaling 0.1*ln(factor) + 1 only');
      const truncate = r.truncate ?? true;
      if (typeof truncate !== 'boolean') fail('rope_scaling.truncate', 'must be true or false');
      const orig = r.original_max_position_embeddings ?? cfg.initial_context_length;
      if (typeof orig !== 'number' || !Number.isSafeInteger(orig) || orig < 1)
        fail('rope_scaling.original_max_position_embeddings', 'must be a positive integer');
      rope_scaling = {
        type: 'yarn',
        factor: f('factor'),
        original_context_length: orig as number,
        beta_fast: f('beta_fast', 32),
        beta_slow: f('beta_slow', 1),
        truncate: truncate as boolean,
      };
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
    if (!Array.isArray(types) || types.length !== nLayers)
      fail('layer_types', `must list ${nLayers} entries (num_hidden_layers), got ${JSON.stringify(types).slice(0, 80)}`);
    slidingLayers = (types as unknown[]).map((t, i) => {
      if (t === 'sliding_attention') return true;
      if (t === 'full_attention') return false;
      return fail(`layer_types[${i}]`, `is ${JSON.stringify(t)}; gpt-oss layers are "sliding_attention" or "full_attention"`);
    });
    moe = {
      n_experts: int('num_local_experts'),
      experts_per_token: int('num_experts_per_tok', cfg.experts_per_token as number | undefined),
      swiglu_limit: num('swiglu_limit', 7),
    };
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
    // Llama 3 lists several: the first is EOS, the others (e.g. <|eot_id|>) end a turn too.
    ...(Array.isArray(cfg.eos_token_id) && cfg.eos_token_id.length > 1
      ? { stop_ids: (cfg.eos_token_id as unknown[]).slice(1).filter((x): x is number => typeof x === 'number' && x !== eosId) }
      : {}),
  };
  // Checked here, before anything is sized by the config, and named by config.json's keys.
  const problem = configProblems(config)[0];
  if (problem) {
    const keys: Record<string, string> = {
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
    };
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
  const chat = await readHfChatTemplate(dir);
  if (typeof tok.model !== 'object' || tok.model === null)
    throw new HfModelError('HF_BAD_TOKENIZER', 'has no "model" object; is it a tokenizers-library tokenizer.json?', {
      file: tokPath,
      field: 'model',
    });

  // Which shard files hold which tensors.
  let shardFiles: string[];
  const indexPath = join(dir, 'model.safetensors.index.json');
  let weightMap: Map<string, string> | null = null;
  if (await exists(indexPath)) {
    const idx = await readJson(indexPath, 'HF_BAD_INDEX', 'model.safetensors.index.json');
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
      throw new HfModelError('HF_BAD_INDEX', 'has no weight_map object', { file: indexPath, field: 'weight_map' });
    weightMap = new Map();
    for (const [k, v] of Object.entries(wm)) {
      if (typeof v !== 'string' || v !== basename(v) || v.startsWith('.') || !v.endsWith('.safetensors')) {
        throw new HfModelError('HF_BAD_INDEX', `maps ${k} to ${JSON.stringify(v)}, not a .safetensors file in this directory`, {
          file: indexPath,
          field: `weight_map.${k}`,
        });
      }
      weightMap.set(k, v);
    }
    shardFiles = [...new Set(weightMap.values())].sort();
  } else if (await exists(join(dir, 'model.safetensors'))) {
    shardFiles = ['model.safetensors'];
  } else {
    throw new HfModelError(
      'HF_NOT_A_MODEL_DIR',
      'has neither model.safetensors nor model.safetensors.index.json (pytorch .bin weights are not supported; save with safetensors)',
      { file: dir },
    );
  }

  const opened: RandomAccessFile[] = [];
  const closeAll = async () => {
    for (const f of opened) await f.close().catch(() => undefined);
  };
  try {
    /** Every weight by HF name. */
    const found = new Map<string, { f: RandomAccessFile; e: SafetensorsEntry }>();
    const notes: string[] = [
      `Hugging Face ${config.architecture} model, ${shardFiles.length} safetensors file(s); rope_style rotate_half recorded, Q/K rows kept as stored`,
    ];
    const isExpertPart = (name: string) =>
      /^model\.layers\.\d+\./.test(name) && EXPERT_PARTS.includes(name.replace(/^model\.layers\.\d+\./, ''));
    for (const sf of shardFiles) {
      const p = join(dir, sf);
      const f = await RandomAccessFile.open(p, (code, message) => new HfModelError(code, message, { file: p }));
      opened.push(f);
      const h = await readSafetensorsHeader(f);
      for (const e of h.entries) {
        if (weightMap && weightMap.get(e.name) !== sf)
          throw new HfModelError('HF_BAD_INDEX', `${e.name} is in ${sf} but the index maps it to ${weightMap.get(e.name) ?? 'nothing'}`, {
            file: indexPath,
            field: `weight_map.${e.name}`,
          });
        const canon = canonicalHfName(e.name);
        if (canon === null) {
          notes.push(`${e.name} ignored (RoPE frequencies are computed)`);
          continue;
        }
        if (canon === undefined && !isExpertPart(e.name))
          throw new HfModelError('HF_UNEXPECTED_TENSOR', `${e.name} is not part of a llama-family or gpt-oss model`, {
            file: p,
            field: e.name,
          });
        if (found.has(e.name)) throw new HfModelError('HF_BAD_INDEX', `${e.name} appears in two files`, { file: p, field: e.name });
        found.set(e.name, { f, e });
      }
    }
    if (weightMap) {
      for (const k of weightMap.keys())
        if (canonicalHfName(k) !== null && !found.has(k))
          throw new HfModelError('HF_BAD_INDEX', `${k} is in the index but not in ${weightMap.get(k)}`, {
            file: indexPath,
            field: `weight_map.${k}`,
          });
    }
    if (config.tied_classifier && found.has('lm_head.weight')) {
      found.delete('lm_head.weight');
      notes.push('lm_head.weight dropped: tie_word_embeddings is true');
    }
    const hasBlocks = [...found.keys()].find((k) => k.endsWith('_blocks'));
    if (hasBlocks) {
      const qc = cfg.quantization_config;
      const method = typeof qc === 'object' && qc !== null ? (qc as Record<string, unknown>).quant_method : undefined;
      if (method !== 'mxfp4')
        throw new HfModelError(
          'HF_BAD_CONFIG',
          `is ${JSON.stringify(method)}, but ${hasBlocks} is an MXFP4 block tensor; expected "mxfp4"`,
          { file: cfgPath, field: 'quantization_config.quant_method' },
        );
      for (const [k, v] of [
        ['hidden_size', config.dim],
        ['intermediate_size', config.ffn_dim],
      ] as const) {
        if (v % 32 !== 0)
          throw new HfModelError(
            'HF_BAD_CONFIG',
            `is ${v}; MXFP4 experts need whole 32-element blocks per row, so it must be a multiple of 32`,
            { file: cfgPath, field: k },
          );
      }
    }
    const recipes = expected(config, found);
    const used = new Set(recipes.flatMap((r) => r.hf));
    for (const [hf, { f }] of found)
      if (!used.has(hf))
        throw new HfModelError(
          'HF_UNEXPECTED_TENSOR',
          `${hf} does not fit the config (${config.n_layers} layers${config.moe ? `, ${config.moe.n_experts} experts` : ''})`,
          { file: f.path, field: hf },
        );
    const tensors: SourceTensor[] = recipes.map((r) => {
      const parts = r.hf.map((hf) => {
        const got = found.get(hf);
        if (!got) throw new HfModelError('HF_MISSING_TENSOR', `${hf} is missing`, { file: dir, field: hf });
        return { hf, ...got };
      });
      for (const [i, part] of parts.entries()) {
        const want = r.parts[i];
        const bad = (what: string) => new HfModelError('HF_BAD_TENSOR', what, { file: part.f.path, field: part.hf });
        if (want.u8 ? part.e.dtype !== 'U8' : !SAFETENSORS_FLOAT_DTYPES[part.e.dtype])
          throw bad(`${part.hf} is ${part.e.dtype}; ${want.u8 ? 'MXFP4 blocks and scales are U8' : 'weights must be F32, F16 or BF16'}`);
        if (want.shape.some((d) => !Number.isInteger(d)))
          throw bad(`${part.hf}: MXFP4 rows are whole 32-element blocks; the config's ${r.name} is ${JSON.stringify(r.shape)}`);
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
              throw new HfModelError(
                'HF_BAD_TENSOR',
                `${parts[1].hf}: scale 255 (E8M0 NaN) at expert ${Math.floor(row / N)}, row ${row % N}, block ${nan % (K / 32)}; MXFP4 scales must be 0..254`,
                { file: parts[1].f.path, field: parts[1].hf },
              );
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
    if (config.moe)
      notes.push(
        `${config.moe.n_experts} experts: ${tensors.some((t) => t.dtype === 'mxfp4') ? 'MXFP4 blocks re-packed into ggml mxfp4 blocks (lossless)' : 'dense float experts transposed to [E, N, K]'}; gate_up_proj split into gate (even rows) and up (odd rows)`,
      );
    return {
      format: 'hf',
      config,
      tokenizer: { model: 'hf', source: tokPath },
      files: [cfgPath, ...(weightMap ? [indexPath] : []), ...shardFiles.map((s) => join(dir, s)), tokPath, ...chat.files],
      tensors,
      notes: [...notes, ...chat.notes],
      ...(chat.spec ? { chat: chat.spec } : {}),
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
    if (!m || (m[2] === 'down' && m[3] === 'bias'))
      return {
        name: x.name,
        shape: x.shape,
        hf: [hfName(x.name)],
        parts: [{ shape: x.shape, u8: false }],
        kind: 'plain',
        sourceShape: x.shape,
      };
    const L = `model.layers.${m[1]}.mlp.experts.`;
    const [E, N, K] = x.shape;
    const fused = m[2] === 'down' ? 'down_proj' : 'gate_up_proj';
    const split = m[2] === 'gate' ? 0 : m[2] === 'up' ? 1 : undefined;
    const rows = split === undefined ? N : 2 * N;
    if (m[3] === 'bias')
      return {
        name: x.name,
        shape: x.shape,
        hf: [`${L}gate_up_proj_bias`],
        parts: [{ shape: [E, rows], u8: false }],
        kind: 'plain',
        sourceShape: [E, rows],
        split,
      };
    if (found.has(`${L}${fused}`) && !found.has(`${L}${fused}_blocks`)) {
      return {
        name: x.name,
        shape: x.shape,
        hf: [`${L}${fused}`],
        parts: [{ shape: [E, K, rows], u8: false }],
        kind: 'dense_experts',
        sourceShape: [E, K, rows],
        split,
      };
    }
    return {
      name: x.name,
      shape: x.shape,
      hf: [`${L}${fused}_blocks`, `${L}${fused}_scales`],
      parts: [
        { shape: [E, rows, K / 32, 16], u8: true },
        { shape: [E, rows, K / 32], u8: true },
      ],
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

/** The largest tokenizer_config.json read (real ones, with their added_tokens_decoder, are under 1 MiB). */
const MAX_TOKENIZER_CONFIG = 16 << 20;

/**
 * The chat template of a Hugging Face directory and the special-token strings it uses: newer
 * transformers save the template as chat_template.jinja (which then wins, as it does there), older
 * ones as tokenizer_config.json's `chat_template` (a string, or a list of `{name, template}` whose
 * `default` is taken); `bos_token` / `eos_token` come from tokenizer_config.json. Neither file is
 * required; a present one that is malformed or too large is HF_BAD_TOKENIZER_CONFIG.
 */
export async function readHfChatTemplate(dir: string): Promise<{ spec: ChatTemplateSpec | null; files: string[]; notes: string[] }> {
  const files: string[] = [];
  const notes: string[] = [];
  const fail = (file: string, field: string | undefined, message: string): never => {
    throw new HfModelError('HF_BAD_TOKENIZER_CONFIG', message, { file, ...(field ? { field } : {}) });
  };
  const cfgPath = join(dir, 'tokenizer_config.json');
  let cfg: Record<string, unknown> = {};
  if (await exists(cfgPath)) {
    cfg = await readJson(cfgPath, 'HF_BAD_TOKENIZER_CONFIG', 'tokenizer_config.json', MAX_TOKENIZER_CONFIG);
    files.push(cfgPath);
  }
  let template: string | null = null;
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (await exists(jinjaPath)) {
    const bytes = await readRegularFile(
      jinjaPath,
      MAX_CHAT_TEMPLATE_BYTES,
      (code, message) => new HfModelError(code, message, { file: jinjaPath }),
      'HF_BAD_TOKENIZER_CONFIG',
    );
    let text = '';
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      fail(jinjaPath, undefined, 'is not valid UTF-8');
    }
    const problem = chatTemplateProblem(text);
    if (problem) fail(jinjaPath, undefined, problem);
    template = text;
    files.push(jinjaPath);
  } else {
    const picked = pickChatTemplate(cfg.chat_template);
    if (picked.problem !== undefined) fail(cfgPath, picked.field, picked.problem);
    else template = picked.template;
    if (template === null && Array.isArray(cfg.chat_template))
      notes.push('tokenizer_config.json lists chat templates but none named "default": no chat template recorded');
  }
  const tokens: { bos_token?: string; eos_token?: string } = {};
  for (const k of ['bos_token', 'eos_token'] as const) {
    const t = pickSpecialToken(cfg[k]);
    if (t.problem !== undefined) fail(cfgPath, k, t.problem);
    else if (t.token !== undefined) tokens[k] = t.token;
  }
  if (template === null) return { spec: null, files, notes };
  notes.push(`chat template from ${basename(files[files.length - 1])} (${Buffer.byteLength(template, 'utf8')} bytes)`);
  return { spec: { template, ...tokens }, files, notes };
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
  /** Number of safetensors files; more than 1 writes model.safetensors.index.json. Default: enough files of at most `maxShardBytes`, else 1. */
  shards?: number;
  /** When `shards` is not given: the most bytes of tensors per file (transformers' save_pretrained cuts at 5 GB). Default: no limit. */
  maxShardBytes?: number;
}

/** What config.json needs beyond the ModelConfig (gpt-oss). */
export interface HfConfigExtras {
  /** `pad_token_id` (gpt-oss checkpoints name <|endoftext|>); null when unknown. */
  pad_token_id?: number | null;
  /** Whether the experts are stored as MXFP4 blocks (adds `quantization_config`). */
  mxfp4?: boolean;
}

/** ModelConfig → config.json (the inverse of {@link hfConfigToModelConfig}); gpt-oss gets exactly the keys of openai/gpt-oss-20b's config.json. */
export function modelConfigToHfConfig(c: ModelConfig, dtype: FloatDtype, extras: HfConfigExtras = {}): Record<string, unknown> {
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', 'gpt-oss': 'GptOssForCausalLM' }[
    c.architecture
  ];
  const rs = c.rope_scaling;
  const rope_scaling =
    rs &&
    (rs.type === 'llama3'
      ? {
          rope_type: 'llama3',
          factor: rs.factor,
          low_freq_factor: rs.low_freq_factor,
          high_freq_factor: rs.high_freq_factor,
          original_max_position_embeddings: rs.original_context_length,
        }
      : {
          beta_fast: rs.beta_fast,
          beta_slow: rs.beta_slow,
          factor: rs.factor,
          original_max_position_embeddings: rs.original_context_length,
          rope_type: 'yarn',
          truncate: rs.truncate,
        });
  if (c.architecture === 'gpt-oss' && c.moe) {
    // openai/gpt-oss-20b's keys, in its (sorted) order. It names no BOS: one is written only when it is not the EOS (the importer's stand-in).
    return {
      architectures: [arch],
      attention_bias: c.attn_qkv_bias,
      attention_dropout: 0,
      ...(c.bos_id !== c.eos_id ? { bos_token_id: c.bos_id } : {}),
      eos_token_id: c.eos_id,
      experts_per_token: c.moe.experts_per_token,
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
      num_experts_per_tok: c.moe.experts_per_token,
      num_hidden_layers: c.n_layers,
      num_key_value_heads: c.n_kv_heads,
      num_local_experts: c.moe.n_experts,
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
      rope_scaling,
      rope_theta: c.rope_theta,
      router_aux_loss_coef: 0.9,
      sliding_window: c.sliding_window,
      swiglu_limit: c.moe.swiglu_limit,
      tie_word_embeddings: c.tied_classifier,
      transformers_version: '4.55.0.dev0',
      use_cache: true,
      vocab_size: c.vocab_size,
    };
  }
  return {
    architectures: [arch],
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
    rope_scaling,
    rms_norm_eps: c.norm_eps,
    tie_word_embeddings: c.tied_classifier,
    hidden_act: 'silu',
    bos_token_id: c.bos_id,
    eos_token_id: c.eos_id,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    ...(c.sliding_window !== null ? { sliding_window: c.sliding_window, use_sliding_window: true } : {}),
  };
}

/** One tensor of the safetensors files being written. */
interface HfTensorOut {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'U8';
  shape: number[];
  data: () => Promise<Uint8Array | AsyncIterable<Uint8Array>> | AsyncIterable<Uint8Array>;
}

const ST_DTYPE = { f32: 'F32', f16: 'F16', bf16: 'BF16' } as const;

function hfBytes(t: HfTensorOut): number {
  return t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[t.dtype];
}

/** A canonical float tensor under its one-to-one HF name, streamed as it is. */
function plainOut(t: SourceTensor): HfTensorOut {
  return { name: hfName(t.name), dtype: ST_DTYPE[t.dtype as FloatDtype], shape: t.shape, data: () => readChunks(t) };
}

/** Llama-family tensors: adjacent-pair sources get their Q/K rows (and biases) permuted into HF's rotate-half order, as HF's own conversion does. */
function llamaHfTensors(source: ModelSource): HfTensorOut[] {
  const c = source.config;
  const permute = c.rope_style === 'adjacent';
  const qPerm = adjacentToRotateHalfPermutation(c.n_heads, c.head_dim);
  const kPerm = adjacentToRotateHalfPermutation(c.n_kv_heads, c.head_dim);
  return source.tensors.map((t) => {
    const m = /\.attn_([qk])\.(weight|bias)$/.exec(t.name);
    if (!permute || !m) return plainOut(t);
    const eb = dtypeElementBytes(t.dtype as FloatDtype);
    const rowBytes = t.shape.length === 2 ? t.shape[1] * eb : eb;
    return { ...plainOut(t), data: async () => permuteRows(await t.read(), rowBytes, m[1] === 'q' ? qPerm : kPerm) };
  });
}

/**
 * gpt-oss tensors in openai/gpt-oss-20b's layout: ffn_gate_exps and ffn_up_exps become one
 * `gate_up_proj` with gate rows even and up rows odd (their biases likewise), ffn_down_exps
 * `down_proj`; mxfp4 experts as `*_blocks` U8 [E, rows, K/32, 16] (HF nibble order) and `*_scales`
 * U8 [E, rows, K/32], streamed; float experts as the dequantized checkpoint's x @ W tensors [E, K, rows].
 */
function gptOssHfTensors(source: ModelSource, outDir: string): HfTensorOut[] {
  const by = new Map(source.tensors.map((t) => [t.name, t]));
  const out: HfTensorOut[] = [];
  for (const t of source.tensors) {
    const m = /^blk\.(\d+)\.ffn_(gate|up|down)_exps\.(weight|bias)$/.exec(t.name);
    if (!m) {
      out.push(plainOut(t));
      continue;
    }
    if (m[2] === 'up') continue; // written with gate
    if (m[2] === 'down' && m[3] === 'bias') {
      out.push(plainOut(t));
      continue;
    }
    const L = `model.layers.${m[1]}.mlp.experts.`;
    const parts = m[2] === 'gate' ? [t, by.get(t.name.replace('_gate_', '_up_'))] : [t];
    if (parts.some((p) => p === undefined || p.dtype !== t.dtype)) {
      throw new HfModelError(
        'HF_BAD_TENSOR',
        `${t.name} and ${t.name.replace('_gate_', '_up_')} must both be present and of one dtype to form gate_up_proj`,
        { file: outDir, field: t.name },
      );
    }
    const ps = parts as SourceTensor[];
    const name = `${L}${m[2] === 'gate' ? 'gate_up_proj' : 'down_proj'}`;
    if (m[3] === 'bias') {
      const [E, N] = t.shape;
      const eb = dtypeElementBytes(t.dtype as FloatDtype);
      out.push({
        name: `${name}_bias`,
        dtype: ST_DTYPE[t.dtype as FloatDtype],
        shape: [E, 2 * N],
        data: async () => interleaveRows(await Promise.all(ps.map((p) => p.read())), E * N, eb),
      });
      continue;
    }
    const [E, N, K] = t.shape;
    const rows = N * ps.length;
    if (t.dtype === 'mxfp4') {
      const pair = mxfp4HfPair(ps, E * N, K);
      out.push({ name: `${name}_blocks`, dtype: 'U8', shape: [E, rows, K / 32, 16], data: pair.blocks });
      out.push({ name: `${name}_scales`, dtype: 'U8', shape: [E, rows, K / 32], data: pair.scales });
      continue;
    }
    if (isBlockDtype(t.dtype))
      throw new HfModelError('HF_BAD_TENSOR', `${t.name} is ${t.dtype}; gpt-oss experts are written as MXFP4 or float`, {
        file: outDir,
        field: t.name,
      });
    const eb = dtypeElementBytes(t.dtype as FloatDtype);
    out.push({
      name,
      dtype: ST_DTYPE[t.dtype as FloatDtype],
      shape: [E, K, rows],
      data: async () => denseExpertsXw(await Promise.all(ps.map((p) => p.read())), E, N, K, eb),
    });
  }
  return out;
}

/** Row i of part p → row i * parts + p (gate/up interleaving); `rows` rows of `rowBytes` per part. */
function interleaveRows(parts: Uint8Array[], rows: number, rowBytes: number): Uint8Array {
  const P = parts.length;
  const out = new Uint8Array(rows * P * rowBytes);
  for (let i = 0; i < rows; i++)
    for (let p = 0; p < P; p++) out.set(parts[p].subarray(i * rowBytes, (i + 1) * rowBytes), (i * P + p) * rowBytes);
  return out;
}

/** Stacked [E, N, K] parts → one [E, K, N * parts] x @ W tensor, column n * parts + p from part p's row n (the inverse of the importer's transposeExperts). */
function denseExpertsXw(parts: Uint8Array[], E: number, N: number, K: number, eb: number): Uint8Array {
  const P = parts.length;
  const out = new Uint8Array(E * K * N * P * eb);
  for (let p = 0; p < P; p++) {
    const src = parts[p];
    for (let e = 0; e < E; e++) {
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) {
          const s = ((e * N + n) * K + k) * eb;
          const d = ((e * K + k) * N * P + n * P + p) * eb;
          for (let i = 0; i < eb; i++) out[d + i] = src[s + i];
        }
      }
    }
  }
  return out;
}

/**
 * The `_blocks` and `_scales` streams of MXFP4 parts of `rows` rows of K (rows interleaved across
 * parts). The blocks stream fills the scales as it goes, so the scales (1/16 the size) come without
 * a second pass when written after the blocks; otherwise they are computed on their own.
 */
function mxfp4HfPair(
  parts: SourceTensor[],
  rows: number,
  K: number,
): { blocks: () => AsyncIterable<Uint8Array>; scales: () => Promise<Uint8Array> } {
  const nb = K / 32;
  const rowBytes = nb * 17;
  const P = parts.length;
  let done: Uint8Array | null = null;
  async function* blocks(): AsyncIterable<Uint8Array> {
    const scales = new Uint8Array(rows * P * nb);
    const takers = parts.map((p) => new ByteTaker(readChunks(p)));
    const step = Math.max(1, Math.floor((1 << 22) / (rowBytes * P)));
    for (let r = 0; r < rows; r += step) {
      const n = Math.min(step, rows - r);
      const got: Uint8Array[] = [];
      for (const tk of takers) got.push(await tk.take(n * rowBytes));
      const out = new Uint8Array(n * P * nb * 16);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < P; p++) {
          const o = i * P + p;
          mxfp4ToHf(got[p].subarray(i * rowBytes, (i + 1) * rowBytes), out, o * nb * 16, scales, (r * P + o) * nb);
        }
      }
      yield out;
    }
    done = scales;
  }
  const scales = async () => {
    if (!done) for await (const _ of blocks());
    const s = done as unknown as Uint8Array;
    done = null;
    return s;
  };
  return { blocks, scales };
}

/**
 * Writes a model source as a Hugging Face directory: config.json, model.safetensors (or shards and
 * model.safetensors.index.json), tokenizer.json. Llama-family models as HF's conversion writes
 * them (Q/K rows of adjacent-pair sources permuted to rotate-half); gpt-oss models in
 * openai/gpt-oss-20b's layout (see {@link gptOssHfTensors}), every tensor in its own dtype.
 * Tensors stream one at a time, streaming sources piece by piece. Returns the number of safetensors files.
 */
export async function writeHfDir(source: ModelSource, outDir: string, options: WriteHfOptions = {}): Promise<number> {
  const c = source.config;
  if (c.rope_style !== 'adjacent' && c.rope_style !== 'rotate_half') throw new RangeError(`unknown rope style ${String(c.rope_style)}`);
  const gptOss = c.architecture === 'gpt-oss';
  const refuse = (field: string, message: string): never => {
    throw new HfModelError('HF_UNSUPPORTED_ARCHITECTURE', message, { file: outDir, field });
  };
  if (!gptOss && (c.moe || c.attn_sinks || c.attn_output_bias))
    refuse('architecture', `${c.architecture} with experts, sinks or an output bias has no Hugging Face layout (gpt-oss does)`);
  if (gptOss) {
    // What config.json can say: the importer reads these back from attention_bias and the architecture.
    if (!c.moe) refuse('moe', 'a gpt-oss model without experts has no Hugging Face layout');
    if (c.rope_style !== 'rotate_half') refuse('rope_style', 'gpt-oss checkpoints use rotate-half RoPE');
    if (!c.attn_sinks || c.attn_qkv_bias !== c.attn_output_bias)
      refuse('attn_sinks', 'gpt-oss checkpoints have attention sinks and biases on all four attention projections or on none');
  }
  for (const t of source.tensors) {
    if (t.quant)
      throw new HfModelError('HF_BAD_TENSOR', `${t.name} is quantized; Hugging Face directories hold F32/F16/BF16`, { field: t.name });
    const expert = gptOss && /_exps\.weight$/.test(t.name);
    if (isBlockDtype(t.dtype) && !(expert && t.dtype === 'mxfp4'))
      throw new HfModelError(
        'HF_BAD_TENSOR',
        `${t.name} is ${t.dtype}; Hugging Face directories hold F32/F16/BF16 (and gpt-oss's MXFP4 experts)`,
        { field: t.name },
      );
  }
  await mkdir(outDir, { recursive: true });
  await removeStaleTemps(outDir);
  const outs = gptOss ? gptOssHfTensors(source, outDir) : llamaHfTensors(source);
  const sizes = outs.map(hfBytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  const want = options.shards ?? (options.maxShardBytes ? Math.ceil(total / options.maxShardBytes) : 1);
  const n = Math.max(1, Math.min(want, outs.length));
  // Cut into n shards of roughly equal bytes, in tensor order.
  const groups: HfTensorOut[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  outs.forEach((t, i) => {
    const g = Math.min(n - 1, Math.floor((acc * n) / total));
    groups[g].push(t);
    acc += sizes[i];
  });
  const nonEmpty = groups.filter((g) => g.length);
  const names =
    nonEmpty.length === 1
      ? ['model.safetensors']
      : nonEmpty.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(nonEmpty.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  // Every file is written into a fresh private directory (mode 0700, unpredictable name) inside
  // outDir, then renamed into place: nothing is ever opened through a name someone could have planted.
  const stage = await createStagingDir(outDir);
  try {
    for (let s = 0; s < nonEmpty.length; s++) {
      const ts = nonEmpty[s];
      for (const t of ts) weightMap[t.name] = names[s];
      await writeSafetensors(
        join(stage, names[s]),
        ts.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
        (i) => ts[i].data(),
        { format: 'pt' },
      );
    }
    const files = [...names];
    if (nonEmpty.length > 1) {
      await writeNewFile(
        join(stage, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
      );
      files.push('model.safetensors.index.json');
    }
    const dtype = (source.tensors.find((t) => t.shape.length === 2)?.dtype ?? 'f32') as FloatDtype;
    const tok = source.tokenizer;
    const tokPath = join(stage, 'tokenizer.json');
    if (tok.model === 'hf') {
      await copyFile(tok.source, tokPath, constants.COPYFILE_EXCL);
      await syncFile(tokPath);
    } else if (tok.model === 'spm') await writeNewFile(tokPath, synthHfTokenizerJson(tok));
    else if (tok.model === 'gpt2' && tok.pre === 'gpt-4o') await writeNewFile(tokPath, synthGpt2TokenizerJson(tok));
    else
      throw new HfModelError(
        'HF_BAD_TOKENIZER',
        `a ${tok.model}${tok.model === 'gpt2' ? ` (pre-tokenizer ${JSON.stringify(tok.pre)})` : ''} tokenizer cannot be written as tokenizer.json`,
        { file: outDir },
      );
    files.push('tokenizer.json');
    if (source.chat) {
      // What transformers reads a chat template and its special tokens from.
      const { template, ...specials } = source.chat;
      const addBos = tok.model === 'spm' || tok.model === 'gpt2' ? { add_bos_token: tok.add_bos } : {};
      await writeNewFile(
        join(stage, 'tokenizer_config.json'),
        JSON.stringify({ ...addBos, ...specials, chat_template: template }, null, 2),
      );
      files.push('tokenizer_config.json');
    }
    const pad = 'pieces' in tok ? tok.pieces.indexOf('<|endoftext|>') : -1;
    const extras: HfConfigExtras = { pad_token_id: pad >= 0 ? pad : null, mxfp4: source.tensors.some((t) => t.dtype === 'mxfp4') };
    await writeNewFile(join(stage, 'config.json'), JSON.stringify(modelConfigToHfConfig(c, dtype, extras), null, 2));
    for (const f of files) await commitRename(join(stage, f), join(outDir, f));
    await fsyncDir(outDir);
    // config.json last: a directory without it is not mistaken for a model.
    await commitRename(join(stage, 'config.json'), join(outDir, 'config.json'));
    await fsyncDir(outDir);
  } finally {
    await discardTemp(stage);
  }
  return nonEmpty.length;
}
