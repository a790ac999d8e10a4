import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildGguf,
  dequantizeKBlocks,
  dequantizeQ4_0,
  dequantizeQ8_0,
  firstDifference,
  llamaKv,
  quantizeIQ4_NL,
  quantizeQ4_0,
  quantizeQ4_K,
  quantizeQ5_K,
  quantizeQ6_K,
  quantizeQ8_0,
  sameBytes,
  type GgufTensorIn,
  type KvValue,
} from '@ie/testing';
import { exportIebin } from './export-iebin.js';
import { encodeBf16, encodeF16 } from './dtype.js';
import { GgufError } from './errors.js';
import { openGguf, parseGguf, type GgufFile, type GgufTensorInfo } from './gguf.js';
import { writeGguf } from './gguf-writer.js';
import { expectedTensors, type ModelConfig } from './llama.js';
import { IebinReader } from './reader.js';
import { SYNTH_PRESETS, synthModel, synthTensorValues, synthVocabulary } from './synth.js';
import { parseIebinHeader } from './header.js';
import { decodeTensor } from './tensor.js';

const config: ModelConfig = { ...SYNTH_PRESETS.tiny.config, ffn_dim: 192, vocab_size: 300, tied_classifier: false };
const vocab = synthVocabulary(config.vocab_size);
const TYPES = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30 } as const;
type Kind = keyof typeof TYPES;

/** A GGUF whose 2-D tensors cycle through every importable type; returns it with the values each holds. */
function buildModel(q41At = -1): { bytes: Uint8Array; expected: Map<string, { kind: Kind; values: Float32Array }> } {
  const kinds: Kind[] = ['q4_0', 'q8_0', 'f16', 'bf16', 'f32'];
  const expected = new Map<string, { kind: Kind; values: Float32Array }>();
  const tensors: GgufTensorIn[] = expectedTensors(config).map((t, i) => {
    const v = synthTensorValues(config, 9, i);
    const kind: Kind = t.shape.length === 1 ? 'f32' : kinds[i % kinds.length];
    let data: Uint8Array;
    let values = v;
    if (kind === 'q4_0') {
      data = quantizeQ4_0(v);
      values = dequantizeQ4_0(data);
    } else if (kind === 'q8_0') {
      data = quantizeQ8_0(v);
      values = dequantizeQ8_0(data);
    } else if (kind === 'f16' || kind === 'bf16') {
      const bits = kind === 'f16' ? encodeF16(v) : encodeBf16(v);
      data = new Uint8Array(bits.buffer);
      values = decodeTensor({ dtype: kind, shape: t.shape, layout: { order: 'row_major', block_k: 0 }, quant: null }, data);
    } else {
      data = new Uint8Array(v.buffer);
    }
    expected.set(t.name, { kind, values });
    // Q4_1 (20-byte blocks): parseable, but not importable without loss.
    if (i === q41At) return { name: t.name, ne: [...t.shape].reverse(), type: 3, data: new Uint8Array((v.length / 32) * 20).fill(0x11) };
    return { name: t.name, ne: [...t.shape].reverse(), type: TYPES[kind], data };
  });
  return { bytes: buildGguf(llamaKv(config, vocab.pieces, vocab.types), tensors), expected };
}

describe('GGUF import', () => {
  it('imports F32, F16, BF16, Q8_0 and Q4_0 tensors without loss', async () => {
    const { bytes, expected } = buildModel();
    const d = mkdtempSync(join(tmpdir(), 'ie-gguf-'));
    writeFileSync(join(d, 'm.gguf'), bytes);
    const src = await openGguf(join(d, 'm.gguf'));
    expect(src.config).toEqual({ ...config, context_length: 512 });
    if (src.tokenizer.model !== 'spm') throw new Error('expected spm');
    expect(src.tokenizer.pieces).toEqual(vocab.pieces);
    const out = join(d, 'iebin');
    await exportIebin(src, out, { converter: 'test' });
    await src.close();
    const r = await IebinReader.open(out);
    const seen = new Set<string>();
    for (const t of r.tensors) {
      const e = expected.get(t.name);
      if (!e) throw new Error(`unexpected ${t.name}`);
      seen.add(e.kind);
      const dtype = { q4_0: 'q4', q8_0: 'i8', f16: 'f16', bf16: 'bf16', f32: 'f32' }[e.kind];
      expect(t.dtype, t.name).toBe(dtype);
      if (e.kind === 'q4_0' || e.kind === 'q8_0')
        expect(t.quant).toMatchObject({ scheme: 'symmetric', granularity: 'per_group', group_size: 32, scale_dtype: 'f16' });
      expect(firstDifference(decodeTensor(t, (await r.read(t.name)).bytes), e.values), t.name).toBeNull();
    }
    expect([...seen].sort()).toEqual(['bf16', 'f16', 'f32', 'q4_0', 'q8_0']);
    // Q4_0 blocks are the IEBIN q4 planes byte for byte: reassembling gives the GGUF bytes back.
    const qi = expectedTensors(config).findIndex((t) => expected.get(t.name)?.kind === 'q4_0');
    const q = r.tensor(expectedTensors(config)[qi].name);
    expect(q.dtype).toBe('q4');
    const stored = (await r.read(q.name)).bytes;
    const nb = (q.shape[0] * q.shape[1]) / 32;
    const blocks = new Uint8Array(nb * 18);
    for (let i = 0; i < nb; i++) {
      blocks.set(stored.subarray(q.quant!.scales_offset + 2 * i, q.quant!.scales_offset + 2 * i + 2), i * 18);
      blocks.set(stored.subarray(i * 16, i * 16 + 16), i * 18 + 2);
    }
    expect(sameBytes(blocks, quantizeQ4_0(synthTensorValues(config, 9, qi)))).toBe(true);
    await r.close();
  });

  it('reads the header of the first bytes only and needs the rest only for data', () => {
    const { bytes } = buildModel();
    const g = parseGguf(bytes, bytes.length, 'm.gguf');
    expect(g.version).toBe(3);
    expect(g.tensors.length).toBe(expectedTensors(config).length);
    expect(g.metadata.get('llama.block_count')).toBe(2);
  });

  const { bytes: good } = buildModel();
  const code = (b: Uint8Array, size = b.length) => {
    try {
      parseGguf(b, size, 'x.gguf');
      return 'ok';
    } catch (e) {
      expect(e).toBeInstanceOf(GgufError);
      return (e as GgufError).code;
    }
  };
  const with64 = (at: number, v: bigint) => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(at, v, true);
    return b;
  };

  it.each([
    ['bad magic', () => Object.assign(good.slice(), { 0: 0x47, 1: 0x47, 2: 0x4d, 3: 0x4c }), 'GGUF_BAD_MAGIC'],
    ['version 1', () => Object.assign(good.slice(), { 4: 1 }), 'GGUF_UNSUPPORTED_VERSION'],
    ['huge tensor count', () => with64(8, 1n << 40n), 'GGUF_TOO_MANY_ENTRIES'],
    ['tensor count the file cannot hold', () => with64(8, 60000n), 'GGUF_TOO_MANY_ENTRIES'],
    ['huge key length', () => with64(24, 1n << 50n), 'GGUF_BAD_STRING'],
    ['truncated inside the header', () => good.slice(0, 12), 'GGUF_TRUNCATED'],
    ['counts larger than the truncated file', () => good.slice(0, 200), 'GGUF_TOO_MANY_ENTRIES'],
  ])('%s', (_n, make, expected) => {
    expect(code(make())).toBe(expected);
  });

  it('refuses an array claiming more elements than the file can hold, without allocating it', () => {
    const b = buildGguf({ 'general.architecture': { t: 'str', v: 'llama' }, 'x.arr': { t: 'arr_i32', v: [1, 2, 3] } }, []);
    const at = Buffer.from(b).indexOf(Buffer.from('x.arr')) + 5 + 4 + 4; // key, value type, element type
    const dv = new DataView(b.buffer);
    dv.setBigUint64(at, 1n << 60n, true);
    expect(code(b)).toBe('GGUF_TOO_MANY_ENTRIES');
  });

  it('rejects misaligned, overlapping, out-of-file and unimportable tensors', async () => {
    const t = (name: string, type: number): GgufTensorIn => ({ name, ne: [32, 2], type, data: new Uint8Array(type === 0 ? 256 : 36) });
    const kv = { 'general.architecture': { t: 'str' as const, v: 'llama' } };
    const one = buildGguf(kv, [t('a', 0)]);
    const offAt = (b: Uint8Array, name: string) =>
      Buffer.from(b).indexOf(Buffer.from(name + '\u0002\u0000\u0000\u0000')) + name.length + 4 + 16 + 4;
    const mis = one.slice();
    new DataView(mis.buffer).setBigUint64(offAt(mis, 'a'), 4n, true);
    expect(code(mis)).toBe('GGUF_MISALIGNED');
    const past = one.slice();
    new DataView(past.buffer).setBigUint64(offAt(past, 'a'), 1024n, true);
    expect(code(past)).toBe('GGUF_RANGE_OUT_OF_FILE');
    const two = buildGguf(kv, [t('a', 0), t('b', 0)]);
    new DataView(two.buffer).setBigUint64(offAt(two, 'b'), 0n, true);
    expect(code(two)).toBe('GGUF_OVERLAP');
    const bad = buildGguf(kv, [{ name: 'a', ne: [32, 2], type: 99, data: new Uint8Array(4) }]);
    expect(code(bad)).toBe('GGUF_UNSUPPORTED_TENSOR_TYPE');
    // Q4_1 parses (its size is known) but is refused at import, with advice.
    const d = mkdtempSync(join(tmpdir(), 'ie-gguf-'));
    writeFileSync(join(d, 'q41.gguf'), buildModel(2).bytes);
    await expect(openGguf(join(d, 'q41.gguf'))).rejects.toMatchObject({
      code: 'GGUF_UNSUPPORTED_TENSOR_TYPE',
      field: 'blk.0.attn_q.weight',
    });
  });

  it('refuses metadata that does not describe a llama model', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-gguf-'));
    const kv = llamaKv(config, vocab.pieces, vocab.types);
    const noArch = buildGguf({ ...kv, 'general.architecture': { t: 'str', v: 'gpt2' } }, []);
    writeFileSync(join(d, 'a.gguf'), noArch);
    await expect(openGguf(join(d, 'a.gguf'))).rejects.toMatchObject({ code: 'GGUF_UNSUPPORTED_ARCHITECTURE' });
    const { ['llama.block_count']: _drop, ...rest } = kv;
    writeFileSync(join(d, 'b.gguf'), buildGguf(rest, []));
    await expect(openGguf(join(d, 'b.gguf'))).rejects.toMatchObject({ code: 'GGUF_BAD_METADATA' });
  });
});

describe('GGUF files made to trip the importer (fuzzing)', () => {
  const tensors: GgufTensorIn[] = expectedTensors(config).map((t, i) => ({
    name: t.name,
    ne: [...t.shape].reverse(),
    type: 0,
    data: new Uint8Array(synthTensorValues(config, 31, i).buffer),
  }));
  const kv = llamaKv(config, vocab.pieces, vocab.types);
  const refusal = async (bytes: Uint8Array) => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufbad-'));
    writeFileSync(join(d, 'm.gguf'), bytes);
    return openGguf(join(d, 'm.gguf')).then(
      () => {
        throw new Error('not refused');
      },
      (e: unknown) => {
        if (!(e instanceof GgufError)) throw e;
        return { code: e.code, field: e.field, text: e.message.slice(`${e.file}: ${e.field}: `.length) };
      },
    );
  };

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'general.architecture %s (an Object property name) is unsupported',
    async (arch) => {
      expect(await refusal(buildGguf({ ...kv, 'general.architecture': { t: 'str', v: arch } }, tensors))).toEqual({
        code: 'GGUF_UNSUPPORTED_ARCHITECTURE',
        field: 'general.architecture',
        text: `general.architecture is ${JSON.stringify(arch)}; llama, qwen2 and gpt-oss are supported`,
      });
    },
  );

  it('general.alignment of the wrong type says what it is', () => {
    const bytes = buildGguf({ ...kv, 'general.alignment': { t: 'str', v: '32' } }, []);
    expect(() => parseGguf(bytes, bytes.length, 'a.gguf')).toThrow(
      expect.objectContaining({
        code: 'GGUF_BAD_METADATA',
        field: 'general.alignment',
        message: 'a.gguf: general.alignment: general.alignment must be a u32, got a string',
      }),
    );
    const odd = buildGguf({ ...kv, 'general.alignment': { t: 'u32', v: 48 } }, []);
    expect(() => parseGguf(odd, odd.length, 'a.gguf')).toThrow(
      expect.objectContaining({ message: 'a.gguf: general.alignment: general.alignment is 48, not a power of two in 1..1048576' }),
    );
  });

  it('a gpt-oss file with both blk.0.post_attention_norm.weight and blk.0.ffn_norm.weight (one IEBIN tensor) is refused, both named', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufalias-'));
    const path = join(d, 'oss.gguf');
    await writeGguf(synthModel('gpt-oss-tiny', { seed: 2 }), path);
    const bytes = new Uint8Array(readFileSync(path));
    const g = parseGguf(bytes, bytes.length, path);
    const data = (t: GgufTensorInfo) => bytes.slice(g.dataOffset + t.offset, g.dataOffset + t.offset + t.bytes);
    const ins: GgufTensorIn[] = g.tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.type, data: data(t) }));
    const norm = g.tensors.find((t) => t.name === 'blk.0.post_attention_norm.weight') as GgufTensorInfo;
    ins.push({ name: 'blk.0.ffn_norm.weight', ne: norm.ne, type: norm.type, data: data(norm) });
    // Rebuilt as it was, the file imports; with the second name for the same tensor it is refused.
    writeFileSync(path, buildGguf(kvOf(g), ins.slice(0, -1), g.alignment));
    await (await openGguf(path)).close();
    expect(await refusal(buildGguf(kvOf(g), ins, g.alignment))).toEqual({
      code: 'GGUF_BAD_TENSOR_INFO',
      field: `tensors[${ins.length - 1}].name`,
      text: 'tensors blk.0.post_attention_norm.weight and blk.0.ffn_norm.weight are both blk.0.ffn_norm.weight (gpt-oss aliases); keep one',
    });
  });
});

/** A parsed file's metadata as buildGguf takes it (numbers as u32, i32 or f32 by value: the importer reads them all as numbers). */
function kvOf(g: GgufFile): Record<string, KvValue> {
  const kv: Record<string, KvValue> = {};
  for (const [k, v] of g.metadata) {
    if (typeof v === 'string') kv[k] = { t: 'str', v };
    else if (typeof v === 'boolean') kv[k] = { t: 'bool', v };
    else if (typeof v === 'bigint') kv[k] = { t: 'u32', v: Number(v) };
    else if (typeof v === 'number') kv[k] = !Number.isInteger(v) ? { t: 'f32', v } : v < 0 ? { t: 'i32', v } : { t: 'u32', v };
    else if (v.type === 'string') kv[k] = { t: 'arr_str', v: v.values as string[] };
    else if (v.type === 'f32') kv[k] = { t: 'arr_f32', v: v.values as number[] };
    else kv[k] = { t: 'arr_i32', v: v.values as number[] };
  }
  return kv;
}

describe('GGUF K-quant and IQ4_NL import', () => {
  // K-quant rows are whole 256-element blocks: a model 256 wide.
  const kc: ModelConfig = {
    ...SYNTH_PRESETS.tiny.config,
    dim: 256,
    n_heads: 4,
    n_kv_heads: 2,
    head_dim: 64,
    ffn_dim: 512,
    vocab_size: 300,
    n_layers: 1,
    tied_classifier: false,
  };
  const kv = synthVocabulary(kc.vocab_size);
  const kinds = [
    ['q4_k', 12, quantizeQ4_K],
    ['q5_k', 13, quantizeQ5_K],
    ['q6_k', 14, quantizeQ6_K],
    ['iq4_nl', 20, quantizeIQ4_NL],
  ] as const;

  it("imports Q4_K, Q5_K, Q6_K and IQ4_NL blocks as they are; decoding them gives ggml's dequantized values", async () => {
    const raw = new Map<string, { kind: (typeof kinds)[number][0]; blocks: Uint8Array; values: Float32Array }>();
    const tensors: GgufTensorIn[] = expectedTensors(kc).map((t, i) => {
      const v = synthTensorValues(kc, 21, i);
      if (t.shape.length === 1) return { name: t.name, ne: [...t.shape].reverse(), type: 0, data: new Uint8Array(v.buffer) };
      const [kind, type, quantize] = kinds[i % kinds.length];
      const blocks = quantize(v);
      raw.set(t.name, { kind, blocks, values: v });
      return { name: t.name, ne: [...t.shape].reverse(), type, data: blocks };
    });
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufk-'));
    writeFileSync(join(d, 'k.gguf'), buildGguf(llamaKv(kc, kv.pieces, kv.types), tensors));
    const src = await openGguf(join(d, 'k.gguf'));
    const out = join(d, 'iebin');
    await exportIebin(src, out, { converter: 'test' });
    await src.close();
    const r = await IebinReader.open(out);
    try {
      const seen = new Set<string>();
      for (const t of r.tensors) {
        const want = raw.get(t.name);
        if (!want) continue;
        seen.add(want.kind);
        expect(t.dtype, t.name).toBe(want.kind);
        expect(t.quant).toBeNull();
        const { bytes } = await r.read(t.name);
        expect(sameBytes(bytes, want.blocks), `${t.name} bytes`).toBe(true);
        const got = decodeTensor(t, bytes);
        // The decoder is ggml's formula, to the bit; and our quantizers lose what 4-6 bits lose.
        expect(firstDifference(got, dequantizeKBlocks(want.kind, want.blocks)), t.name).toBeNull();
        let worst = 0;
        let amax = 0;
        for (let i = 0; i < got.length; i++) {
          worst = Math.max(worst, Math.abs(got[i] - want.values[i]));
          amax = Math.max(amax, Math.abs(want.values[i]));
        }
        expect(worst / amax, t.name).toBeLessThan(want.kind === 'q6_k' ? 0.04 : 0.2);
      }
      expect([...seen].sort()).toEqual(['iq4_nl', 'q4_k', 'q5_k', 'q6_k']);
    } finally {
      await r.close();
    }
  });

  it('a block tensor whose rows are not whole blocks is refused by name', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufk-'));
    await exportIebin(synthModel('tiny', { seed: 1 }), d, { converter: 'test' });
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    const i = h.tensors.findIndex((t: { name: string }) => t.name === 'blk.0.attn_q.weight');
    h.tensors[i].dtype = 'q4_k';
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(
      expect.objectContaining({ code: 'IEBIN_BAD_SHAPE', field: `tensors[${i}].shape` }),
    );
    h.tensors[i].quant = { scheme: 'symmetric' };
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(expect.objectContaining({ code: 'IEBIN_BAD_QUANT' }));
  });
});

describe('GGUF metadata read into the config and vocabulary', () => {
  const tensors: GgufTensorIn[] = expectedTensors(config).map((t, i) => ({
    name: t.name,
    ne: [...t.shape].reverse(),
    type: 0,
    data: new Uint8Array(synthTensorValues(config, 31, i).buffer),
  }));
  const kv = llamaKv(config, vocab.pieces, vocab.types);
  const open = (extra: Record<string, KvValue>, drop: string[] = []) => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufmeta-'));
    const all = { ...kv, ...extra };
    for (const k of drop) delete all[k];
    writeFileSync(join(d, 'm.gguf'), buildGguf(all, tensors));
    return openGguf(join(d, 'm.gguf'));
  };

  it('reads end-of-turn and end-of-message ids as stop ids, and the scores and special ids of the vocabulary', async () => {
    const src = await open({
      'tokenizer.ggml.eot_token_id': { t: 'u32', v: 7 },
      'tokenizer.ggml.eom_token_id': { t: 'u32', v: 2 }, // the EOS itself: not repeated
      'tokenizer.ggml.unknown_token_id': { t: 'u32', v: 3 },
      'tokenizer.ggml.add_bos_token': { t: 'bool', v: false },
    });
    try {
      expect(src.config.stop_ids).toEqual([7]);
      expect(src.config.rope_style).toBe('adjacent');
      if (src.tokenizer.model !== 'spm') throw new Error('expected spm');
      expect(src.tokenizer.scores.slice(0, 4)).toEqual([-0, -1, -2, -3]);
      expect(src.tokenizer.unk_id).toBe(3);
      expect(src.tokenizer.add_bos).toBe(false);
      expect(src.tokenizer.add_space_prefix).toBe(true);
      expect(src.tensors.map((t) => t.name)).toEqual(expectedTensors(config).map((t) => t.name));
      expect(src.notes).toEqual(['GGUF v3 m.gguf, architecture llama']);
    } finally {
      await src.close();
    }
    // A piece that is U+FEFF stays one (the text decoder must not read it as a byte-order mark).
    const bom = await open({ 'tokenizer.ggml.tokens': { t: 'arr_str', v: vocab.pieces.map((p, i) => (i === 5 ? '\ufeff' : p)) } });
    try {
      if (bom.tokenizer.model !== 'spm') throw new Error('expected spm');
      expect(bom.tokenizer.pieces[5]).toBe('\ufeff');
    } finally {
      await bom.close();
    }
    // A byte-level vocabulary with no add_bos_token: BOS where llama.cpp defaults to it (Llama 3's pre-tokenizers).
    for (const [pre, bos] of [
      ['llama-bpe', true],
      ['llama3', true],
      ['qwen2', false],
      ['gpt-4o', false],
      [null, false],
    ] as const) {
      const b = await open(
        {
          'tokenizer.ggml.model': { t: 'str', v: 'gpt2' },
          'tokenizer.ggml.merges': { t: 'arr_str', v: [] },
          ...(pre ? { 'tokenizer.ggml.pre': { t: 'str', v: pre } } : {}),
        },
        ['tokenizer.ggml.scores'],
      );
      try {
        if (b.tokenizer.model !== 'gpt2') throw new Error('expected gpt2');
        expect([b.tokenizer.pre, b.tokenizer.add_bos], String(pre)).toEqual([pre, bos]);
      } finally {
        await b.close();
      }
    }
    // Linear RoPE scaling (or the older rope.scale_linear) divides every pair's frequency, as llama.cpp's freq_scale.
    const linear: Array<Record<string, KvValue>> = [
      { 'llama.rope.scaling.type': { t: 'str', v: 'linear' }, 'llama.rope.scaling.factor': { t: 'f32', v: 4 } },
      { 'llama.rope.scale_linear': { t: 'f32', v: 4 } },
    ];
    for (const keys of linear) {
      const lin = await open(keys);
      try {
        expect(lin.config.rope_freq_factors).toEqual(Array(config.head_dim / 2).fill(4));
        expect(lin.config.rope_scaling).toBeNull();
      } finally {
        await lin.close();
      }
    }
  });

  it.each([
    [
      'YaRN scaling on a llama',
      { 'llama.rope.scaling.type': { t: 'str', v: 'yarn' } },
      [],
      'llama.rope.scaling.type',
      'llama.rope.scaling.type is yarn; RoPE scaling from GGUF is linear or none here',
    ],
    [
      'partial rotary embeddings',
      { 'llama.rope.dimension_count': { t: 'u32', v: config.head_dim / 2 } },
      [],
      'llama.rope.dimension_count',
      `llama.rope.dimension_count is ${config.head_dim / 2}; partial rotary embeddings (head_dim ${config.head_dim}) are not supported`,
    ],
    [
      'a block count past the cap',
      { 'llama.block_count': { t: 'u32', v: 5000 } },
      [],
      'llama.block_count',
      'llama.block_count describes an impossible model: n_layers must be an integer in 1..1024, got 5000',
    ],
    [
      'an EOS id outside the vocabulary',
      { 'tokenizer.ggml.eos_token_id': { t: 'u32', v: 300 } },
      [],
      'tokenizer.ggml.eos_token_id',
      'tokenizer.ggml.eos_token_id describes an impossible model: eos_id must be a token id below vocab_size 300, got 300',
    ],
    [
      'a BOS id outside the vocabulary',
      { 'tokenizer.ggml.bos_token_id': { t: 'u32', v: 300 } },
      [],
      'tokenizer.ggml.bos_token_id',
      'tokenizer.ggml.bos_token_id describes an impossible model: bos_id must be a token id below vocab_size 300, got 300',
    ],
    [
      'an unknown-token id outside the vocabulary',
      { 'tokenizer.ggml.unknown_token_id': { t: 'u32', v: 100000 } },
      [],
      'tokenizer.ggml.unknown_token_id',
      'tokenizer.ggml.unknown_token_id is 100000, not a token id (the vocabulary has 300 tokens)',
    ],
    [
      'a RoPE base of 0',
      { 'llama.rope.freq_base': { t: 'f32', v: 0 } },
      [],
      'llama.rope.freq_base',
      'llama.rope.freq_base describes an impossible model: rope_theta must be a positive number, got 0',
    ],
    [
      'a NaN epsilon',
      { 'llama.attention.layer_norm_rms_epsilon': { t: 'f32', v: Number.NaN } },
      [],
      'llama.attention.layer_norm_rms_epsilon',
      'llama.attention.layer_norm_rms_epsilon must be a finite number, got NaN',
    ],
    [
      'an infinite RoPE base',
      { 'llama.rope.freq_base': { t: 'f32', v: Number.POSITIVE_INFINITY } },
      [],
      'llama.rope.freq_base',
      'llama.rope.freq_base must be a finite number, got Infinity',
    ],
    [
      'a string where a number belongs',
      { 'llama.context_length': { t: 'str', v: '2048' } },
      [],
      'llama.context_length',
      'llama.context_length must be a number, got a string',
    ],
    [
      'a vocabulary of another model',
      { 'tokenizer.ggml.model': { t: 'str', v: 'bert' } },
      [],
      'tokenizer.ggml.model',
      'tokenizer.ggml.model is "bert"; "llama" (SentencePiece) and "gpt2" (BPE) are supported',
    ],
    [
      'a non-finite score',
      { 'tokenizer.ggml.scores': { t: 'arr_f32', v: vocab.pieces.map((_, i) => (i === 5 ? Number.NaN : -i)) } },
      [],
      'tokenizer.ggml.scores',
      'tokenizer.ggml.scores holds a non-finite score',
    ],
    ['no vocabulary', {}, ['tokenizer.ggml.tokens'], 'tokenizer.ggml.tokens', 'tokenizer.ggml.tokens is missing'],
  ] as Array<[string, Record<string, KvValue>, string[], string, string]>)(
    'refuses %s, naming its key',
    async (_n, extra, drop, field, message) => {
      const e = await open(extra, drop).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(GgufError);
      expect(e).toMatchObject({ code: 'GGUF_BAD_METADATA', field });
      // The message after "file: field: " is the stage's own, word for word.
      expect((e as GgufError).message).toBe(`${(e as GgufError).file}: ${field}: ${message}`);
    },
  );
});
