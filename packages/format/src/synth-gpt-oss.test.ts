import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHARED_DIR, firstDifference, sameBytes } from '@ie/testing';
import { MXFP4_VALUES, decodeBlocks, mxfp4FromHf, mxfp4ToHf, quantizeMxfp4 } from './blocks.js';
import { exportIebin } from './export-iebin.js';
import { decodeBf16, encodeBf16 } from './dtype.js';
import { openGguf, parseGguf } from './gguf.js';
import { writeGguf } from './gguf-writer.js';
import type { Gpt2TokenizerSpec } from './header.js';
import { openHfDir, writeHfDir } from './hf.js';
import { configProblems, expectedTensors, type ModelConfig } from './llama.js';
import { IebinReader } from './reader.js';
import { parseSafetensors } from './safetensors.js';
import { readChunks, readStreams, type ModelSource, type SourceTensor } from './source.js';
import {
  Rng,
  SYNTH_PRESETS,
  cutLayers,
  gpt2ByteChars,
  harmonySpecialIds,
  synthHarmonyVocabulary,
  synthModel,
  synthTensorValues,
} from './synth.js';
import { decodeTensor } from './tensor.js';
import { hfReferenceBlock } from '../test/mxfp4-oracle.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-synth-oss-'));
const FIXTURE = join(SHARED_DIR, 'models', 'gpt-oss-tiny');
const HAS_FIXTURE = existsSync(join(FIXTURE, 'hf', 'config.json')) && existsSync(join(FIXTURE, 'gguf', 'model_bf16.gguf'));
const REASON = HAS_FIXTURE ? '' : ` — comparisons with the real layouts SKIPPED: ${FIXTURE} not found (CI provides ../shared)`;

/** The values of a source tensor, f32 (floats decoded, blocks decoded): sources are row-major. */
async function values(t: SourceTensor): Promise<Float32Array> {
  return decodeTensor({ dtype: t.dtype, shape: t.shape, quant: null, layout: { order: 'row_major', block_k: 0 } }, await t.read());
}

/** The E2M1 codes of a ggml block, element order. */
function codes(block: Uint8Array): number[] {
  const out: number[] = [];
  for (let j = 0; j < 16; j++) out[j] = block[1 + j] & 15;
  for (let j = 0; j < 16; j++) out[16 + j] = block[1 + j] >> 4;
  return out;
}

describe('the MXFP4 quantizer', () => {
  it('takes the smallest power-of-two scale with max|v| <= 6 * scale and the nearest E2M1 code, ties to the even code', () => {
    // amax 6: scale 2^0. Midpoints 0.25 0.75 1.25 1.75 2.5 3.5 5 go to the even code; zero and -0 are code 0.
    const v = new Float32Array(32);
    v.set([0, -0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, -6, -0.25, -0.75, 0.3, -2.9, 4.4]);
    const b = quantizeMxfp4(v);
    expect(b[0]).toBe(127);
    expect(codes(b).slice(0, 16)).toEqual([0, 0, 0, 2, 2, 4, 4, 6, 6, 7, 15, 0, 10, 1, 13, 6]);
    // amax just above 6 needs scale 2; amax 3 fits scale 1/2 exactly (3 = 6 * 1/2 → code 7).
    v.fill(0);
    v[5] = 6.0001;
    expect(quantizeMxfp4(v)[0]).toBe(128);
    v[5] = 3;
    const half = quantizeMxfp4(v);
    expect([half[0], codes(half)[5]]).toEqual([126, 7]);
    // An all-zero block: scale byte 1 (as @ie/quant's packer), every code 0.
    expect([...quantizeMxfp4(new Float32Array(32))]).toEqual([1, ...new Array(16).fill(0)]);
    expect(() => quantizeMxfp4(new Float32Array(48))).toThrow(RangeError);
  });

  it('decodes to a nearest grid value of its block, and packs the same in pieces as whole', () => {
    const v = new Rng(11).fillBell(new Float32Array(32 * 256), 0.03);
    const b = quantizeMxfp4(v);
    const d = decodeBlocks('mxfp4', b, 256, 32);
    for (let i = 0; i < v.length; i++) {
      const s = 2 ** (b[17 * Math.floor(i / 32)] - 127);
      const best = Math.min(...MXFP4_VALUES.map((g) => Math.abs(g * s - v[i])));
      expect(Math.abs(d[i] - v[i]), `value ${i}`).toBe(best);
    }
    const pieces = new Uint8Array(b.length);
    quantizeMxfp4(v.subarray(0, 32 * 100), pieces.subarray(0, 17 * 100));
    quantizeMxfp4(v.subarray(32 * 100), pieces.subarray(17 * 100));
    expect(sameBytes(pieces, b)).toBe(true);
  });

  it('writes Hugging Face blocks and scales that the importer re-packs into the same ggml blocks', () => {
    const g = quantizeMxfp4(new Rng(12).fillBell(new Float32Array(32 * 6), 1));
    const blocks = new Uint8Array(6 * 16);
    const scales = new Uint8Array(6);
    mxfp4ToHf(g, blocks, 0, scales, 0);
    expect(sameBytes(mxfp4FromHf(blocks, scales, 3, 64), g)).toBe(true);
    // HF byte 0 holds elements 0 (low) and 1 (high); ggml byte 1 holds elements 0 and 16.
    expect(blocks[0]).toBe((g[1] & 15) | ((g[2] & 15) << 4));
    expect(hfReferenceBlock(blocks.subarray(16, 32), scales[1])).toEqual([...decodeBlocks('mxfp4', g.subarray(17, 34), 1, 32)]);
  });
});

describe('gpt-oss presets', () => {
  it("gpt-oss-20b is openai/gpt-oss-20b: its config, and exactly its checkpoint's 13,761,264,768 bytes of tensors", () => {
    const c = SYNTH_PRESETS['gpt-oss-20b'].config;
    expect(c).toEqual({
      architecture: 'gpt-oss',
      dim: 2880,
      n_layers: 24,
      n_heads: 64,
      n_kv_heads: 8,
      head_dim: 64,
      ffn_dim: 2880,
      vocab_size: 201088,
      context_length: 131072,
      rope_theta: 150000,
      rope_style: 'rotate_half',
      rope_scaling: { type: 'yarn', factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: false },
      norm_eps: 1e-5,
      tied_classifier: false,
      attn_qkv_bias: true,
      attn_output_bias: true,
      attn_sinks: true,
      sliding_window: 128,
      sliding_layers: Array.from({ length: 24 }, (_, i) => i % 2 === 0),
      moe: { n_experts: 32, experts_per_token: 4, swiglu_limit: 7 },
      bos_id: 200002,
      eos_id: 200002,
    });
    expect(configProblems(c)).toEqual([]);
    // model.safetensors.index.json's total_size: bf16 tensors and MXFP4 experts (16 block bytes + 1 scale per 32 values).
    const src = synthModel('gpt-oss-20b');
    const bytes = src.tensors.reduce(
      (a, t) => a + (t.dtype === 'mxfp4' ? (t.shape.reduce((x, y) => x * y, 1) / 32) * 17 : t.shape.reduce((x, y) => x * y, 2)),
      0,
    );
    expect(bytes).toBe(13_761_264_768);
    expect(src.tensors.filter((t) => t.dtype === 'mxfp4')).toHaveLength(72);
    expect(new Set(src.tensors.filter((t) => t.dtype !== 'mxfp4').map((t) => t.dtype))).toEqual(new Set(['bf16']));
  });

  it('gpt-oss-tiny is the same architecture at test size, its query width (128) unlike its dim (96) as in the 20b', () => {
    const c = SYNTH_PRESETS['gpt-oss-tiny'].config;
    expect(c).toMatchObject({
      dim: 96,
      n_layers: 4,
      n_heads: 4,
      n_kv_heads: 2,
      head_dim: 32,
      ffn_dim: 128,
      vocab_size: 1024,
      sliding_window: 8,
      sliding_layers: [true, false, true, false],
      moe: { n_experts: 8, experts_per_token: 4 },
    });
    expect({
      ...c,
      dim: 0,
      n_layers: 0,
      n_heads: 0,
      n_kv_heads: 0,
      head_dim: 0,
      ffn_dim: 0,
      vocab_size: 0,
      sliding_window: 0,
      sliding_layers: null,
      moe: null,
      bos_id: 0,
      eos_id: 0,
    }).toEqual({
      ...SYNTH_PRESETS['gpt-oss-20b'].config,
      dim: 0,
      n_layers: 0,
      n_heads: 0,
      n_kv_heads: 0,
      head_dim: 0,
      ffn_dim: 0,
      vocab_size: 0,
      sliding_window: 0,
      sliding_layers: null,
      moe: null,
      bos_id: 0,
      eos_id: 0,
    });
    expect(configProblems(c)).toEqual([]);
    const tok = synthModel('gpt-oss-tiny').tokenizer as Gpt2TokenizerSpec;
    expect(tok.pieces[c.eos_id]).toBe('<|return|>');
  });

  it('the harmony vocabulary: o200k_harmony special ids in a 201088 vocabulary, byte pieces first, merges that build every n-gram', () => {
    const v = synthHarmonyVocabulary(201088);
    expect(v).toMatchObject({ model: 'gpt2', pre: 'gpt-4o', add_bos: false });
    expect(v.pieces).toHaveLength(201088);
    expect(new Set(v.pieces).size).toBe(201088);
    const real: Record<number, string> = {
      199998: '<|startoftext|>',
      199999: '<|endoftext|>',
      200000: '<|reserved_200000|>',
      200002: '<|return|>',
      200003: '<|constrain|>',
      200005: '<|channel|>',
      200006: '<|start|>',
      200007: '<|end|>',
      200008: '<|message|>',
      200012: '<|call|>',
      200013: '<|reserved_200013|>',
      200018: '<|endofprompt|>',
      200019: '<|reserved_200019|>',
      201087: '<|reserved_201087|>',
    };
    for (const [id, p] of Object.entries(real)) expect(v.pieces[Number(id)], id).toBe(p);
    expect(v.types.slice(199997, 200000)).toEqual([1, 3, 3]);
    expect(v.types.slice(-1)).toEqual([3]);
    expect(harmonySpecialIds(201088)).toMatchObject({ '<|start|>': 200006, '<|return|>': 200002, '<|call|>': 200012 });
    // GPT-2's byte map, byte order (as llama.cpp writes gpt-oss files): byte 0 is Ā, space is Ġ.
    expect(v.pieces.slice(0, 3)).toEqual(['Ā', 'ā', 'Ă']);
    expect(v.pieces[0x20]).toBe('Ġ');
    expect(v.pieces[0x61]).toBe('a');
    expect(gpt2ByteChars()).toEqual(v.pieces.slice(0, 256));
    expect(v.merges.slice(0, 3)).toEqual(['Ġ a', 'Ġ b', 'Ġ c']);
    expect(v.merges).toHaveLength(199998 - 256);
    const ids = new Map(v.pieces.map((p, i) => [p, i]));
    for (const [i, m] of v.merges.entries()) {
      const [l, r] = m.split(' ');
      // Each merge joins two earlier pieces into the piece it ranks: piece 256 + i.
      expect((ids.get(l) ?? Infinity) < 256 + i && (ids.get(r) ?? Infinity) < 256 + i && ids.get(l + r) === 256 + i, m).toBe(true);
      if (i > 2000) break;
    }
    // A small vocabulary keeps the 21 specials at its end.
    const tiny = synthHarmonyVocabulary(1024);
    expect(tiny.pieces.slice(1003)).toEqual([
      '<|startoftext|>',
      '<|endoftext|>',
      '<|reserved_1005|>',
      '<|reserved_1006|>',
      '<|return|>',
      '<|constrain|>',
      '<|reserved_1009|>',
      '<|channel|>',
      '<|start|>',
      '<|end|>',
      '<|message|>',
      '<|reserved_1014|>',
      '<|reserved_1015|>',
      '<|reserved_1016|>',
      '<|call|>',
      '<|reserved_1018|>',
      '<|reserved_1019|>',
      '<|reserved_1020|>',
      '<|reserved_1021|>',
      '<|reserved_1022|>',
      '<|endofprompt|>',
    ]);
    expect(() => synthHarmonyVocabulary(276)).toThrow(RangeError);
  });

  it('values: gpt-oss experts on the MXFP4 grid, every other value a bf16 value; drawn with the documented law', async () => {
    const c = SYNTH_PRESETS['gpt-oss-tiny'].config;
    const table = expectedTensors(c);
    const src = synthModel('gpt-oss-tiny', { seed: 5 });
    for (const [i, t] of table.entries()) {
      const v = synthTensorValues(c, 5, i);
      const raw = new Rng(5, i).fillBell(
        new Float32Array(v.length),
        t.role === 'norm'
          ? 0.1
          : t.role === 'embedding'
            ? c.dim ** -0.25
            : ['bias', 'expert_bias', 'sinks'].includes(t.role)
              ? 0.1
              : 1 / Math.sqrt(t.shape[t.shape.length - 1]),
        t.role === 'norm' ? 1 : 0,
      );
      const want = t.role === 'experts' ? decodeBlocks('mxfp4', quantizeMxfp4(raw), raw.length / 32, 32) : decodeBf16(encodeBf16(raw));
      expect(firstDifference(v, want), t.name).toBeNull();
      expect(firstDifference(await values(src.tensors[i]), v), t.name).toBeNull();
      expect(src.tensors[i].dtype, t.name).toBe(t.role === 'experts' ? 'mxfp4' : 'bf16');
    }
    // f32 storage and float experts hold the very same values.
    const f32 = synthModel('gpt-oss-tiny', { seed: 5, dtype: 'f32', experts: 'float' });
    for (const [i, t] of f32.tensors.entries()) {
      expect(t.dtype).toBe('f32');
      expect(firstDifference(await values(t), synthTensorValues(c, 5, i)), t.name).toBeNull();
    }
    expect(() => synthModel('gpt-oss-tiny', { dtype: 'f16' })).toThrow(/bf16 .* or f32/);
    expect(() => synthModel({ ...c, dim: 80 })).toThrow(/multiples of 32/);
  });

  it('the inlined fillBell draws what u32() draws, one per value', () => {
    const a = new Rng(9, 4);
    const b = new Rng(9, 4);
    const v = a.fillBell(new Float32Array(1000), 0.5, 1);
    const k = (0.5 * Math.sqrt(6)) / 65536;
    for (let i = 0; i < 1000; i++) {
      const x = b.u32();
      expect(v[i]).toBe(Math.fround(1 + k * ((x & 0xffff) + (x >>> 16) + 1 - 65536)));
    }
    expect(a.u32()).toBe(b.u32());
  });

  it('--layers: cutLayers keeps the first layers (tensors and sliding flags); a cut preset reproduces those layers', async () => {
    const cut = synthModel('gpt-oss-tiny', { seed: 2, layers: 2 });
    expect(cut.config).toEqual(cutLayers(SYNTH_PRESETS['gpt-oss-tiny'].config, 2));
    expect(cut.config).toMatchObject({ n_layers: 2, sliding_layers: [true, false] });
    expect(cut.notes).toContain('layers cut to 2 of 4');
    const full = synthModel('gpt-oss-tiny', { seed: 2 });
    for (const t of cut.tensors.filter((x) => x.name.startsWith('blk.') || x.name === 'token_embd.weight')) {
      const u = full.tensors.find((x) => x.name === t.name) as SourceTensor;
      expect(sameBytes(await t.read(), await u.read()), t.name).toBe(true);
    }
    expect(() => synthModel('gpt-oss-tiny', { layers: 5 })).toThrow(/1\.\.4/);
    expect(() => synthModel('tiny', { layers: 0 })).toThrow(RangeError);
  });

  it('streams: a big tensor comes in pieces of at most 2^20 values, the first as the law draws it; a cut 20b layer starts at once', async () => {
    const src = synthModel('gpt-oss-20b', { seed: 1, layers: 1 });
    const q = src.tensors.find((t) => t.name === 'blk.0.attn_q.weight') as SourceTensor;
    expect(readStreams(q)).toBe(true);
    const pieces: Uint8Array[] = [];
    for await (const p of readChunks(q)) pieces.push(p);
    expect(pieces.map((p) => p.length)).toEqual([...new Array(11).fill(2 << 20), 4096 * 2880 * 2 - 11 * (2 << 20)]);
    const index = expectedTensors(src.config).findIndex((t) => t.name === q.name);
    const first = new Rng(1, index).fillBell(new Float32Array(1 << 20), 1 / Math.sqrt(2880));
    expect(sameBytes(pieces[0], new Uint8Array(encodeBf16(first).buffer))).toBe(true);
    // The experts: 17-byte blocks per 32 values.
    const it = readChunks(src.tensors.find((t) => t.name === 'blk.0.ffn_down_exps.weight') as SourceTensor)[Symbol.asyncIterator]();
    expect(((await it.next()).value as Uint8Array).length).toBe(((1 << 20) / 32) * 17);
    expect(src.config.n_layers).toBe(1);
  });
});

/** Every tensor of three IEBIN models decodes to the same values; mxfp4 tensors are the same bytes. */
async function expectSameTensors(dirs: string[]): Promise<void> {
  const rs = await Promise.all(dirs.map((d) => IebinReader.open(d)));
  try {
    for (const r of rs) expect((await r.verify()).ok).toBe(true);
    for (const t of rs[0].tensors) {
      const bytes = (await rs[0].read(t.name)).bytes;
      for (const r of rs.slice(1)) {
        const u = r.tensor(t.name);
        const other = (await r.read(t.name)).bytes;
        expect(u.shape, t.name).toEqual(t.shape);
        if (t.dtype === 'mxfp4') expect(u.dtype === 'mxfp4' && sameBytes(bytes, other), t.name).toBe(true);
        else expect(firstDifference(decodeTensor(u, other), decodeTensor(t, bytes)), t.name).toBeNull();
      }
    }
  } finally {
    for (const r of rs) await r.close();
  }
}

describe(`gpt-oss-tiny written as IEBIN, as a Hugging Face checkpoint and as GGUF${REASON}`, () => {
  const seed = 7;
  const config = SYNTH_PRESETS['gpt-oss-tiny'].config;

  it('round trip: synth HF → import and synth GGUF → import give the weights and config of the IEBIN synth, and validate', async () => {
    const direct = tmp();
    await exportIebin(synthModel('gpt-oss-tiny', { seed }), direct, { converter: 'test' });
    const hf = tmp();
    await writeHfDir(synthModel('gpt-oss-tiny', { seed }), hf, { shards: 3 });
    const gguf = join(tmp(), 'm.gguf');
    await writeGguf(synthModel('gpt-oss-tiny', { seed }), gguf);
    const fromHf = tmp();
    const fromGguf = tmp();
    const h = await openHfDir(hf);
    const g = await openGguf(gguf);
    try {
      expect(h.config).toEqual(config);
      expect(g.config).toEqual(config);
      await exportIebin(h, fromHf, { converter: 'test' });
      await exportIebin(g, fromGguf, { converter: 'test' });
      const vocab = synthHarmonyVocabulary(1024);
      expect(g.tokenizer).toEqual({
        model: 'gpt2',
        pieces: vocab.pieces,
        types: vocab.types,
        merges: vocab.merges,
        pre: 'gpt-4o',
        add_bos: false,
      });
    } finally {
      await h.close();
      await g.close();
    }
    await expectSameTensors([direct, fromHf, fromGguf]);
    const dtypes = (d: string) =>
      new Map(
        (JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8')).tensors as Array<{ name: string; dtype: string }>).map((t) => [
          t.name,
          t.dtype,
        ]),
      );
    const [a, b, c] = [direct, fromHf, fromGguf].map(dtypes);
    expect(b).toEqual(a);
    // llama.cpp keeps the router F32; everything else matches dtype for dtype.
    for (const [n, d] of a) expect(c.get(n), n).toBe(n.endsWith('ffn_gate_inp.weight') ? 'f32' : d);
    expect(a.get('blk.0.ffn_gate_inp.weight')).toBe('bf16');
    // And the values are the preset's.
    const r = await IebinReader.open(fromGguf);
    for (const [i, t] of expectedTensors(config).entries())
      expect(
        firstDifference(decodeTensor(r.tensor(t.name), (await r.read(t.name)).bytes), synthTensorValues(config, seed, i)),
        t.name,
      ).toBeNull();
    await r.close();
  });

  it("the Hugging Face directory has openai/gpt-oss-20b's layout: its config keys, U8 MXFP4 pairs with interleaved gate/up rows, BF16 elsewhere", async () => {
    const hf = tmp();
    expect(await writeHfDir(synthModel('gpt-oss-tiny', { seed }), hf)).toBe(1);
    expect(readdirSync(hf).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    const keys = [
      'architectures',
      'attention_bias',
      'attention_dropout',
      'eos_token_id',
      'experts_per_token',
      'head_dim',
      'hidden_act',
      'hidden_size',
      'initial_context_length',
      'initializer_range',
      'intermediate_size',
      'layer_types',
      'max_position_embeddings',
      'model_type',
      'num_attention_heads',
      'num_experts_per_tok',
      'num_hidden_layers',
      'num_key_value_heads',
      'num_local_experts',
      'output_router_logits',
      'pad_token_id',
      'quantization_config',
      'rms_norm_eps',
      'rope_scaling',
      'rope_theta',
      'router_aux_loss_coef',
      'sliding_window',
      'swiglu_limit',
      'tie_word_embeddings',
      'transformers_version',
      'use_cache',
      'vocab_size',
    ];
    expect(Object.keys(cfg)).toEqual(keys);
    if (HAS_FIXTURE) {
      const real = JSON.parse(readFileSync(join(FIXTURE, 'hf', 'config.json'), 'utf8'));
      expect(Object.keys(real).sort()).toEqual(keys);
      expect(cfg.quantization_config).toEqual(real.quantization_config);
      expect(cfg.rope_scaling).toEqual(real.rope_scaling);
    }
    expect(cfg).toMatchObject({
      eos_token_id: 1007,
      pad_token_id: 1004,
      sliding_window: 8,
      layer_types: ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'],
      hidden_size: 96,
      intermediate_size: 128,
      head_dim: 32,
    });
    const bytes = new Uint8Array(readFileSync(join(hf, 'model.safetensors')));
    const st = parseSafetensors(bytes);
    const entry = (n: string) => st.entries.find((e) => e.name === n) as (typeof st.entries)[number];
    const L = 'model.layers.1.mlp.experts.';
    expect(entry(`${L}gate_up_proj_blocks`)).toMatchObject({ dtype: 'U8', shape: [8, 256, 3, 16] });
    expect(entry(`${L}gate_up_proj_scales`)).toMatchObject({ dtype: 'U8', shape: [8, 256, 3] });
    expect(entry(`${L}gate_up_proj_bias`)).toMatchObject({ dtype: 'BF16', shape: [8, 256] });
    expect(entry(`${L}down_proj_blocks`)).toMatchObject({ dtype: 'U8', shape: [8, 96, 4, 16] });
    expect(entry(`${L}down_proj_scales`)).toMatchObject({ dtype: 'U8', shape: [8, 96, 4] });
    expect(entry(`${L}down_proj_bias`)).toMatchObject({ dtype: 'BF16', shape: [8, 96] });
    expect(entry('model.layers.1.self_attn.sinks')).toMatchObject({ dtype: 'BF16', shape: [4] });
    expect(st.entries.filter((e) => e.dtype !== 'U8').every((e) => e.dtype === 'BF16')).toBe(true);
    expect(st.entries).toHaveLength(3 + 4 * 19);
    if (HAS_FIXTURE) {
      const real = parseSafetensors(new Uint8Array(readFileSync(join(FIXTURE, 'hf', 'model.safetensors'))));
      const pattern = (n: string) => n.replace(/\d+/g, 'N');
      expect(new Set(st.entries.map((e) => `${pattern(e.name)} ${e.dtype}`))).toEqual(
        new Set(real.entries.map((e) => `${pattern(e.name)} ${e.dtype}`)),
      );
    }
    // OpenAI's reference dequantization of fused row 2f is gate row f, of row 2f + 1 up row f.
    const table = expectedTensors(config);
    const gate = synthTensorValues(
      config,
      seed,
      table.findIndex((t) => t.name === 'blk.1.ffn_gate_exps.weight'),
    );
    const up = synthTensorValues(
      config,
      seed,
      table.findIndex((t) => t.name === 'blk.1.ffn_up_exps.weight'),
    );
    const blocks = bytes.subarray(entry(`${L}gate_up_proj_blocks`).begin);
    const scales = bytes.subarray(entry(`${L}gate_up_proj_scales`).begin);
    for (const [e, f] of [
      [0, 0],
      [3, 17],
      [7, 127],
    ]) {
      for (const [row, want] of [
        [2 * f, gate],
        [2 * f + 1, up],
      ] as const) {
        const got: number[] = [];
        for (let b = 0; b < 3; b++) {
          const at = (e * 256 + row) * 3 + b;
          got.push(...hfReferenceBlock(blocks.subarray(at * 16, at * 16 + 16), scales[at]));
        }
        expect(firstDifference(got, want.subarray((e * 128 + f) * 96, (e * 128 + f + 1) * 96)), `expert ${e} row ${row}`).toBeNull();
      }
    }
    const tok = JSON.parse(readFileSync(join(hf, 'tokenizer.json'), 'utf8'));
    expect(tok.model).toMatchObject({ type: 'BPE', byte_fallback: false });
    expect(tok.model.vocab['<|message|>']).toBe(1013);
    expect(tok.added_tokens.map((t: { content: string }) => t.content)).toContain('<|call|>');
    expect(tok.added_tokens).toHaveLength(21);
  });

  it("float experts are written as the dequantized checkpoint's x @ W tensors (no quantization_config) and import to the same values", async () => {
    const hf = tmp();
    await writeHfDir(synthModel('gpt-oss-tiny', { seed, experts: 'float', layers: 1 }), hf);
    const cfg = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
    expect(cfg.quantization_config).toBeUndefined();
    const st = parseSafetensors(new Uint8Array(readFileSync(join(hf, 'model.safetensors'))));
    expect(st.entries.find((e) => e.name === 'model.layers.0.mlp.experts.gate_up_proj')).toMatchObject({
      dtype: 'BF16',
      shape: [8, 96, 256],
    });
    expect(st.entries.find((e) => e.name === 'model.layers.0.mlp.experts.down_proj')).toMatchObject({ dtype: 'BF16', shape: [8, 128, 96] });
    expect(st.entries.some((e) => e.dtype === 'U8')).toBe(false);
    const src = await openHfDir(hf);
    try {
      const c = cutLayers(config, 1);
      expect(src.config).toEqual(c);
      for (const [i, t] of src.tensors.entries())
        expect(firstDifference(await values(t), synthTensorValues(c, seed, i)), t.name).toBeNull();
    } finally {
      await src.close();
    }
  });

  it('shards a big directory: files of at most maxShardBytes, an index, and the import reads them back', async () => {
    const hf = tmp();
    expect(await writeHfDir(synthModel('gpt-oss-tiny', { seed }), hf, { maxShardBytes: 400_000 })).toBe(4);
    const idx = JSON.parse(readFileSync(join(hf, 'model.safetensors.index.json'), 'utf8'));
    expect(idx.metadata.total_size).toBe(1_348_128); // bf16 tensors, 17 bytes per 32 expert values
    expect(new Set(Object.values(idx.weight_map))).toEqual(new Set([1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`)));
    const src = await openHfDir(hf);
    expect(src.tensors).toHaveLength(79);
    await src.close();
  });

  it("the GGUF file is what llama.cpp's converter writes: its keys in order, MXFP4 experts [K, N, E], F32 vectors and router, post_attention_norm", async () => {
    const path = join(tmp(), 'm.gguf');
    await writeGguf(synthModel('gpt-oss-tiny', { seed }), path);
    const bytes = new Uint8Array(readFileSync(path));
    const g = parseGguf(bytes, bytes.length, path);
    const keys = [...g.metadata.keys()];
    if (HAS_FIXTURE) {
      const real = new Uint8Array(readFileSync(join(FIXTURE, 'gguf', 'model_bf16.gguf')));
      const r = parseGguf(real, real.length, 'real');
      // The fixture's keys less general.size_label (a parameter-count label), each with the same kind of value.
      expect(keys).toEqual([...r.metadata.keys()].filter((k) => k !== 'general.size_label'));
      for (const k of keys) {
        const [a, b] = [g.metadata.get(k), r.metadata.get(k)];
        expect(typeof a, k).toBe(typeof b);
        if (typeof a === 'object') expect((a as { type: string }).type, k).toBe((b as { type: string }).type);
      }
      const pattern = (n: string) => n.replace(/\d+/g, 'N');
      const types = (x: typeof g) => new Set(x.tensors.map((t) => `${pattern(t.name)} ${t.type} ${t.ne.length}`));
      expect(types(g)).toEqual(types(r));
    }
    expect(g.metadata.get('general.architecture')).toBe('gpt-oss');
    expect(g.metadata.get('general.file_type')).toBe(38);
    expect(g.metadata.get('tokenizer.ggml.pre')).toBe('gpt-4o');
    expect(g.metadata.get('tokenizer.ggml.eos_token_id')).toBe(1007);
    expect(g.metadata.get('tokenizer.ggml.padding_token_id')).toBe(1004);
    expect(g.metadata.has('tokenizer.ggml.bos_token_id')).toBe(false);
    const t = (n: string) => g.tensors.find((x) => x.name === n);
    expect(t('blk.0.ffn_up_exps.weight')).toMatchObject({ type: 39, ne: [96, 128, 8] });
    expect(t('blk.0.ffn_down_exps.weight')).toMatchObject({ type: 39, ne: [128, 96, 8] });
    expect(t('blk.0.post_attention_norm.weight')).toMatchObject({ type: 0, ne: [96] });
    expect(t('blk.0.ffn_norm.weight')).toBeUndefined();
    expect(t('blk.0.ffn_gate_inp.weight')).toMatchObject({ type: 0, ne: [96, 8] });
    expect(t('blk.0.ffn_gate_exps.bias')).toMatchObject({ type: 0, ne: [128, 8] });
    expect(t('blk.0.attn_q.weight')).toMatchObject({ type: 30, ne: [96, 128] });
    // --dtype f32: every float tensor F32, the experts still MXFP4, the same values.
    const f32 = join(tmp(), 'f.gguf');
    await writeGguf(synthModel('gpt-oss-tiny', { seed, dtype: 'f32' }), f32);
    const a = await openGguf(path);
    const b = await openGguf(f32);
    try {
      for (let i = 0; i < a.tensors.length; i++) {
        expect(b.tensors[i].dtype).toBe(a.tensors[i].dtype === 'mxfp4' ? 'mxfp4' : 'f32');
        expect(firstDifference(await values(b.tensors[i]), await values(a.tensors[i])), a.tensors[i].name).toBeNull();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("refuses gpt-oss configs llama.cpp's GGUF cannot say exactly, by field", async () => {
    const path = join(tmp(), 'm.gguf');
    const edit = (over: Partial<ModelConfig>): ModelSource => ({ ...synthModel('gpt-oss-tiny'), config: { ...config, ...over } });
    await expect(writeGguf(edit({ moe: { n_experts: 8, experts_per_token: 4, swiglu_limit: 5 } }), path)).rejects.toMatchObject({
      code: 'GGUF_BAD_METADATA',
      field: 'moe.swiglu_limit',
    });
    await expect(
      writeGguf(
        edit({ rope_scaling: { type: 'yarn', factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: true } }),
        path,
      ),
    ).rejects.toMatchObject({ field: 'rope_scaling' });
    await expect(writeGguf(edit({ sliding_layers: [false, true, false, true] }), path)).rejects.toMatchObject({ field: 'sliding_layers' });
    await expect(writeGguf({ ...synthModel('gpt-oss-tiny'), tokenizer: synthModel('tiny').tokenizer }, path)).rejects.toMatchObject({
      field: 'tokenizer',
    });
    expect(existsSync(path)).toBe(false);
  });

  it('exports a streamed tensor to the same bytes as a whole one', async () => {
    const streamed = tmp();
    const whole = tmp();
    const src = synthModel('gpt-oss-tiny', { seed });
    await exportIebin(src, streamed, { converter: 'test' });
    await exportIebin({ ...src, tensors: src.tensors.map((t) => ({ ...t, read: () => t.read() })) }, whole, { converter: 'test' });
    expect(sameBytes(readFileSync(join(streamed, 'model.ie.bin')), readFileSync(join(whole, 'model.ie.bin')))).toBe(true);
  });
});
