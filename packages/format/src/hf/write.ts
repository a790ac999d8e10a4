/**
 * Writes a model source as a Hugging Face directory: Llama-family models as HF's conversion writes
 * them, gpt-oss models in openai/gpt-oss-20b's layout (MXFP4 experts streamed), every file staged
 * privately and renamed into place, config.json last.
 */
import { constants } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HfModelError } from '../errors.js';
import { isBlockDtype, mxfp4ToHf } from '../blocks.js';
import { adjacentToRotateHalfPermutation, permuteRows } from '../llama.js';
import { dtypeElementBytes, type FloatDtype } from '../layout.js';
import { SAFETENSORS_DTYPE_BYTES, writeSafetensors } from '../safetensors.js';
import { synthGpt2TokenizerJson, synthHfTokenizerJson } from '../synth.js';
import { ByteTaker, readChunks, type ModelSource, type SourceTensor } from '../source.js';
import {
  commitRename,
  createStagingDir,
  discardTemp,
  fsyncDir,
  makeDirs,
  removeStaleTemps,
  syncFile,
  writeNewFile,
} from '../safe-write.js';
import { modelConfigToHfConfig, type HfConfigExtras } from './config.js';
import { hfName } from './names.js';

export interface WriteHfOptions {
  /** Number of safetensors files; more than 1 writes model.safetensors.index.json. Default: enough files of at most `maxShardBytes`, else 1. */
  shards?: number;
  /** When `shards` is not given: the most bytes of tensors per file (transformers' save_pretrained cuts at 5 GB). Default: no limit. */
  maxShardBytes?: number;
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
  checkHfWritable(source, outDir);
  await makeDirs(outDir);
  await removeStaleTemps(outDir);
  const outs = c.architecture === 'gpt-oss' ? gptOssHfTensors(source, outDir) : llamaHfTensors(source);
  const plan = hfShardPlan(outs, options);
  // Every file is written into a fresh private directory (mode 0700, unpredictable name) inside
  // outDir, then renamed into place: nothing is ever opened through a name someone could have planted.
  const stage = await createStagingDir(outDir);
  try {
    const files = await writeHfShards(stage, plan);
    const dtype = (source.tensors.find((t) => t.shape.length === 2)?.dtype ?? 'f32') as FloatDtype;
    files.push(...(await writeHfTokenizerFiles(source, stage, outDir)));
    const tok = source.tokenizer;
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
  return plan.shards.length;
}

/** Refuses what a Hugging Face directory cannot hold: a layout HF has no config for, quantized or non-MXFP4 block tensors. */
function checkHfWritable(source: ModelSource, outDir: string): void {
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
}

/** The safetensors files to write: each one's tensors and file name, and the bytes of all tensors. */
interface HfShardPlan {
  shards: HfTensorOut[][];
  names: string[];
  total: number;
}

/** Cuts the tensors, in order, into the files asked for (`shards`, or by `maxShardBytes`) of roughly equal bytes; none empty. */
function hfShardPlan(outs: HfTensorOut[], options: WriteHfOptions): HfShardPlan {
  const sizes = outs.map(hfBytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  const want = options.shards ?? (options.maxShardBytes ? Math.ceil(total / options.maxShardBytes) : 1);
  const n = Math.max(1, Math.min(want, outs.length));
  const groups: HfTensorOut[][] = Array.from({ length: n }, () => []);
  let acc = 0;
  outs.forEach((t, i) => {
    const g = Math.min(n - 1, Math.floor((acc * n) / total));
    groups[g].push(t);
    acc += sizes[i];
  });
  const shards = groups.filter((g) => g.length);
  const names =
    shards.length === 1
      ? ['model.safetensors']
      : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  return { shards, names, total };
}

/** Writes the safetensors files (and, for more than one, model.safetensors.index.json) into `stage`; returns their names. */
async function writeHfShards(stage: string, { shards, names, total }: HfShardPlan): Promise<string[]> {
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards.length; s++) {
    const ts = shards[s];
    for (const t of ts) weightMap[t.name] = names[s];
    await writeSafetensors(
      join(stage, names[s]),
      ts.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })),
      (i) => ts[i].data(),
      { format: 'pt' },
    );
  }
  const files = [...names];
  if (shards.length > 1) {
    await writeNewFile(
      join(stage, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    );
    files.push('model.safetensors.index.json');
  }
  return files;
}

/**
 * Writes tokenizer.json into `stage` (an HF source's copied, a SentencePiece or gpt-4o BPE
 * vocabulary synthesized) and, with a chat template, tokenizer_config.json; returns their names.
 */
async function writeHfTokenizerFiles(source: ModelSource, stage: string, outDir: string): Promise<string[]> {
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
  if (!source.chat) return ['tokenizer.json'];
  // What transformers reads a chat template and its special tokens from.
  const { template, ...specials } = source.chat;
  const addBos = tok.model === 'spm' || tok.model === 'gpt2' ? { add_bos_token: tok.add_bos } : {};
  await writeNewFile(join(stage, 'tokenizer_config.json'), JSON.stringify({ ...addBos, ...specials, chat_template: template }, null, 2));
  return ['tokenizer.json', 'tokenizer_config.json'];
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
