/**
 * Hugging Face model directories: config.json, model.safetensors or a sharded
 * model.safetensors.index.json, tokenizer.json. Llama, Mistral and Qwen2 (with its q/k/v
 * biases) architectures; TinyLlama and SmolLM are Llama. Weights stay as they are: HF
 * checkpoints pair RoPE dimensions as rotate-half (their Q/K rows are permuted relative
 * to Meta's adjacent-pair layout), so the importer records `rope_style: "rotate_half"`.
 */
import type { Stats } from 'node:fs';
import { copyFile, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HfModelError, type FormatErrorCode } from './errors.js';
import { RandomAccessFile } from './file.js';
import { adjacentToRotateHalfPermutation, expectedTensors, permuteRows, type Architecture, type ModelConfig } from './llama.js';
import { dtypeElementBytes, type FloatDtype } from './layout.js';
import { SAFETENSORS_FLOAT_DTYPES, readSafetensorsHeader, writeSafetensors, type SafetensorsEntry } from './safetensors.js';
import { synthHfTokenizerJson } from './synth.js';
import type { ModelSource, SourceTensor } from './source.js';

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};
const MODEL_TYPES: Record<string, Architecture> = { llama: 'llama', mistral: 'mistral', qwen2: 'qwen2' };
const MAX_JSON = 64 << 20;

/** HF tensor name → canonical name (null: a known tensor ie does not need). */
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
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  if (m[2] === 'self_attn.rotary_emb.inv_freq') return null;
  return per[m[2]] ? `blk.${m[1]}.${per[m[2]]}` : undefined;
}

/** The inverse of {@link canonicalHfName} for writing HF directories. */
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
    'ffn_norm.weight': 'post_attention_layernorm.weight',
    'ffn_gate.weight': 'mlp.gate_proj.weight',
    'ffn_up.weight': 'mlp.up_proj.weight',
    'ffn_down.weight': 'mlp.down_proj.weight',
  };
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
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') fail('hidden_act', `is ${JSON.stringify(act)}; llama-family models use silu`);
  if (cfg.attention_bias === true && arch !== 'qwen2') fail('attention_bias', 'is true; biases on the attention output projection are not supported');
  if (cfg.mlp_bias === true) fail('mlp_bias', 'is true; MLP biases are not supported');
  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const headDim = cfg.head_dim === undefined || cfg.head_dim === null ? (nHeads > 0 ? dim / nHeads : 0) : int('head_dim');
  if (!Number.isInteger(headDim)) fail('num_attention_heads', `hidden_size ${dim} is not a multiple of num_attention_heads ${nHeads}`);
  const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id;
  let rope_scaling: ModelConfig['rope_scaling'] = null;
  const rs = cfg.rope_scaling;
  if (rs !== null && rs !== undefined) {
    if (typeof rs !== 'object' || Array.isArray(rs)) fail('rope_scaling', 'must be an object or null');
    const r = rs as Record<string, unknown>;
    const type = r.rope_type ?? r.type;
    if (type !== 'llama3') fail('rope_scaling.rope_type', `is ${JSON.stringify(type)}; only "llama3" scaling is supported`);
    const f = (k: string) => {
      const v = r[k];
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`rope_scaling.${k}`, 'must be a number');
      return v as number;
    };
    rope_scaling = { type: 'llama3', factor: f('factor'), low_freq_factor: f('low_freq_factor'), high_freq_factor: f('high_freq_factor'), original_context_length: f('original_max_position_embeddings') };
  }
  let sliding: number | null = null;
  if (arch === 'mistral' && typeof cfg.sliding_window === 'number') sliding = cfg.sliding_window;
  if (arch === 'qwen2' && cfg.use_sliding_window === true && typeof cfg.sliding_window === 'number') sliding = cfg.sliding_window;
  return {
    architecture: arch as Architecture,
    dim,
    n_layers: int('num_hidden_layers'),
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
    attn_qkv_bias: arch === 'qwen2',
    sliding_window: sliding,
    bos_id: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : 1,
    eos_id: typeof eos === 'number' ? eos : 2,
  };
}

/** Opens a Hugging Face model directory as a model source. */
export async function openHfDir(dir: string): Promise<ModelSource> {
  const cfgPath = join(dir, 'config.json');
  try {
    if (!(await stat(dir)).isDirectory()) throw new Error();
  } catch {
    throw new HfModelError('HF_NOT_A_MODEL_DIR', 'is not a directory; pass a Hugging Face model directory', { file: dir });
  }
  const cfg = await readJson(cfgPath, 'HF_NOT_A_MODEL_DIR', 'config.json');
  const config = hfConfigToModelConfig(cfg, cfgPath);
  const tokPath = join(dir, 'tokenizer.json');
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
    const found = new Map<string, { f: RandomAccessFile; e: SafetensorsEntry; hf: string }>();
    const notes: string[] = [`Hugging Face ${config.architecture} model, ${shardFiles.length} safetensors file(s); rope_style rotate_half recorded, Q/K rows kept as stored`];
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
        if (canon === undefined) throw new HfModelError('HF_UNEXPECTED_TENSOR', `${e.name} is not part of a llama-family model`, { file: p, field: e.name });
        if (found.has(canon)) throw new HfModelError('HF_BAD_INDEX', `${e.name} appears in two files`, { file: p, field: e.name });
        found.set(canon, { f, e, hf: e.name });
      }
    }
    if (weightMap) {
      for (const k of weightMap.keys()) if (canonicalHfName(k) !== null && !found.has(canonicalHfName(k) as string)) throw new HfModelError('HF_BAD_INDEX', `${k} is in the index but not in ${weightMap.get(k)}`, { file: indexPath, field: `weight_map.${k}` });
    }
    if (config.tied_classifier && found.has('output.weight')) {
      found.delete('output.weight');
      notes.push('lm_head.weight dropped: tie_word_embeddings is true');
    }
    const expected = expectedTensors(config);
    const expectedNames = new Set(expected.map((t) => t.name));
    for (const [canon, { f, hf }] of found) if (!expectedNames.has(canon)) throw new HfModelError('HF_UNEXPECTED_TENSOR', `${hf} does not fit the config (${config.n_layers} layers)`, { file: f.path, field: hf });
    const tensors: SourceTensor[] = expected.map((x) => {
      const got = found.get(x.name);
      if (!got) throw new HfModelError('HF_MISSING_TENSOR', `${hfName(x.name)} is missing`, { file: dir, field: hfName(x.name) });
      const dtype = SAFETENSORS_FLOAT_DTYPES[got.e.dtype];
      if (!dtype) throw new HfModelError('HF_BAD_TENSOR', `${got.hf} is ${got.e.dtype}; weights must be F32, F16 or BF16`, { file: got.f.path, field: got.hf });
      if (got.e.shape.length !== x.shape.length || got.e.shape.some((d, i) => d !== x.shape[i])) {
        throw new HfModelError('HF_BAD_TENSOR', `${got.hf} has shape ${JSON.stringify(got.e.shape)}, config.json implies ${JSON.stringify(x.shape)}`, { file: got.f.path, field: got.hf });
      }
      return { name: x.name, dtype, shape: x.shape, quant: null, read: () => got.f.read(got.e.begin, got.e.end - got.e.begin) };
    });
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
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[c.architecture];
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
    rope_scaling: c.rope_scaling && { rope_type: 'llama3', factor: c.rope_scaling.factor, low_freq_factor: c.rope_scaling.low_freq_factor, high_freq_factor: c.rope_scaling.high_freq_factor, original_max_position_embeddings: c.rope_scaling.original_context_length },
    rms_norm_eps: c.norm_eps,
    tie_word_embeddings: c.tied_classifier,
    hidden_act: 'silu',
    bos_token_id: c.bos_id,
    eos_token_id: c.eos_id,
    torch_dtype: { f32: 'float32', f16: 'float16', bf16: 'bfloat16' }[dtype],
    ...(c.sliding_window !== null ? { sliding_window: c.sliding_window, use_sliding_window: true } : {}),
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
