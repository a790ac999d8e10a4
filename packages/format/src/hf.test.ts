import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstDifference, seededFloats } from '@ie/testing';
import { exportIebin } from './export-iebin.js';
import { decodeBf16, decodeF16, encodeBf16, encodeF16 } from './dtype.js';
import { HfModelError } from './errors.js';
import { canonicalHfName, hfConfigToModelConfig, hfName, modelConfigToHfConfig, openHfDir, writeHfDir } from './hf.js';
import { adjacentToRotateHalfPermutation, expectedTensors, invertPermutation, permuteRows, type ModelConfig } from './llama.js';
import { IebinReader } from './reader.js';
import { SYNTH_PRESETS, synthModel, synthTensorValues } from './synth.js';
import { decodeTensor } from './tensor.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-hf-'));
// GQA, odd-ish dims: 6 heads of 12, 2 KV heads, ffn 100.
const config: ModelConfig = {
  ...SYNTH_PRESETS.tiny.config,
  dim: 72,
  n_heads: 6,
  n_kv_heads: 2,
  head_dim: 12,
  ffn_dim: 100,
  vocab_size: 320,
};

function f64(a: Float32Array): Float64Array {
  return Float64Array.from(a);
}

/** y = W x in float64 for a row-major [rows, cols] matrix. */
function matvec(w: Float32Array, rows: number, cols: number, x: Float64Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
    y[r] = s;
  }
  return y;
}

function rope(v: Float64Array, heads: number, hd: number, pos: number, theta: number, style: 'adjacent' | 'rotate_half'): Float64Array {
  const out = Float64Array.from(v);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      const a = pos * theta ** (-(2 * i) / hd);
      const [p, q] = style === 'adjacent' ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + hd / 2];
      out[p] = v[p] * Math.cos(a) - v[q] * Math.sin(a);
      out[q] = v[p] * Math.sin(a) + v[q] * Math.cos(a);
    }
  }
  return out;
}

describe('Hugging Face directories', () => {
  it('round-trips a sharded f32 model exactly and records rotate-half RoPE with Q/K rows kept as stored', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 4 }), hf, { shards: 3 });
    const files = readdirSync(hf).sort();
    expect(files.filter((f) => f.endsWith('.safetensors'))).toHaveLength(3);
    expect(files).toContain('model.safetensors.index.json');
    const src = await openHfDir(hf);
    expect(src.config).toEqual({ ...config, rope_style: 'rotate_half' });
    const out = tmp();
    await exportIebin(src, out, { converter: 'test' });
    await src.close();
    const r = await IebinReader.open(out);
    expect(r.header.tokenizer).toMatchObject({ model: 'hf', file: 'tokenizer.json' });
    const qPerm = adjacentToRotateHalfPermutation(config.n_heads, config.head_dim);
    const kPerm = adjacentToRotateHalfPermutation(config.n_kv_heads, config.head_dim);
    for (const [i, t] of expectedTensors(config).entries()) {
      const got = decodeTensor(r.tensor(t.name), (await r.read(t.name)).bytes);
      let want = synthTensorValues(config, 4, i);
      // HF stores Q/K permuted (as HF's converter does); IEBIN keeps them as HF has them.
      if (t.name.endsWith('attn_q.weight') || t.name.endsWith('attn_k.weight')) {
        const perm = t.name.endsWith('attn_q.weight') ? qPerm : kPerm;
        want = new Float32Array(permuteRows(new Uint8Array(want.buffer), t.shape[1] * 4, perm).buffer);
        // Un-permuting gives back the adjacent-pair (Meta / llama2.c) rows.
        const back = new Float32Array(permuteRows(new Uint8Array(got.slice().buffer), t.shape[1] * 4, invertPermutation(perm)).buffer);
        expect(firstDifference(back, synthTensorValues(config, 4, i))).toBeNull();
      }
      expect(firstDifference(got, want), t.name).toBeNull();
    }
    expect((await r.verify()).ok).toBe(true);
    await r.close();
  });

  it('proves the recorded RoPE style: rotate-half on HF rows equals adjacent-pair on the original rows', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 4 }), hf);
    const src = await openHfDir(hf);
    const qi = expectedTensors(config).findIndex((t) => t.name === 'blk.1.attn_q.weight');
    const ki = expectedTensors(config).findIndex((t) => t.name === 'blk.1.attn_k.weight');
    const wq = new Float32Array((await src.tensors[qi].read()).slice().buffer);
    const wk = new Float32Array((await src.tensors[ki].read()).slice().buffer);
    await src.close();
    const x = f64(seededFloats(config.dim, 99));
    const { n_heads: H, n_kv_heads: KV, head_dim: hd, rope_theta: th } = config;
    const qPerm = adjacentToRotateHalfPermutation(H, hd);
    for (const pos of [1, 7, 300]) {
      const qHf = rope(matvec(wq, H * hd, config.dim, x), H, hd, pos, th, 'rotate_half');
      const qMeta = rope(matvec(synthTensorValues(config, 4, qi), H * hd, config.dim, x), H, hd, pos, th, 'adjacent');
      for (let r = 0; r < H * hd; r++) expect(qHf[r]).toBeCloseTo(qMeta[qPerm[r]], 9);
      // Attention scores (q·k per head) agree too; the wrong style would not.
      const kHf = rope(matvec(wk, KV * hd, config.dim, x), KV, hd, pos + 3, th, 'rotate_half');
      const kMeta = rope(matvec(synthTensorValues(config, 4, ki), KV * hd, config.dim, x), KV, hd, pos + 3, th, 'adjacent');
      const dot = (a: Float64Array, b: Float64Array, h: number, kvh: number) => {
        let s = 0;
        for (let d = 0; d < hd; d++) s += a[h * hd + d] * b[kvh * hd + d];
        return s;
      };
      expect(dot(qHf, kHf, 3, 1)).toBeCloseTo(dot(qMeta, kMeta, 3, 1), 9);
      const wrong = rope(matvec(wq, H * hd, config.dim, x), H, hd, pos, th, 'adjacent');
      expect(Math.max(...wrong.map((v, r) => Math.abs(v - qMeta[qPerm[r]])))).toBeGreaterThan(1e-3);
    }
  });

  it('converts f16 and bf16 checkpoints, and f32 to f16/bf16, within the codec rounding', async () => {
    for (const dtype of ['f16', 'bf16'] as const) {
      const hf = tmp();
      await writeHfDir(synthModel(config, { seed: 4, dtype }), hf, { shards: 2 });
      const out = tmp();
      const src = await openHfDir(hf);
      await exportIebin(src, out, { converter: 'test' });
      await src.close();
      const hf32 = tmp();
      await writeHfDir(synthModel(config, { seed: 4 }), hf32);
      const out2 = tmp();
      const src2 = await openHfDir(hf32);
      await exportIebin(src2, out2, { converter: 'test', dtype });
      await src2.close();
      for (const o of [out, out2]) {
        const r = await IebinReader.open(o);
        const t = r.tensor('blk.0.ffn_down.weight');
        expect(t.dtype).toBe(dtype);
        expect(r.tensor('blk.0.ffn_norm.weight').dtype).toBe('f32');
        const i = expectedTensors(config).findIndex((e) => e.name === t.name);
        const v = synthTensorValues(config, 4, i);
        const rounded = dtype === 'f16' ? decodeF16(encodeF16(v)) : decodeBf16(encodeBf16(v));
        expect(firstDifference(decodeTensor(t, (await r.read(t.name)).bytes), rounded)).toBeNull();
        await r.close();
      }
    }
  });

  it('imports Qwen2 with q/k/v biases', async () => {
    const qwen: ModelConfig = { ...config, architecture: 'qwen2', attn_qkv_bias: true, tied_classifier: true };
    const hf = tmp();
    await writeHfDir(synthModel(qwen, { seed: 2 }), hf);
    expect(JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')).architectures).toEqual(['Qwen2ForCausalLM']);
    const src = await openHfDir(hf);
    expect(src.config).toMatchObject({ architecture: 'qwen2', attn_qkv_bias: true, tied_classifier: true });
    expect(src.tensors.map((t) => t.name)).toContain('blk.0.attn_k.bias');
    await exportIebin(src, tmp(), { converter: 'test' });
    await src.close();
  });

  it('names the file and field of what is wrong', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 4 }), hf, { shards: 2 });
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    const idx = JSON.parse(readFileSync(join(hf, 'model.safetensors.index.json'), 'utf8'));
    const expectCode = async (code: string, field?: string) => {
      const p = openHfDir(hf);
      await expect(p).rejects.toMatchObject(field ? { code, field } : { code });
    };
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    await expectCode('HF_UNSUPPORTED_ARCHITECTURE', 'architectures');
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 99 }));
    await expectCode('HF_BAD_TENSOR');
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    await expectCode('HF_MISSING_TENSOR');
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ ...cfg, hidden_act: 'gelu' }));
    await expectCode('HF_BAD_CONFIG', 'hidden_act');
    writeFileSync(join(hf, 'config.json'), JSON.stringify(cfg));
    const first = Object.keys(idx.weight_map)[0];
    writeFileSync(
      join(hf, 'model.safetensors.index.json'),
      JSON.stringify({ ...idx, weight_map: { ...idx.weight_map, [first]: '../evil.safetensors' } }),
    );
    await expectCode('HF_BAD_INDEX', `weight_map.${first}`);
    writeFileSync(join(hf, 'model.safetensors.index.json'), JSON.stringify(idx));
    rmSync(join(hf, 'tokenizer.json'));
    await expectCode('HF_BAD_TOKENIZER');
    rmSync(join(hf, 'config.json'));
    await expectCode('HF_NOT_A_MODEL_DIR');
  });
});

describe('stop tokens beyond EOS', () => {
  it('an eos_token_id list (Llama 3: <|end_of_text|>, <|eom_id|>, <|eot_id|>) keeps the first as EOS and the others as stop_ids, through export and back', async () => {
    const hf = mkdtempSync(join(tmpdir(), 'ie-hf-stop-'));
    await writeHfDir(synthModel('tiny', { seed: 4 }), hf);
    const cfgPath = join(hf, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    cfg.eos_token_id = [2, 7, 9];
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const src = await openHfDir(hf);
    expect(src.config.eos_id).toBe(2);
    expect(src.config.stop_ids).toEqual([7, 9]);
    const out = join(hf, 'iebin');
    await exportIebin(src, out, { converter: 't' });
    await src.close();
    const r = await IebinReader.open(out);
    expect(r.config.stop_ids).toEqual([7, 9]);
    await r.close();
  });
});

describe('config.json and back', () => {
  const rotate: ModelConfig = { ...config, rope_style: 'rotate_half', rope_theta: 500000, norm_eps: 1e-6, context_length: 1024 };
  /** The HfModelError `f` throws (its message without the "file: field: " prefix). */
  const refusal = (f: () => unknown): { code: string; field: string | undefined; text: string } => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof HfModelError)) throw e;
      return { code: e.code, field: e.field, text: e.message.slice(`c.json: ${e.field}: `.length) };
    }
    throw new Error('not refused');
  };

  it("writes Llama 3's RoPE scaling under HF's names and reads it back unchanged", () => {
    const c: ModelConfig = {
      ...rotate,
      rope_scaling: { type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_context_length: 8192 },
    };
    const json = modelConfigToHfConfig(c, 'bf16');
    expect(json.rope_scaling).toEqual({
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    });
    expect(json.torch_dtype).toBe('bfloat16');
    expect(json).not.toHaveProperty('sliding_window');
    expect(hfConfigToModelConfig(json, 'c.json')).toEqual(c);
  });

  it("keeps Mistral's sliding window, and Qwen2's only when use_sliding_window is true", () => {
    const mistral: ModelConfig = { ...rotate, architecture: 'mistral', sliding_window: 96 };
    const json = modelConfigToHfConfig(mistral, 'f16');
    expect(json).toMatchObject({ architectures: ['MistralForCausalLM'], sliding_window: 96, use_sliding_window: true });
    expect(hfConfigToModelConfig(json, 'c.json')).toEqual(mistral);
    const qwen = { ...modelConfigToHfConfig({ ...rotate, architecture: 'qwen2', attn_qkv_bias: true }, 'f32'), sliding_window: 96 };
    const read = (extra: Record<string, unknown>) => {
      const c = hfConfigToModelConfig({ ...qwen, ...extra }, 'c.json');
      return [c.sliding_window, c.sliding_layers];
    };
    expect(rotate.n_layers).toBe(2);
    expect(read({ use_sliding_window: false, max_window_layers: 0 })).toEqual([null, null]);
    // Qwen2 slides the layers from max_window_layers on (HF's default 28: none of these two).
    expect(read({ use_sliding_window: true })).toEqual([null, null]);
    expect(read({ use_sliding_window: true, max_window_layers: 0 })).toEqual([96, null]);
    expect(read({ use_sliding_window: true, max_window_layers: 1 })).toEqual([96, [false, true]]);
    expect(read({ use_sliding_window: true, layer_types: ['sliding_attention', 'full_attention'] })).toEqual([96, [true, false]]);
    expect(refusal(() => read({ use_sliding_window: true, layer_types: ['sliding_attention', 'chunked_attention'] }))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'layer_types[1]',
      text: 'is "chunked_attention"; layers are "sliding_attention" or "full_attention"',
    });
    // Written back as HF reads it: every layer (max_window_layers 0), or the layers named.
    for (const sliding_layers of [null, [false, true], [true, false]]) {
      const c: ModelConfig = { ...rotate, architecture: 'qwen2', attn_qkv_bias: true, sliding_window: 96, sliding_layers };
      expect(hfConfigToModelConfig(modelConfigToHfConfig(c, 'f32'), 'c.json')).toEqual(c);
    }
  });

  it('reads rope_scaling "default" as none and "linear" as every pair turning factor times slower, and writes it back', () => {
    const json = modelConfigToHfConfig(rotate, 'f32');
    expect(hfConfigToModelConfig({ ...json, rope_scaling: { rope_type: 'default' } }, 'c.json')).toEqual(rotate);
    const linear = hfConfigToModelConfig({ ...json, rope_scaling: { type: 'linear', factor: 4 } }, 'c.json');
    expect(linear).toEqual({ ...rotate, rope_freq_factors: Array(rotate.head_dim / 2).fill(4) });
    expect(modelConfigToHfConfig(linear, 'f32').rope_scaling).toEqual({ rope_type: 'linear', factor: 4 });
    expect(hfConfigToModelConfig(modelConfigToHfConfig(linear, 'f32'), 'c.json')).toEqual(linear);
    expect(refusal(() => hfConfigToModelConfig({ ...json, rope_scaling: { rope_type: 'linear', factor: 0 } }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'rope_scaling.factor',
      text: 'must be positive, got 0',
    });
  });

  it("names the key of what it refuses, in config.json's words", () => {
    const json = modelConfigToHfConfig(rotate, 'f32');
    expect(refusal(() => hfConfigToModelConfig({ ...json, rope_scaling: { rope_type: 'dynamic', factor: 2 } }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'rope_scaling.rope_type',
      text: 'is "dynamic"; supported: "default", "llama3", "linear" ("yarn" for gpt-oss)',
    });
    expect(refusal(() => hfConfigToModelConfig({ ...json, rope_scaling: [2] }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'rope_scaling',
      text: 'must be an object or null',
    });
    expect(refusal(() => hfConfigToModelConfig({ ...json, num_key_value_heads: 4 }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'num_key_value_heads',
      text: "n_heads (6) must be a multiple of n_kv_heads (4) (ie's n_kv_heads)",
    });
    expect(refusal(() => hfConfigToModelConfig({ ...json, num_hidden_layers: 2000 }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'num_hidden_layers',
      text: 'must be an integer in 1..1024, got 2000',
    });
    // 1e999 in config.json parses as Infinity, which JSON would print as null.
    expect(refusal(() => hfConfigToModelConfig({ ...json, rope_theta: Number.POSITIVE_INFINITY }, 'c.json'))).toEqual({
      code: 'HF_BAD_CONFIG',
      field: 'rope_theta',
      text: 'must be a number, got Infinity',
    });
  });

  it('takes only its own architecture names: Object property names are unsupported, not a wrong header later', () => {
    const json = modelConfigToHfConfig(rotate, 'f32');
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      for (const model_type of [name, undefined]) {
        expect(refusal(() => hfConfigToModelConfig({ ...json, architectures: [name], model_type }, 'c.json'))).toEqual({
          code: 'HF_UNSUPPORTED_ARCHITECTURE',
          field: 'architectures',
          text: `is ${JSON.stringify([name])}; supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, GptOssForCausalLM`,
        });
      }
      expect(refusal(() => hfConfigToModelConfig({ ...json, architectures: undefined, model_type: name }, 'c.json'))).toMatchObject({
        code: 'HF_UNSUPPORTED_ARCHITECTURE',
        field: 'architectures',
      });
    }
    // As for any unknown architectures[0], model_type decides.
    expect(hfConfigToModelConfig({ ...json, architectures: ['__proto__'], model_type: 'llama' }, 'c.json').architecture).toBe('llama');
  });

  it("refuses a llama3 RoPE scaling whose original_max_position_embeddings is not an integer, by config.json's key", () => {
    const json = modelConfigToHfConfig(rotate, 'f32');
    const rope_scaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 };
    for (const [orig, shownAs] of [
      [8192.5, '8192.5'],
      [0, '0'],
    ] as const)
      expect(
        refusal(() =>
          hfConfigToModelConfig({ ...json, rope_scaling: { ...rope_scaling, original_max_position_embeddings: orig } }, 'c.json'),
        ),
      ).toEqual({
        code: 'HF_BAD_CONFIG',
        field: 'rope_scaling.original_max_position_embeddings',
        text: `must be a positive integer, got ${shownAs}`,
      });
  });

  it('refuses values of the wrong type instead of reading them as the default; null and absent are the default', () => {
    const json = modelConfigToHfConfig(rotate, 'f32');
    const mistral = modelConfigToHfConfig({ ...rotate, architecture: 'mistral', sliding_window: 96 }, 'f32');
    const qwen = modelConfigToHfConfig({ ...rotate, architecture: 'qwen2', attn_qkv_bias: true }, 'f32');
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ ...json, eos_token_id: '5' }, 'eos_token_id', 'must be a token id (a number), got "5"'],
      [{ ...json, bos_token_id: '7' }, 'bos_token_id', 'must be a token id (a number), got "7"'],
      [{ ...json, eos_token_id: [2, '7', 9] }, 'eos_token_id[1]', 'must be a token id (a number), got "7"'],
      [{ ...json, eos_token_id: [2, null] }, 'eos_token_id[1]', 'must be a token id (a number), got null'],
      [{ ...json, tie_word_embeddings: 'true' }, 'tie_word_embeddings', 'must be true or false, got "true"'],
      [{ ...json, mlp_bias: 'true' }, 'mlp_bias', 'must be true or false, got "true"'],
      [{ ...mistral, sliding_window: '4096' }, 'sliding_window', 'must be a number of tokens or null, got "4096"'],
      [{ ...qwen, sliding_window: '4096' }, 'sliding_window', 'must be a number of tokens or null, got "4096"'],
      [{ ...qwen, sliding_window: 96, use_sliding_window: 'true' }, 'use_sliding_window', 'must be true or false, got "true"'],
    ];
    for (const [cfg, field, text] of cases)
      expect(
        refusal(() => hfConfigToModelConfig(cfg, 'c.json')),
        field,
      ).toEqual({ code: 'HF_BAD_CONFIG', field, text });
    // An id of the right type outside the vocabulary is named by its key too.
    expect(refusal(() => hfConfigToModelConfig({ ...json, eos_token_id: [2, 7, 1000] }, 'c.json'))).toMatchObject({
      code: 'HF_BAD_CONFIG',
      field: 'eos_token_id',
    });
    const absent = { ...json, bos_token_id: null, eos_token_id: undefined, tie_word_embeddings: null };
    expect(hfConfigToModelConfig(absent, 'c.json')).toMatchObject({ bos_id: 1, eos_id: 2, tied_classifier: false });
    expect(hfConfigToModelConfig({ ...mistral, sliding_window: null }, 'c.json').sliding_window).toBeNull();
  });

  it('refuses to write a vocabulary tokenizer.json cannot hold', async () => {
    const src = synthModel(config, { seed: 6 });
    const out = tmp();
    await expect(
      writeHfDir({ ...src, tokenizer: { model: 'llama2c', pieces: ['a'], scores: [0], max_piece_bytes: 1 } }, out),
    ).rejects.toMatchObject({
      code: 'HF_BAD_TOKENIZER',
      message: `${out}: a llama2c tokenizer cannot be written as tokenizer.json`,
    });
    // Nothing is left behind: no config.json, no staging directory.
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('canonicalHfName', () => {
  it('maps only its own names: Object property names in a checkpoint are not tensors', () => {
    expect(canonicalHfName('model.layers.3.self_attn.q_proj.weight')).toBe('blk.3.attn_q.weight');
    expect(canonicalHfName('lm_head.weight')).toBe('output.weight');
    for (const name of [
      'constructor',
      'toString',
      'model.layers.0.constructor',
      'model.layers.1.__proto__',
      'model.layers.2.hasOwnProperty',
    ])
      expect(canonicalHfName(name), name).toBeUndefined();
    expect(() => hfName('constructor')).toThrow(RangeError);
    for (const name of ['blk.0.constructor', 'blk.0.__proto__', 'blk.0.toString'])
      expect(() => hfName(name), name).toThrow(`${name} has no one-to-one Hugging Face tensor`);
  });
});
