/**
 * Reads a Hugging Face model directory (config.json, model.safetensors or a sharded
 * model.safetensors.index.json, tokenizer.json) as a model source; gpt-oss experts are re-packed
 * or transposed into canonical tensors as they are read.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HfModelError } from '../errors.js';
import { RandomAccessFile } from '../file.js';
import { mxfp4FromHf } from '../blocks.js';
import { expectedTensors, type ModelConfig } from '../llama.js';
import { dtypeElementBytes } from '../layout.js';
import { SAFETENSORS_FLOAT_DTYPES, readSafetensorsHeader, type SafetensorsEntry } from '../safetensors.js';
import type { ModelSource, SourceTensor } from '../source.js';
import { readHfChatTemplate } from './chat-template.js';
import { hfConfigToModelConfig } from './config.js';
import { exists, readJson } from './files.js';
import { EXPERT_PARTS, canonicalHfName, hfName } from './names.js';

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
  const shards = await hfShards(dir);
  const opened: RandomAccessFile[] = [];
  const closeAll = async () => {
    for (const f of opened) await f.close().catch(() => undefined);
  };
  try {
    const notes: string[] = [
      `Hugging Face ${config.architecture} model, ${shards.files.length} safetensors file(s); rope_style rotate_half recorded, Q/K rows kept as stored`,
    ];
    const found = await hfWeights(dir, shards, opened, notes);
    if (config.tied_classifier && found.has('lm_head.weight')) {
      found.delete('lm_head.weight');
      notes.push('lm_head.weight dropped: tie_word_embeddings is true');
    }
    checkMxfp4Config(cfg, cfgPath, config, found);
    const tensors = hfSourceTensors(config, found, dir);
    if (config.moe)
      notes.push(
        `${config.moe.n_experts} experts: ${tensors.some((t) => t.dtype === 'mxfp4') ? 'MXFP4 blocks re-packed into ggml mxfp4 blocks (lossless)' : 'dense float experts transposed to [E, N, K]'}; gate_up_proj split into gate (even rows) and up (odd rows)`,
      );
    return {
      format: 'hf',
      config,
      tokenizer: { model: 'hf', source: tokPath },
      files: [cfgPath, ...(shards.weightMap ? [shards.indexPath] : []), ...shards.files.map((s) => join(dir, s)), tokPath, ...chat.files],
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

/** Which safetensors files hold the weights: the index's (with its map of tensor → file) or model.safetensors. */
interface HfShards {
  files: string[];
  indexPath: string;
  weightMap: Map<string, string> | null;
}

async function hfShards(dir: string): Promise<HfShards> {
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (await exists(indexPath)) {
    const idx = await readJson(indexPath, 'HF_BAD_INDEX', 'model.safetensors.index.json');
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
      throw new HfModelError('HF_BAD_INDEX', 'has no weight_map object', { file: indexPath, field: 'weight_map' });
    const weightMap = new Map<string, string>();
    for (const [k, v] of Object.entries(wm)) {
      if (typeof v !== 'string' || v !== basename(v) || v.startsWith('.') || !v.endsWith('.safetensors')) {
        throw new HfModelError('HF_BAD_INDEX', `maps ${k} to ${JSON.stringify(v)}, not a .safetensors file in this directory`, {
          file: indexPath,
          field: `weight_map.${k}`,
        });
      }
      weightMap.set(k, v);
    }
    return { files: [...new Set(weightMap.values())].sort(), indexPath, weightMap };
  }
  if (await exists(join(dir, 'model.safetensors'))) return { files: ['model.safetensors'], indexPath, weightMap: null };
  throw new HfModelError(
    'HF_NOT_A_MODEL_DIR',
    'has neither model.safetensors nor model.safetensors.index.json (pytorch .bin weights are not supported; save with safetensors)',
    { file: dir },
  );
}

/** One weight as found: the open file holding it and its header entry. */
interface FoundWeight {
  f: RandomAccessFile;
  e: SafetensorsEntry;
}

/**
 * Every weight by HF name, from the shard files (opened into `opened`, for the caller to close):
 * each where the index puts it, in one file only, a tensor of a supported model; RoPE frequencies
 * are skipped (noted). Every tensor the index names must be found.
 */
async function hfWeights(dir: string, shards: HfShards, opened: RandomAccessFile[], notes: string[]): Promise<Map<string, FoundWeight>> {
  const { weightMap, indexPath } = shards;
  const found = new Map<string, FoundWeight>();
  const isExpertPart = (name: string) =>
    /^model\.layers\.\d+\./.test(name) && EXPERT_PARTS.includes(name.replace(/^model\.layers\.\d+\./, ''));
  for (const sf of shards.files) {
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
  return found;
}

/** MXFP4 block tensors need config.json to say so (quant_method "mxfp4") and whole 32-element blocks per row. */
function checkMxfp4Config(cfg: Record<string, unknown>, cfgPath: string, config: ModelConfig, found: Map<string, FoundWeight>): void {
  const hasBlocks = [...found.keys()].find((k) => k.endsWith('_blocks'));
  if (!hasBlocks) return;
  const qc = cfg.quantization_config;
  const method = typeof qc === 'object' && qc !== null ? (qc as Record<string, unknown>).quant_method : undefined;
  if (method !== 'mxfp4')
    throw new HfModelError('HF_BAD_CONFIG', `is ${JSON.stringify(method)}, but ${hasBlocks} is an MXFP4 block tensor; expected "mxfp4"`, {
      file: cfgPath,
      field: 'quantization_config.quant_method',
    });
  for (const [k, v] of [
    ['hidden_size', config.dim],
    ['intermediate_size', config.ffn_dim],
  ] as const) {
    if (v % 32 !== 0)
      throw new HfModelError(
        'HF_BAD_CONFIG',
        `is ${v}; MXFP4 experts need whole 32-element blocks per row, so it must be a multiple of 32`,
        {
          file: cfgPath,
          field: k,
        },
      );
  }
}

/** The config's tensors, each from its HF parts; a found weight no tensor uses does not fit the config. */
function hfSourceTensors(config: ModelConfig, found: Map<string, FoundWeight>, dir: string): SourceTensor[] {
  const recipes = expected(config, found);
  const used = new Set(recipes.flatMap((r) => r.hf));
  for (const [hf, { f }] of found)
    if (!used.has(hf))
      throw new HfModelError(
        'HF_UNEXPECTED_TENSOR',
        `${hf} does not fit the config (${config.n_layers} layers${config.moe ? `, ${config.moe.n_experts} experts` : ''})`,
        { file: f.path, field: hf },
      );
  return recipes.map((r) => recipeTensor(r, recipeParts(r, found, dir)));
}

/** A recipe's HF parts, each present and of the dtype and shape the recipe needs. */
function recipeParts(r: Recipe, found: Map<string, FoundWeight>, dir: string): RecipePart[] {
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
  return parts;
}

interface RecipePart extends FoundWeight {
  hf: string;
}

/** A canonical tensor read from its checked parts: MXFP4 re-packed (NaN scales refused), dense experts transposed, gate/up split. */
function recipeTensor(r: Recipe, parts: RecipePart[]): SourceTensor {
  const raw = (k: number) => parts[k].f.read(parts[k].e.begin, parts[k].e.end - parts[k].e.begin);
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
  const dtype = SAFETENSORS_FLOAT_DTYPES[parts[0].e.dtype];
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
