import { mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON, firstDifference, sameBytes } from '@ie/testing';
import { buildLlama2c, buildTokenizerBin } from '../test/fixtures/llama2c.js';
import { exportIebin } from './export-iebin.js';
import { openGguf } from './gguf.js';
import { expectedTensors, type ModelConfig } from './llama.js';
import { openLlama2c, parseLlama2cTokenizer } from './llama2c.js';
import { IebinReader } from './reader.js';
import { SYNTH_PRESETS, synthTensorValues } from './synth.js';
import { decodeTensor } from './tensor.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-l2c-'));

describe.skipIf(!HAS_STORIES)(`stories260K: llama2.c and GGUF sources${STORIES_REASON}`, () => {
  it('converts both sources to bit-identical IEBIN tensors equal to the checkpoint bytes', async () => {
    const a = tmp();
    const b = tmp();
    const l2c = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    expect(l2c.config).toMatchObject({
      dim: 64,
      ffn_dim: 172,
      n_layers: 5,
      n_heads: 8,
      n_kv_heads: 4,
      vocab_size: 512,
      context_length: 512,
      tied_classifier: true,
      rope_style: 'adjacent',
    });
    await exportIebin(l2c, a, { converter: 'test' });
    await l2c.close();
    const gg = await openGguf(join(STORIES_DIR, 'stories260K.gguf'));
    expect(gg.config).toMatchObject({
      dim: 64,
      n_layers: 5,
      n_kv_heads: 4,
      vocab_size: 512,
      norm_eps: 1e-5,
      tied_classifier: true,
      rope_style: 'adjacent',
    });
    expect(gg.notes.join(' ')).toContain('byte-identical to token_embd.weight');
    await exportIebin(gg, b, { converter: 'test' });
    await gg.close();

    const ra = await IebinReader.open(a);
    const rb = await IebinReader.open(b);
    expect(ra.tensors.map((t) => t.name)).toEqual(rb.tensors.map((t) => t.name));
    expect(ra.tensors.length).toBe(47);
    for (const t of ra.tensors) {
      const x = await ra.read(t.name);
      const y = await rb.read(t.name);
      expect(t.dtype).toBe('f32');
      expect(sameBytes(x.bytes, y.bytes), t.name).toBe(true);
    }
    // Independently of the importer's offset table: the embedding starts right after the
    // 28-byte header, the final norm ends right before the RoPE tables (512 x 8 floats).
    const raw = readFileSync(join(STORIES_DIR, 'stories260K.bin'));
    expect(sameBytes((await ra.read('token_embd.weight')).bytes, raw.subarray(28, 28 + 512 * 64 * 4))).toBe(true);
    const finalEnd = raw.length - 512 * 8 * 4;
    expect(sameBytes((await ra.read('output_norm.weight')).bytes, raw.subarray(finalEnd - 64 * 4, finalEnd))).toBe(true);
    expect((await ra.verify()).ok && (await rb.verify()).ok).toBe(true);
    // Tokenizers: the llama2.c pieces use spaces, GGUF's use U+2581; the ids line up.
    const ta = ra.header.tokenizer;
    const tb = rb.header.tokenizer;
    if (ta.model !== 'llama2c' || tb.model !== 'spm') throw new Error('unexpected tokenizer kinds');
    expect(ta.pieces.length).toBe(512);
    expect(ta.pieces[403]).toBe(tb.pieces[403].replaceAll('\u2581', ' '));
    expect(ta.scores[403]).toBe(tb.scores[403]);
    expect(ra.header.provenance.sources.map((s) => s.sha256)).toEqual([
      'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696',
      '037cb335abb25d1fa9e8ecae30ed2a3a8ace9302862ebcdc05d51a6bbb10c312',
    ]);
  });
});

describe('llama2.c checkpoints written by the test', () => {
  const base: ModelConfig = { ...SYNTH_PRESETS.tiny.config, vocab_size: 300, context_length: 32 };
  const valuesFor = (c: ModelConfig) => new Map(expectedTensors(c).map((t, i) => [t.name, synthTensorValues(c, 5, i)]));
  const tokenizer = (n: number) =>
    buildTokenizerBin(
      Array.from({ length: n }, (_, i) => Buffer.from(i === 7 ? [0xff, 0xfe] : `p${i}`)),
      Array.from({ length: n }, (_, i) => -i),
      8,
    );

  for (const [version, tied] of [
    [0, true],
    [0, false],
    [1, true],
    [1, false],
  ] as const) {
    it(`reads version ${version} with a ${tied ? 'shared' : 'separate'} classifier`, async () => {
      const c = { ...base, tied_classifier: tied };
      const values = valuesFor(c);
      const d = tmp();
      writeFileSync(join(d, 'model.bin'), buildLlama2c(c, values, version));
      writeFileSync(join(d, 'tok.bin'), tokenizer(c.vocab_size));
      const src = await openLlama2c(join(d, 'model.bin'), join(d, 'tok.bin'));
      expect(src.config).toEqual(c);
      for (const t of src.tensors)
        expect(
          firstDifference(
            decodeTensor({ dtype: 'f32', shape: t.shape, layout: { order: 'row_major', block_k: 0 }, quant: null }, await t.read()),
            values.get(t.name) as Float32Array,
          ),
          t.name,
        ).toBeNull();
      // A piece that is not UTF-8 is kept losslessly.
      if (src.tokenizer.model !== 'llama2c') throw new Error('unexpected tokenizer');
      expect(src.tokenizer.raw_pieces).toEqual({ 7: Buffer.from([0xff, 0xfe]).toString('base64') });
      await src.close();
    });
  }

  it('rejects truncated checkpoints, impossible headers and mismatched tokenizers with typed errors', async () => {
    const d = tmp();
    const full = buildLlama2c(base, valuesFor(base));
    writeFileSync(join(d, 'tok.bin'), tokenizer(base.vocab_size));
    writeFileSync(join(d, 'short.bin'), full.subarray(0, full.length - 4));
    await expect(openLlama2c(join(d, 'short.bin'), join(d, 'tok.bin'))).rejects.toMatchObject({ code: 'LLAMA2C_TRUNCATED' });
    const bad = full.slice();
    new DataView(bad.buffer).setInt32(12, 7, true); // n_heads 7 does not divide dim 64
    writeFileSync(join(d, 'bad.bin'), bad);
    await expect(openLlama2c(join(d, 'bad.bin'), join(d, 'tok.bin'))).rejects.toMatchObject({
      code: 'LLAMA2C_BAD_HEADER',
      field: 'n_heads',
    });
    const huge = full.slice();
    new DataView(huge.buffer).setInt32(0, 2 ** 30, true);
    writeFileSync(join(d, 'huge.bin'), huge);
    await expect(openLlama2c(join(d, 'huge.bin'), join(d, 'tok.bin'))).rejects.toMatchObject({ code: 'LLAMA2C_BAD_HEADER', field: 'dim' });
    writeFileSync(join(d, 'ok.bin'), full);
    writeFileSync(join(d, 'tok-small.bin'), tokenizer(100));
    await expect(openLlama2c(join(d, 'ok.bin'), join(d, 'tok-small.bin'))).rejects.toMatchObject({ code: 'LLAMA2C_BAD_TOKENIZER' });
    await expect(openLlama2c(join(d, 'missing.bin'), join(d, 'tok.bin'))).rejects.toMatchObject({ code: 'IO_ERROR' });
    // A tokenizer.bin past 64 MiB is refused by its size, before any of it is read (the file is sparse).
    const bigTok = join(d, 'tok-big.bin');
    writeFileSync(bigTok, tokenizer(base.vocab_size));
    truncateSync(bigTok, (64 << 20) + 1);
    await expect(openLlama2c(join(d, 'ok.bin'), bigTok)).rejects.toMatchObject({
      code: 'LLAMA2C_BAD_TOKENIZER',
      message: `${bigTok}: is 67108865 bytes, more than a tokenizer.bin can be`,
    });
    expect(() => parseLlama2cTokenizer(new Uint8Array([8, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 127]), 1, 't')).toThrow(
      expect.objectContaining({ code: 'LLAMA2C_BAD_TOKENIZER' }),
    );
  });
});
