import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IebinReader, decodeTensor, exportIebin, synthModel, SYNTH_PRESETS } from '@ie/format';
import { ContextOverflowError, Engine, InvalidOptionError, Model } from './index.js';

const config = { ...SYNTH_PRESETS.tiny.config, tied_classifier: true };
let dir: string;
let engine: Engine;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ie-embed-'));
  await exportIebin(synthModel(config, { seed: 7 }), dir, { converter: 'test' });
  // maxBatch 4: longer inputs run in several chunks.
  engine = await Engine.load(dir, { threads: 1, contextLength: 64, maxBatch: 4 });
});
afterAll(async () => engine?.dispose());

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const ids = (n: number, from = 3) => Array.from({ length: n }, (_, i) => (from + 5 * i) % config.vocab_size);

describe('engine.embed', () => {
  it('gives one unit vector of the model dim per input, the same each time', async () => {
    const a = await engine.embed(['hello world', 'a b c']);
    expect(a).toHaveLength(2);
    for (const v of a) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v.length).toBe(config.dim);
      expect(norm(v)).toBeCloseTo(1, 5);
    }
    const b = await engine.embed('hello world');
    expect(b).toHaveLength(1);
    expect(Array.from(b[0])).toEqual(Array.from(a[0]));
    expect(Array.from(a[1])).not.toEqual(Array.from(a[0]));
  });

  it('does not depend on the other inputs of the call or their order', async () => {
    const [x, y] = await engine.embed(['first text', 'second text']);
    const [y2, x2] = await engine.embed(['second text', 'first text']);
    expect(Array.from(x2)).toEqual(Array.from(x));
    expect(Array.from(y2)).toEqual(Array.from(y));
  });

  it('mean pooling is the mean of the per-token hidden states; cls is the first, last the last', async () => {
    const t = ids(10); // three chunks of maxBatch 4
    // The model is causal: token k's hidden state is the last one of the prefix 0..k.
    const perToken = [];
    for (let k = 1; k <= t.length; k++) perToken.push((await engine.embed([t.slice(0, k)], { pooling: 'last', normalize: false }))[0]);
    const [mean] = await engine.embed([t], { pooling: 'mean', normalize: false });
    for (let d = 0; d < config.dim; d++) {
      const want = perToken.reduce((s, v) => s + v[d], 0) / t.length;
      expect(mean[d]).toBeCloseTo(want, 4);
    }
    const [cls] = await engine.embed([t], { pooling: 'cls', normalize: false });
    const [last] = await engine.embed([t], { pooling: 'last', normalize: false });
    for (let d = 0; d < config.dim; d++) {
      expect(cls[d]).toBeCloseTo(perToken[0][d], 4);
      expect(last[d]).toBeCloseTo(perToken[t.length - 1][d], 4);
    }
    expect(norm(mean)).not.toBeCloseTo(1, 3);
  });

  it('the last hidden state is the classifier input: the logits are the embedding matrix times it (float64)', async () => {
    const t = ids(6, 11);
    const [h] = await engine.embed([t], { pooling: 'last', normalize: false });
    const logits = (await engine.evaluate(t))[t.length - 1];
    const r = await IebinReader.open(dir);
    const info = r.tensors.find((x) => x.name === 'token_embd.weight');
    if (!info) throw new Error('no token_embd.weight');
    const w = decodeTensor(info, (await r.read(info.name)).bytes);
    await r.close();
    let scale = 0;
    for (const v of logits) scale = Math.max(scale, Math.abs(v));
    for (let i = 0; i < config.vocab_size; i++) {
      let s = 0;
      for (let k = 0; k < config.dim; k++) s += w[i * config.dim + k] * h[k];
      expect(Math.abs(s - logits[i]) / scale).toBeLessThan(1e-4);
    }
  });

  it('leaves generation as it was (the next prompt is prefilled again)', async () => {
    const before = await engine.complete('once upon', { maxTokens: 6, temperature: 0 });
    await engine.embed(['something else entirely']);
    const after = await engine.complete('once upon', { maxTokens: 6, temperature: 0 });
    expect(after.text).toBe(before.text);
  });

  it('dimensions keeps the first N components of the pooled vector, normalized after the cut', async () => {
    const [full] = await engine.embed('hello world', { normalize: false });
    const [cut] = await engine.embed('hello world', { dimensions: 5 });
    const [raw] = await engine.embed('hello world', { dimensions: 5, normalize: false });
    expect(Array.from(raw)).toEqual(Array.from(full.subarray(0, 5)));
    const n = Math.sqrt(Array.from(full.subarray(0, 5)).reduce((s, x) => s + x * x, 0));
    expect(cut).toHaveLength(5);
    for (let d = 0; d < 5; d++) expect(cut[d]).toBeCloseTo(full[d] / n, 6);
    expect(norm(cut)).toBeCloseTo(1, 5);
    expect((await engine.embed('x', { dimensions: config.dim }))[0].length).toBe(config.dim);
    for (const bad of [0, config.dim + 1, 2.5, Number.NaN])
      await expect(engine.embed('x', { dimensions: bad })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION', option: 'dimensions' });
  });

  it('refuses empty inputs, bad options and inputs longer than the context', async () => {
    await expect(engine.embed('')).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.embed([])).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.embed([[]])).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.embed([[config.vocab_size]])).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.embed('x', { pooling: 'max' as 'mean' })).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.embed([ids(65)])).rejects.toBeInstanceOf(ContextOverflowError);
    // A text the context cannot hold, refused before it is encoded (its fewest tokens already too many).
    await expect(engine.embed(['a', 'hello '.repeat(10_000)])).rejects.toMatchObject({
      code: 'IE_CONTEXT_OVERFLOW',
      message: expect.stringMatching(/^input 1 is 60000 characters, at least \d+ tokens; the context holds 64/),
    });
    // A full context fits.
    expect((await engine.embed([ids(64)]))[0].length).toBe(config.dim);
  });

  it('Model.embed runs on a slot of its own and agrees with the engine', async () => {
    // The engine holds the only slot of its model.
    await expect(engine.model.embed('hello world')).rejects.toMatchObject({ code: 'IE_NO_FREE_SLOT' });
    const model = await Model.open(dir, { threads: 1, contextLength: 64, maxBatch: 4 });
    try {
      const a = await model.embed(['hello world']);
      const b = await engine.embed(['hello world']);
      expect(Array.from(a[0])).toEqual(Array.from(b[0]));
      expect(model.freeSlots).toBe(1);
    } finally {
      await model.dispose();
    }
  });
});
