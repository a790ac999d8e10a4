import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { quantizeQ4_0, quantizeQ8_0, sameBytes } from '@ie/testing';
import { encodeBf16, encodeF16 } from './dtype.js';
import { GgufError } from './errors.js';
import { openGguf, parseGguf, splitBlocks } from './gguf.js';
import { writeGguf } from './gguf-writer.js';
import { expectedTensors, type ModelConfig } from './llama.js';
import type { ModelSource, SourceTensor } from './source.js';
import { SYNTH_PRESETS, synthTensorValues, synthVocabulary } from './synth.js';

const config: ModelConfig = { ...SYNTH_PRESETS.tiny.config, ffn_dim: 192, vocab_size: 300, tied_classifier: false };
const kinds = ['q4_0', 'q8_0', 'f16', 'bf16', 'f32'] as const;
const GGML_ID = { f32: 0, f16: 1, q4_0: 2, q8_0: 8, bf16: 30 } as const;

/** A source whose 2-D tensors cycle through every GGUF type, and the ggml bytes each must become. */
function mixedSource(over: Partial<ModelConfig> = {}): { source: ModelSource; ggml: Map<string, { type: number; bytes: Uint8Array }> } {
  const c = { ...config, ...over };
  const ggml = new Map<string, { type: number; bytes: Uint8Array }>();
  const tensors: SourceTensor[] = expectedTensors(c).map((t, i) => {
    const v = synthTensorValues(c, 5, i);
    const kind = t.shape.length === 1 ? 'f32' : kinds[i % kinds.length];
    const quant = { scheme: 'symmetric' as const, granularity: 'per_group' as const, group_size: 32, scale_dtype: 'f16' as const };
    let blocks: Uint8Array;
    let tensor: SourceTensor;
    if (kind === 'q4_0' || kind === 'q8_0') {
      // The reference quantizers' blocks, split into IEBIN planes as the importer does.
      blocks = kind === 'q4_0' ? quantizeQ4_0(v) : quantizeQ8_0(v);
      const planes = splitBlocks(blocks, kind === 'q4_0' ? 16 : 32);
      tensor = { name: t.name, dtype: kind === 'q4_0' ? 'q4' : 'i8', shape: t.shape, quant, read: async () => planes };
    } else {
      blocks = kind === 'f32' ? new Uint8Array(v.buffer) : new Uint8Array((kind === 'f16' ? encodeF16(v) : encodeBf16(v)).buffer);
      tensor = { name: t.name, dtype: kind, shape: t.shape, quant: null, read: async () => blocks };
    }
    ggml.set(t.name, { type: GGML_ID[kind], bytes: blocks });
    return tensor;
  });
  const source: ModelSource = {
    format: 'synth',
    config: c,
    tokenizer: synthVocabulary(c.vocab_size),
    files: [],
    tensors,
    notes: [],
    close: async () => undefined,
  };
  return { source, ggml };
}

describe('GGUF writer', () => {
  it('writes every tensor in its GGUF type, byte for byte, and the importer reads the model back', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufw-'));
    const path = join(d, 'm.gguf');
    const { source, ggml } = mixedSource();
    const size = await writeGguf(source, path, { name: 'test' });
    const bytes = new Uint8Array(readFileSync(path));
    expect(bytes.length).toBe(size);
    const g = parseGguf(bytes, bytes.length, path);
    expect(g.version).toBe(3);
    expect(g.metadata.get('general.architecture')).toBe('llama');
    expect(g.metadata.get('llama.block_count')).toBe(config.n_layers);
    for (const t of g.tensors) {
      const want = ggml.get(t.name);
      expect(want, t.name).toBeDefined();
      expect(t.type, t.name).toBe(want?.type);
      expect(t.offset % 32, t.name).toBe(0);
      expect(sameBytes(bytes.subarray(g.dataOffset + t.offset, g.dataOffset + t.offset + t.bytes), want?.bytes as Uint8Array), t.name).toBe(
        true,
      );
    }
    const back = await openGguf(path);
    expect(back.config).toEqual(config);
    if (back.tokenizer.model !== 'spm' || source.tokenizer.model !== 'spm') throw new Error('expected spm');
    expect(back.tokenizer.pieces).toEqual(source.tokenizer.pieces);
    expect(back.tokenizer.scores).toEqual(source.tokenizer.scores);
    expect(back.tokenizer.types).toEqual(source.tokenizer.types);
    for (let i = 0; i < source.tensors.length; i++) {
      expect(sameBytes(await back.tensors[i].read(), await source.tensors[i].read()), source.tensors[i].name).toBe(true);
    }
    await back.close();
    expect(readdirSync(d)).toEqual(['m.gguf']);
  });

  it('refuses what GGUF cannot hold, by name, and leaves nothing behind', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufw-'));
    const path = join(d, 'm.gguf');
    const { source } = mixedSource();
    const q4g64: ModelSource = {
      ...source,
      tensors: source.tensors.map((t) =>
        t.dtype === 'q4' ? { ...t, quant: { ...(t.quant as NonNullable<SourceTensor['quant']>), group_size: 64 } } : t,
      ),
    };
    await expect(writeGguf(q4g64, path)).rejects.toMatchObject({ code: 'GGUF_UNSUPPORTED_TENSOR_TYPE', field: 'token_embd.weight' });
    await expect(writeGguf(mixedSource({ rope_style: 'rotate_half' }).source, path)).rejects.toBeInstanceOf(GgufError);
    await expect(writeGguf(mixedSource({ rope_style: 'rotate_half' }).source, path)).rejects.toMatchObject({
      code: 'GGUF_BAD_METADATA',
      field: 'rope_style',
    });
    // A tensor that fails mid-write: the partial file is removed, no model appears.
    const failing: ModelSource = {
      ...source,
      tensors: source.tensors.map((t, i) => (i === 5 ? { ...t, read: async () => new Uint8Array(3) } : t)),
    };
    await expect(writeGguf(failing, path)).rejects.toMatchObject({ code: 'GGUF_BAD_TENSOR_INFO' });
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
  });

  it.each([
    ['architecture', { architecture: 'qwen2' }, 'the GGUF writer writes llama and gpt-oss models; this one is qwen2'],
    [
      'rope_scaling',
      { rope_scaling: { type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_context_length: 8192 } },
      'RoPE scaling is not written to GGUF',
    ],
    ['attn_qkv_bias', { attn_qkv_bias: true }, 'q/k/v biases are not part of the llama GGUF architecture'],
    ['sliding_window', { sliding_window: 128 }, 'a sliding window is not part of the llama GGUF architecture'],
  ] as Array<[string, Partial<ModelConfig>, string]>)(
    'refuses a llama model with %s, before creating any file',
    async (field, over, text) => {
      const d = mkdtempSync(join(tmpdir(), 'ie-ggufw-'));
      const path = join(d, 'm.gguf');
      await expect(writeGguf(mixedSource(over).source, path)).rejects.toMatchObject({
        code: 'GGUF_BAD_METADATA',
        field,
        message: `${path}: ${field}: ${text}`,
      });
      expect(readdirSync(d)).toEqual([]);
    },
  );

  it('refuses a vocabulary that is not SentencePiece for a llama model', async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-ggufw-'));
    const path = join(d, 'm.gguf');
    const { source } = mixedSource();
    const hf: ModelSource = { ...source, tokenizer: { model: 'hf', source: join(d, 'tokenizer.json') } };
    await expect(writeGguf(hf, path)).rejects.toMatchObject({
      code: 'GGUF_BAD_METADATA',
      field: 'tokenizer',
      message: `${path}: tokenizer: the GGUF writer writes SentencePiece vocabularies; this model's is hf`,
    });
  });
});
