/**
 * IebinWriter's commit protocol under a crash at every step: the commit hook throws (the writer
 * stops there and cleans nothing up, as if killed), and the directory must then hold exactly the
 * previous model or exactly the new one, checked by IebinReader.open + verify() and tensor by
 * tensor; a later export must leave nothing behind.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sameBytes } from '@ie/testing';
import { IebinError } from './errors.js';
import { IebinReader } from './reader.js';
import { synthModel } from './synth.js';
import { IEBIN_COMMIT_STEPS, IebinWriter, type IebinCommitStep } from './writer.js';

const tmp = (p = 'ie-commit-') => mkdtempSync(join(tmpdir(), p));
const files = (d: string) => readdirSync(d).sort();

interface Model {
  seed: number;
  tokenizerFile: string | null;
  tensors: Map<string, Uint8Array>;
  tokenizerBytes: Buffer | null;
}

/** Seed `seed` of the tiny synthetic model, with a tokenizer.json of its own (hf) or its embedded vocabulary. */
async function model(seed: number, hfTokenizer: boolean): Promise<Model> {
  const src = synthModel('tiny', { seed });
  const tensors = new Map<string, Uint8Array>();
  for (const t of src.tensors) tensors.set(t.name, (await t.read()) as Uint8Array);
  let tokenizerFile: string | null = null;
  if (hfTokenizer) {
    tokenizerFile = join(tmp('ie-commit-tok-'), 'tokenizer.json');
    writeFileSync(tokenizerFile, JSON.stringify({ model: { type: 'BPE' }, seed, pad: 'x'.repeat(seed * 10) }));
  }
  return { seed, tokenizerFile, tensors, tokenizerBytes: tokenizerFile ? readFileSync(tokenizerFile) : null };
}

async function write(dir: string, m: Model, onCommitStep?: (s: IebinCommitStep) => void): Promise<void> {
  const src = synthModel('tiny', { seed: m.seed });
  const w = await IebinWriter.create(dir, {
    config: src.config,
    tokenizer: m.tokenizerFile ? { model: 'hf', source: m.tokenizerFile } : src.tokenizer,
    provenance: { converter: 'commit-test', source_format: 'synth', sources: [] },
    onCommitStep,
  });
  for (const t of src.tensors) await w.addTensor({ name: t.name, dtype: t.dtype as 'f32', shape: t.shape }, m.tensors.get(t.name)!);
  await w.finish();
}

/** Which of `models` the directory holds, checked whole (open, verify, every tensor, the tokenizer file); throws if none. */
async function holds(dir: string, models: Model[]): Promise<number> {
  const r = await IebinReader.open(dir);
  const v = await r.verify();
  expect(v.problems).toEqual([]);
  const hits: number[] = [];
  for (const m of models) {
    let same = r.tensors.length === m.tensors.size;
    for (const t of r.tensors) if (same) same = sameBytes((await r.read(t.name)).bytes, m.tensors.get(t.name)!);
    const tok = r.header.tokenizer;
    if (tok.model === 'hf') same &&= m.tokenizerBytes !== null && sameBytes(readFileSync(join(dir, tok.file)), m.tokenizerBytes);
    else same &&= m.tokenizerBytes === null;
    if (same) hits.push(m.seed);
  }
  await r.close();
  expect(hits).toHaveLength(1);
  return hits[0];
}

class Killed extends Error {}

describe('IebinWriter commit survives a crash at every step', () => {
  for (const hf of [true, false]) {
    it(`${hf ? 'tokenizer.json model' : 'embedded tokenizer'}: the old model before the commit point, the new one from it on, and the next export cleans up`, async () => {
      const [a, b, c] = await Promise.all([model(11, hf), model(12, hf), model(13, hf)]);
      // Every step a full export goes through.
      const seen: IebinCommitStep[] = [];
      await write(tmp(), b, (s) => seen.push(s));
      expect(seen).toEqual(IEBIN_COMMIT_STEPS.filter((s) => hf || !s.startsWith('tokenizer-')));
      for (const step of seen) {
        const d = tmp();
        await write(d, a);
        const clean = files(d);
        expect(clean).toEqual(hf ? ['model.ie.bin', 'model.ie.json', 'tokenizer.json'] : ['model.ie.bin', 'model.ie.json']);
        await expect(
          write(d, b, (s) => {
            if (s === step) throw new Killed(s);
          }),
        ).rejects.toBeInstanceOf(Killed);
        const want = seen.indexOf(step) < seen.indexOf('committed') ? a.seed : b.seed;
        expect(await holds(d, [a, b]), `killed after ${step}`).toBe(want);
        // Killed again, at the same step, with the leftovers of the first kill still there.
        await expect(
          write(d, c, (s) => {
            if (s === step) throw new Killed(s);
          }),
        ).rejects.toBeInstanceOf(Killed);
        expect(await holds(d, [a, b, c]), `killed twice after ${step}`).toBe(
          seen.indexOf(step) < seen.indexOf('committed') ? want : c.seed,
        );
        // A later export completes and leaves only its own files.
        await write(d, b);
        expect(await holds(d, [a, b, c])).toBe(b.seed);
        expect(files(d), `after the export that followed a kill after ${step}`).toEqual(clean);
      }
    });
  }

  it('a kill during the first export into an empty directory leaves no model, and the next export succeeds', async () => {
    const b = await model(21, true);
    for (const step of ['bin-staged', 'header-written', 'staged-synced'] as const) {
      const d = tmp();
      await expect(
        write(d, b, (s) => {
          if (s === step) throw new Killed(s);
        }),
      ).rejects.toBeInstanceOf(Killed);
      await expect(IebinReader.open(d)).rejects.toBeInstanceOf(IebinError);
      await write(d, b);
      expect(await holds(d, [b])).toBe(b.seed);
      expect(files(d)).toEqual(['model.ie.bin', 'model.ie.json', 'tokenizer.json']);
    }
  });

  it("removes the previous model's tokenizer.json once a model without one is committed, and nothing it does not own", async () => {
    const [a, b] = await Promise.all([model(41, true), model(42, false)]);
    const d = tmp();
    await write(d, a);
    await write(d, b);
    expect(files(d)).toEqual(['model.ie.bin', 'model.ie.json']);
    expect(await holds(d, [a, b])).toBe(b.seed);
    // A tokenizer.json that no model named (say, of a Hugging Face checkout) is left alone.
    writeFileSync(join(d, 'tokenizer.json'), 'not ours');
    await write(d, b);
    expect(readFileSync(join(d, 'tokenizer.json'), 'utf8')).toBe('not ours');
  });

  it('keeps the model that model.ie.json names when it was left under its staged names', async () => {
    const [a, b] = await Promise.all([model(31, true), model(32, true)]);
    const d = tmp();
    await write(d, a);
    await expect(
      write(d, b, (s) => {
        if (s === 'committed') throw new Killed(s);
      }),
    ).rejects.toBeInstanceOf(Killed);
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    expect(h.bin.file).toMatch(/^model\.\d+-[0-9a-f]{16}\.ie\.bin$/);
    expect(h.tokenizer.file).toMatch(/^tokenizer\.\d+-[0-9a-f]{16}\.json$/);
    // A writer that starts (and is abandoned) must not take the committed model's files.
    const src = synthModel('tiny', { seed: 33 });
    const w = await IebinWriter.create(d, {
      config: src.config,
      tokenizer: src.tokenizer,
      provenance: { converter: 't', source_format: 'synth', sources: [] },
    });
    await w.abort();
    expect(await holds(d, [a, b])).toBe(b.seed);
  });
});
