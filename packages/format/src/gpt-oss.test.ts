import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_DIR, firstDifference, sameBytes } from '@ie/testing';
import { BLOCK_FORMATS, decodeBlocks, e8m0ToF32, mxfp4FromHf } from './blocks.js';
import { exportIebin } from './export-iebin.js';
import { decodeBf16, encodeBf16 } from './dtype.js';
import { HfModelError } from './errors.js';
import { openGguf } from './gguf.js';
import { parseIebinHeader } from './header.js';
import { hfConfigToModelConfig, modelConfigToHfConfig, openHfDir } from './hf.js';
import { configProblems, expectedTensors, weightBytesPerToken, type ModelConfig } from './llama.js';
import { IebinReader } from './reader.js';
import { parseSafetensors, writeSafetensors } from './safetensors.js';
import type { ModelSource, SourceTensor } from './source.js';
import { SYNTH_PRESETS, synthHfTokenizerJson, synthModel, synthVocabulary } from './synth.js';
import { decodeTensor } from './tensor.js';
import { hfReferenceBlock } from '../test/mxfp4-oracle.js';

const FIXTURE = join(SHARED_DIR, 'models', 'gpt-oss-tiny');
const HAS_FIXTURE = existsSync(join(FIXTURE, 'hf', 'model.safetensors')) && existsSync(join(FIXTURE, 'gguf', 'model_f32.gguf'));
const REASON = HAS_FIXTURE ? '' : ` — SKIPPED: ${FIXTURE} not found (CI provides ../shared)`;
const tmp = () => mkdtempSync(join(tmpdir(), 'ie-gptoss-'));

/** The values of a source tensor, f32 (floats decoded, blocks decoded): sources are row-major. */
async function values(t: SourceTensor): Promise<Float32Array> {
  return decodeTensor({ dtype: t.dtype, shape: t.shape, quant: null, layout: { order: 'row_major', block_k: 0 } }, await t.read());
}

describe('mxfp4 blocks', () => {
  it('decodes a hand-made block: element j in the low nibble of byte j, j + 16 in the high one, times 2^(e - 127)', () => {
    const block = new Uint8Array(17);
    block[0] = 128; // scale 2
    for (let j = 0; j < 16; j++) block[1 + j] = j | ((15 - j) << 4);
    const got = decodeBlocks('mxfp4', block, 1, 32);
    const want = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, -12, -8, -6, -4, -3, -2, -1, 0, 12, 8, 6, 4, 3, 2, 1, 0];
    expect(firstDifference(got, want)).toBeNull();
    expect(BLOCK_FORMATS.mxfp4).toEqual({ elems: 32, bytes: 17, ggml: 39 });
  });

  it('is exact at the ends of the exponent range: f32 subnormals, overflow to infinity, NaN for 255', () => {
    const one = (e: number, q: number) => {
      const b = new Uint8Array(17);
      b[0] = e;
      b[1] = q;
      return decodeBlocks('mxfp4', b, 1, 32)[0];
    };
    expect(one(0, 1)).toBe(2 ** -128); // 0.5 * 2^-127, an f32 subnormal
    expect(one(0, 7)).toBe(6 * 2 ** -127);
    expect(one(0, 9)).toBe(-(2 ** -128));
    expect(one(254, 3)).toBe(1.5 * 2 ** 127); // the largest finite
    expect(one(254, 4)).toBe(Infinity); // 2 * 2^127 overflows f32, as in ggml
    expect(one(255, 1)).toBeNaN();
    expect(e8m0ToF32(127)).toBe(1);
    expect(e8m0ToF32(0)).toBe(Math.fround(2 ** -127));
  });

  it('re-packs Hugging Face blocks (element 2i low, 2i + 1 high) into ggml blocks without changing a value', () => {
    const rows = 3;
    const cols = 64;
    const hf = new Uint8Array(rows * (cols / 32) * 16);
    const scales = new Uint8Array(rows * (cols / 32));
    let s = 7;
    for (let i = 0; i < hf.length; i++) hf[i] = s = (s * 1103515245 + 12345) & 0xff;
    for (let i = 0; i < scales.length; i++) scales[i] = 120 + i;
    const packed = mxfp4FromHf(hf, scales, rows, cols);
    expect(packed.length).toBe(rows * (cols / 32) * 17);
    const want: number[] = [];
    for (let b = 0; b < scales.length; b++) want.push(...hfReferenceBlock(hf.subarray(b * 16, b * 16 + 16), scales[b]));
    expect(firstDifference(decodeBlocks('mxfp4', packed, rows, cols), want)).toBeNull();
    // Byte by byte: element 0 and 16 share ggml byte 0 (HF bytes 0 low and 8 low).
    expect(packed[1]).toBe((hf[0] & 15) | ((hf[8] & 15) << 4));
    expect(packed[2]).toBe((hf[0] >> 4) | ((hf[8] >> 4) << 4));
  });

  it('refuses a NaN scale and a size that does not fit, with HfModelError', () => {
    const scales = new Uint8Array([127, 255]);
    expect(() => mxfp4FromHf(new Uint8Array(32), scales, 1, 64, 'x_scales')).toThrow(
      expect.objectContaining({ name: 'HfModelError', code: 'HF_BAD_TENSOR', field: 'x_scales' }),
    );
    expect(() => mxfp4FromHf(new Uint8Array(31), new Uint8Array(2), 1, 64)).toThrow(HfModelError);
    expect(() => mxfp4FromHf(new Uint8Array(16), new Uint8Array(1), 1, 48)).toThrow(HfModelError);
  });
});

/** A small gpt-oss config for header tests (some with the experts stored float). */
const moeConfig: ModelConfig = {
  ...SYNTH_PRESETS.tiny.config,
  architecture: 'gpt-oss',
  dim: 64,
  n_layers: 2,
  n_heads: 4,
  n_kv_heads: 2,
  head_dim: 16,
  ffn_dim: 32,
  vocab_size: 300,
  rope_style: 'rotate_half',
  rope_scaling: { type: 'yarn', factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: false },
  attn_qkv_bias: true,
  attn_output_bias: true,
  attn_sinks: true,
  sliding_window: 8,
  sliding_layers: [true, false],
  moe: { n_experts: 4, experts_per_token: 2, swiglu_limit: 7 },
};

describe('gpt-oss config and tensor table', () => {
  it('lists the gpt-oss tensors with their roles and 3-D expert shapes', () => {
    const t = new Map(expectedTensors(moeConfig).map((e) => [e.name, e]));
    expect(t.get('blk.1.ffn_gate_exps.weight')).toEqual({ name: 'blk.1.ffn_gate_exps.weight', shape: [4, 32, 64], role: 'experts' });
    expect(t.get('blk.1.ffn_down_exps.weight')?.shape).toEqual([4, 64, 32]);
    expect(t.get('blk.0.ffn_up_exps.bias')).toMatchObject({ shape: [4, 32], role: 'expert_bias' });
    expect(t.get('blk.0.ffn_down_exps.bias')).toMatchObject({ shape: [4, 64], role: 'expert_bias' });
    expect(t.get('blk.0.ffn_gate_inp.weight')).toMatchObject({ shape: [4, 64], role: 'router' });
    expect(t.get('blk.0.ffn_gate_inp.bias')).toMatchObject({ shape: [4], role: 'bias' });
    expect(t.get('blk.0.attn_sinks.weight')).toMatchObject({ shape: [4], role: 'sinks' });
    expect(t.get('blk.0.attn_output.bias')).toMatchObject({ shape: [64], role: 'bias' });
    expect(t.has('blk.0.ffn_gate.weight')).toBe(false);
    expect(configProblems(moeConfig)).toEqual([]);
    // Per token, top-2 of 4 experts: half of each expert tensor.
    const tensors = expectedTensors(moeConfig).map((e) => ({ name: e.name, shape: e.shape, bytes: e.shape.reduce((a, b) => a * b, 4) }));
    const all = weightBytesPerToken(tensors, false);
    const experts = tensors.filter((x) => x.name.includes('_exps.')).reduce((a, x) => a + x.bytes, 0);
    expect(weightBytesPerToken(tensors, false, moeConfig.moe)).toBe(all - experts / 2);
  });

  it("reads config.json's head_dim with GptOssConfig's default of 64 when absent (not hidden_size / heads)", () => {
    const json = modelConfigToHfConfig({ ...moeConfig, head_dim: 64 }, 'bf16');
    expect(hfConfigToModelConfig(json, 'c.json').head_dim).toBe(64);
    const { head_dim: _, ...absent } = json;
    expect(hfConfigToModelConfig(absent, 'c.json').head_dim).toBe(64);
    expect(hfConfigToModelConfig({ ...json, head_dim: null }, 'c.json').head_dim).toBe(moeConfig.dim / moeConfig.n_heads);
  });

  it('writes and validates a float gpt-oss model; bad gpt-oss config fields are IEBIN_BAD_CONFIG naming the field', async () => {
    const d = tmp();
    const h = await exportIebin(synthModel(moeConfig, { seed: 3, dtype: 'bf16', experts: 'float' }), d, { converter: 'test' });
    expect(h.config).toEqual(moeConfig);
    expect(h.tensors.find((t) => t.name === 'blk.0.ffn_down_exps.bias')?.dtype).toBe('f32');
    expect(h.tensors.find((t) => t.name === 'blk.0.ffn_down_exps.weight')).toMatchObject({ dtype: 'bf16', shape: [4, 64, 32] });
    const r = await IebinReader.open(d);
    expect((await r.verify()).ok).toBe(true);
    await r.close();
    const json = readFileSync(join(d, 'model.ie.json'), 'utf8');
    const bad = (edit: (c: Record<string, any>) => void, field: string) => {
      const x = JSON.parse(json);
      edit(x.config);
      expect(() => parseIebinHeader(JSON.stringify(x), 'm.json'), field).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/^IEBIN_BAD_(CONFIG|FIELD)$/), field }),
      );
    };
    bad((c) => (c.moe.experts_per_token = 5), 'config.moe.experts_per_token');
    bad((c) => (c.moe.swiglu_limit = -1), 'config.moe.swiglu_limit');
    bad((c) => (c.moe = null), 'config.moe');
    bad((c) => (c.sliding_layers = [true]), 'config.sliding_layers');
    bad((c) => (c.sliding_layers = [true, 1]), 'config.sliding_layers[1]');
    bad((c) => (c.rope_scaling.beta_fast = 0.5), 'config.rope_scaling.beta_fast');
    bad((c) => (c.rope_scaling.type = 'ntk'), 'config.rope_scaling.type');
    bad((c) => delete c.rope_scaling.truncate, 'config.rope_scaling.truncate');
    bad((c) => (c.attn_sinks = 'yes'), 'config.attn_sinks');
    // Without sinks the table has a tensor the config does not describe.
    const x = JSON.parse(json);
    x.config.attn_sinks = false;
    expect(() => parseIebinHeader(JSON.stringify(x), 'm.json')).toThrow(expect.objectContaining({ code: 'IEBIN_UNEXPECTED_TENSOR' }));
  });

  it('loads headers written before the gpt-oss fields existed, with false / null', async () => {
    const d = tmp();
    await exportIebin(synthModel('tiny', { seed: 1 }), d, { converter: 'test' });
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    for (const k of ['attn_output_bias', 'attn_sinks', 'sliding_layers', 'moe']) delete h.config[k];
    const parsed = parseIebinHeader(JSON.stringify(h), 'm.json');
    expect(parsed.config).toMatchObject({ attn_output_bias: false, attn_sinks: false, sliding_layers: null, moe: null });
    expect(parsed.config).toEqual(SYNTH_PRESETS.tiny.config);
  });

  it('allows block tensors 3-D (stacked experts) with whole blocks per row, and sizes them E*N*K/32*17', async () => {
    const d = tmp();
    await exportIebin(synthModel(moeConfig, { seed: 3, dtype: 'f32', experts: 'float' }), d, { converter: 'test' });
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    const i = h.tensors.findIndex((t: { name: string }) => t.name === 'blk.1.ffn_down_exps.weight');
    const t = h.tensors[i];
    t.dtype = 'mxfp4';
    // The size rule, through the validator's message: 4 experts x 64 rows x 32 columns.
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(
      expect.objectContaining({ code: 'IEBIN_SIZE_MISMATCH', message: expect.stringContaining(`takes ${(4 * 64 * 32 * 17) / 32} bytes`) }),
    );
    t.shape = [4, 64, 40];
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(
      expect.objectContaining({ code: 'IEBIN_BAD_SHAPE', field: `tensors[${i}].shape` }),
    );
    t.shape = [2, 4, 64, 32];
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(
      expect.objectContaining({ code: 'IEBIN_BAD_SHAPE', field: `tensors[${i}].shape` }),
    );
  });

  it('stores experts as mxfp4 blocks but keeps the router, biases and sinks float', async () => {
    const toMxfp4 = (roles: string[]) => (t: SourceTensor, role: string) =>
      roles.includes(role)
        ? { dtype: 'mxfp4' as const, quant: null, bytes: new Uint8Array((t.shape.reduce((a, b) => a * b, 1) / 32) * 17).fill(127) }
        : null;
    const d = tmp();
    const h = await exportIebin(synthModel(moeConfig, { seed: 3 }), d, { converter: 'test', transform: toMxfp4(['experts']) });
    expect(h.tensors.filter((t) => t.dtype === 'mxfp4').map((t) => t.name)).toHaveLength(6);
    const r = await IebinReader.open(d);
    const t = r.tensor('blk.0.ffn_up_exps.weight');
    expect(t).toMatchObject({ dtype: 'mxfp4', shape: [4, 32, 64], bytes: (4 * 32 * 64 * 17) / 32 });
    // Every byte 0x7f: scale 2^0, low nibbles 15 (-6), high nibbles 7 (6).
    const v = decodeTensor(t, (await r.read(t.name)).bytes);
    expect([v[0], v[15], v[16], v[31], v[32]]).toEqual([-6, -6, 6, 6, -6]);
    await r.close();
    await expect(
      exportIebin(synthModel(moeConfig, { seed: 3 }), tmp(), { converter: 'test', transform: toMxfp4(['router']) }),
    ).rejects.toMatchObject({ code: 'IEBIN_BAD_DTYPE' });
  });
});

/** A copy of the HF fixture with a tokenizer.json (the fixture ships none) and optional edits. */
async function hfCopy(
  edit: {
    config?: (c: Record<string, any>) => void;
    tensors?: (specs: Array<{ name: string; dtype: string; shape: number[]; data: Uint8Array }>) => void;
  } = {},
): Promise<string> {
  const d = tmp();
  const cfg = JSON.parse(readFileSync(join(FIXTURE, 'hf', 'config.json'), 'utf8'));
  edit.config?.(cfg);
  writeFileSync(join(d, 'config.json'), JSON.stringify(cfg));
  writeFileSync(join(d, 'tokenizer.json'), synthHfTokenizerJson(synthVocabulary(512)));
  if (!edit.tensors) {
    copyFileSync(join(FIXTURE, 'hf', 'model.safetensors'), join(d, 'model.safetensors'));
    return d;
  }
  const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'hf', 'model.safetensors')));
  const h = parseSafetensors(bytes);
  const specs = h.entries.map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape, data: bytes.slice(e.begin, e.end) }));
  edit.tensors(specs);
  await writeSafetensors(join(d, 'model.safetensors'), specs, (i) => specs[i].data);
  return d;
}

describe.skipIf(!HAS_FIXTURE)(`gpt-oss-tiny: Hugging Face and GGUF imports${REASON}`, () => {
  const open = async () => {
    const hfDir = await hfCopy();
    return {
      hf: await openHfDir(hfDir),
      f32: await openGguf(join(FIXTURE, 'gguf', 'model_f32.gguf')),
      bf16: await openGguf(join(FIXTURE, 'gguf', 'model_bf16.gguf')),
    };
  };
  const closeAll = async (...s: ModelSource[]) => {
    for (const x of s) await x.close();
  };

  it('reads the same config from config.json and from both GGUF files', async () => {
    const { hf, f32, bf16 } = await open();
    try {
      expect(hf.config).toEqual({
        architecture: 'gpt-oss',
        dim: 64,
        n_layers: 4,
        n_heads: 4,
        n_kv_heads: 2,
        head_dim: 16,
        ffn_dim: 64,
        vocab_size: 512,
        context_length: 131072,
        rope_theta: 150000,
        rope_style: 'rotate_half',
        rope_scaling: { type: 'yarn', factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: false },
        norm_eps: 1e-5,
        tied_classifier: false,
        attn_qkv_bias: true,
        attn_output_bias: true,
        attn_sinks: true,
        sliding_window: 8,
        sliding_layers: [true, false, true, false],
        moe: { n_experts: 8, experts_per_token: 4, swiglu_limit: 7 },
        bos_id: 511,
        eos_id: 511,
      });
      expect(f32.config).toEqual(hf.config);
      expect(bf16.config).toEqual(hf.config);
      expect(f32.tokenizer).toMatchObject({ model: 'gpt2', merges: ['Ġ Ġ'], pre: 'gpt-4o' });
      expect(f32.tensors.map((t) => t.name)).toEqual(hf.tensors.map((t) => t.name));
    } finally {
      await closeAll(hf, f32, bf16);
    }
  });

  it('re-packs the HF MXFP4 experts into exactly the blocks llama.cpp wrote, and every float tensor has the same values', async () => {
    const { hf, f32, bf16 } = await open();
    try {
      let experts = 0;
      for (let i = 0; i < hf.tensors.length; i++) {
        const [a, b, c] = [hf.tensors[i], f32.tensors[i], bf16.tensors[i]];
        expect(b.shape, a.name).toEqual(a.shape);
        if (a.dtype === 'mxfp4') {
          experts++;
          expect(b.dtype).toBe('mxfp4');
          expect(c.dtype).toBe('mxfp4');
          const bytes = await a.read();
          expect(sameBytes(bytes, await b.read()), `${a.name} vs model_f32.gguf`).toBe(true);
          expect(sameBytes(bytes, await c.read()), `${a.name} vs model_bf16.gguf`).toBe(true);
          continue;
        }
        // HF is bf16 throughout; llama.cpp's f32 file holds those bf16 values exactly.
        expect(a.dtype, a.name).toBe('bf16');
        const v = await values(a);
        expect(firstDifference(await values(b), v), `${a.name} f32`).toBeNull();
        expect(firstDifference(await values(c), v), `${a.name} bf16`).toBeNull();
      }
      expect(experts).toBe(4 * 3);
    } finally {
      await closeAll(hf, f32, bf16);
    }
  });

  it("splits gate_up_proj: gate is the even rows, up the odd rows, as OpenAI's reference dequantizes them", async () => {
    const hfDir = await hfCopy();
    const src = await openHfDir(hfDir);
    try {
      const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'hf', 'model.safetensors')));
      const h = parseSafetensors(bytes);
      const get = (n: string) => {
        const e = h.entries.find((x) => x.name === n);
        if (!e) throw new Error(n);
        return bytes.subarray(e.begin, e.end);
      };
      const blocks = get('model.layers.2.mlp.experts.gate_up_proj_blocks');
      const scales = get('model.layers.2.mlp.experts.gate_up_proj_scales');
      const byName = new Map(src.tensors.map((t) => [t.name, t]));
      const gate = await values(byName.get('blk.2.ffn_gate_exps.weight') as SourceTensor);
      const up = await values(byName.get('blk.2.ffn_up_exps.weight') as SourceTensor);
      // Expert 5, fused row 2f (gate) and 2f + 1 (up), the reference's dequantization.
      const E = 5;
      for (const f of [0, 17, 63]) {
        for (const [row, got] of [
          [2 * f, gate],
          [2 * f + 1, up],
        ] as const) {
          const want: number[] = [];
          for (let b = 0; b < 2; b++) {
            const at = (E * 128 + row) * 2 + b;
            want.push(...hfReferenceBlock(blocks.subarray(at * 16, at * 16 + 16), scales[at]));
          }
          expect(firstDifference(got.subarray((E * 64 + f) * 64, (E * 64 + f + 1) * 64), want)).toBeNull();
        }
      }
      const bias = decodeBf16(new Uint16Array(get('model.layers.2.mlp.experts.gate_up_proj_bias').slice().buffer));
      const gb = await values(byName.get('blk.2.ffn_gate_exps.bias') as SourceTensor);
      const ub = await values(byName.get('blk.2.ffn_up_exps.bias') as SourceTensor);
      expect(gb[E * 64 + 3]).toBe(bias[E * 128 + 6]);
      expect(ub[E * 64 + 3]).toBe(bias[E * 128 + 7]);
    } finally {
      await src.close();
    }
  });

  it('exports both sources to IEBIN files that validate and hold the same tensors (experts as mxfp4, vectors as f32)', async () => {
    const { hf, f32, bf16 } = await open();
    const outs: string[] = [];
    try {
      for (const s of [hf, f32]) {
        const d = tmp();
        await exportIebin(s, d, { converter: 'test' });
        outs.push(d);
      }
    } finally {
      await closeAll(hf, f32, bf16);
    }
    const [a, b] = await Promise.all(outs.map((d) => IebinReader.open(d)));
    try {
      for (const r of [a, b]) expect((await r.verify()).ok).toBe(true);
      expect(b.config).toEqual(a.config);
      expect(a.header.tokenizer.model).toBe('hf');
      expect(b.header.tokenizer.model).toBe('gpt2');
      for (const t of a.tensors) {
        const u = b.tensor(t.name);
        expect(u.shape).toEqual(t.shape);
        if (t.dtype === 'mxfp4') {
          expect(u.dtype).toBe('mxfp4');
          expect(t.bytes).toBe((t.shape[0] * t.shape[1] * t.shape[2] * 17) / 32);
          expect(sameBytes((await a.read(t.name)).bytes, (await b.read(t.name)).bytes), t.name).toBe(true);
        } else {
          if (t.shape.length === 1 || t.name.includes('_exps.bias')) expect(t.dtype, t.name).toBe('f32');
          expect(
            firstDifference(decodeTensor(t, (await a.read(t.name)).bytes), decodeTensor(u, (await b.read(t.name)).bytes)),
            t.name,
          ).toBeNull();
        }
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('imports a dequantized (bf16 gate_up_proj / down_proj, x @ W) checkpoint to the same expert values, kept float', async () => {
    const packed = await openHfDir(await hfCopy());
    const dense = await hfCopy({
      config: (c) => delete c.quantization_config,
      tensors: (specs) => {
        for (const fused of ['gate_up_proj', 'down_proj']) {
          for (let L = 0; L < 4; L++) {
            const p = `model.layers.${L}.mlp.experts.${fused}`;
            const bi = specs.findIndex((s) => s.name === `${p}_blocks`);
            const si = specs.findIndex((s) => s.name === `${p}_scales`);
            const [E, N, nb] = specs[si].shape;
            const K = nb * 32;
            const v = decodeBlocks('mxfp4', mxfp4FromHf(specs[bi].data, specs[si].data, E * N, K), E * N, K);
            // HF's dequantized parameter is the transpose per expert: [E, K, N].
            const t = new Float32Array(v.length);
            for (let e = 0; e < E; e++)
              for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[(e * K + k) * N + n] = v[(e * N + n) * K + k];
            const bf = encodeBf16(t);
            expect(firstDifference(decodeBf16(bf), t)).toBeNull(); // MXFP4 values are exact in bf16
            specs.splice(Math.max(bi, si), 1);
            specs.splice(Math.min(bi, si), 1, { name: p, dtype: 'BF16', shape: [E, K, N], data: new Uint8Array(bf.buffer) });
          }
        }
      },
    });
    const src = await openHfDir(dense);
    try {
      for (let i = 0; i < src.tensors.length; i++) {
        const t = src.tensors[i];
        if (!t.name.includes('_exps.weight')) continue;
        expect(t.dtype).toBe('bf16');
        expect(firstDifference(await values(t), await values(packed.tensors[i])), t.name).toBeNull();
      }
    } finally {
      await src.close();
      await packed.close();
    }
  });

  it('refuses malformed checkpoints with one typed error naming the tensor or field', async () => {
    const expectOpen = async (dir: string, want: Record<string, unknown>) => {
      await expect(openHfDir(dir)).rejects.toMatchObject(want);
    };
    const scalesName = 'model.layers.1.mlp.experts.down_proj_scales';
    // A NaN scale: refused when the tensor is read (at export), naming the scales tensor.
    const nanDir = await hfCopy({ tensors: (s) => void ((s.find((x) => x.name === scalesName) as { data: Uint8Array }).data[77] = 255) });
    const src = await openHfDir(nanDir);
    try {
      const t = src.tensors.find((x) => x.name === 'blk.1.ffn_down_exps.weight') as SourceTensor;
      await expect(t.read()).rejects.toMatchObject({
        name: 'HfModelError',
        code: 'HF_BAD_TENSOR',
        field: scalesName,
        message: expect.stringContaining('255'),
      });
      await expect(exportIebin(src, tmp(), { converter: 'test' })).rejects.toMatchObject({ code: 'HF_BAD_TENSOR', field: scalesName });
    } finally {
      await src.close();
    }
    await expectOpen(
      await hfCopy({
        tensors: (s) =>
          void s.splice(
            s.findIndex((x) => x.name === scalesName),
            1,
          ),
      }),
      { name: 'HfModelError', code: 'HF_MISSING_TENSOR', field: scalesName },
    );
    const blocksName = 'model.layers.0.mlp.experts.gate_up_proj_blocks';
    await expectOpen(
      await hfCopy({ tensors: (s) => void ((s.find((x) => x.name === blocksName) as { shape: number[] }).shape = [8, 128, 1, 32]) }),
      { code: 'HF_BAD_TENSOR', field: blocksName },
    );
    await expectOpen(await hfCopy({ config: (c) => (c.intermediate_size = 96) }), { code: 'HF_BAD_TENSOR', field: blocksName });
    await expectOpen(await hfCopy({ config: (c) => (c.intermediate_size = 48) }), {
      code: 'HF_BAD_CONFIG',
      field: 'intermediate_size',
      message: expect.stringContaining('32-element blocks'),
    });
    await expectOpen(await hfCopy({ config: (c) => (c.layer_types[2] = 'chunked_attention') }), {
      code: 'HF_BAD_CONFIG',
      field: 'layer_types[2]',
    });
    await expectOpen(await hfCopy({ config: (c) => (c.layer_types = ['sliding_attention']) }), {
      code: 'HF_BAD_CONFIG',
      field: 'layer_types',
    });
    await expectOpen(await hfCopy({ config: (c) => (c.num_experts_per_tok = 9) }), { code: 'HF_BAD_CONFIG', field: 'num_experts_per_tok' });
    await expectOpen(await hfCopy({ config: (c) => delete c.quantization_config }), {
      code: 'HF_BAD_CONFIG',
      field: 'quantization_config.quant_method',
    });
    await expectOpen(await hfCopy({ config: (c) => (c.rope_scaling.rope_type = 'dynamic') }), {
      code: 'HF_BAD_CONFIG',
      field: 'rope_scaling.rope_type',
    });
    await expectOpen(
      await hfCopy({
        tensors: (s) =>
          void s.splice(
            s.findIndex((x) => x.name === 'model.layers.3.self_attn.sinks'),
            1,
          ),
      }),
      { code: 'HF_MISSING_TENSOR', field: 'model.layers.3.self_attn.sinks' },
    );
    await expectOpen(await hfCopy({ config: (c) => (c.num_local_experts = 4) }), { code: 'HF_BAD_TENSOR' });
  });

  it('refuses a NaN MXFP4 scale in a GGUF file by tensor name', async () => {
    const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'gguf', 'model_f32.gguf')));
    const g = await openGguf(join(FIXTURE, 'gguf', 'model_f32.gguf'));
    const t = g.tensors.find((x) => x.name === 'blk.0.ffn_up_exps.weight') as SourceTensor;
    const good = await t.read();
    await g.close();
    // Find the tensor's bytes in the file and poison block 3's scale.
    const at = Buffer.from(bytes).indexOf(Buffer.from(good));
    expect(at).toBeGreaterThan(0);
    bytes[at + 3 * 17] = 255;
    const d = tmp();
    writeFileSync(join(d, 'bad.gguf'), bytes);
    const src = await openGguf(join(d, 'bad.gguf'));
    try {
      const u = src.tensors.find((x) => x.name === 'blk.0.ffn_up_exps.weight') as SourceTensor;
      await expect(u.read()).rejects.toMatchObject({ name: 'GgufError', code: 'GGUF_BAD_TENSOR_DATA', field: 'blk.0.ffn_up_exps.weight' });
    } finally {
      await src.close();
    }
  });
});
