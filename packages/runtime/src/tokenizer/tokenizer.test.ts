import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openGguf, openLlama2c, synthHfTokenizerJson, synthVocabulary } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { HfTokenizer, Llama2cTokenizer, SpmTokenizer } from './index.js';

interface Row {
  text: string;
  runc_encode: number[];
  sentencepiece_encode: number[];
  same: boolean;
}
const rows = (): Row[] =>
  readFileSync(join(STORIES_DIR, 'expected', 'tokenizer_encode.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));

describe.skipIf(!HAS_STORIES)(`stories260K tokenizers${STORIES_REASON}`, () => {
  it('llama2.c: encodes every oracle string exactly as run.c does', async () => {
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await src.close();
    if (src.tokenizer.model !== 'llama2c') throw new Error('expected llama2c');
    const t = new Llama2cTokenizer(src.tokenizer, 1, 2);
    const all = rows();
    expect(all.length).toBe(19);
    for (const r of all) expect(t.encode(r.text), JSON.stringify(r.text)).toEqual(r.runc_encode);
    // Decoding drops the space after BOS, as run.c prints it.
    expect(t.decode(t.encode('Once upon a time'))).toBe('Once upon a time');
  });

  it('GGUF SentencePiece vocabulary: matches SentencePiece wherever SentencePiece does not normalize whitespace', async () => {
    const src = await openGguf(join(STORIES_DIR, 'stories260K.gguf'));
    await src.close();
    if (src.tokenizer.model !== 'spm') throw new Error('expected spm');
    const t = new SpmTokenizer(src.tokenizer, 1, 2);
    let compared = 0;
    for (const r of rows()) {
      if (!r.same) continue; // SentencePiece collapses and trims spaces; llama.cpp's SPM tokenizer (and ours) keep them
      expect(t.encode(r.text), JSON.stringify(r.text)).toEqual(r.sentencepiece_encode);
      expect(t.decode(t.encode(r.text))).toBe(r.text);
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
  });
});

describe('Hugging Face tokenizer.json', () => {
  const vocab = synthVocabulary(600);
  const t = new HfTokenizer(JSON.parse(synthHfTokenizerJson(vocab)), 1, 2);
  it('encodes with BOS and decodes back, bytes and all', () => {
    const ids = t.encode('hello abc é');
    expect(ids[0]).toBe(1);
    expect(t.decode(ids)).toBe('hello abc é');
  });
  it("prepends BOS only where the tokenizer's own post-processor does (Qwen2-style tokenizers do not)", () => {
    expect(t.addsBos).toBe(true);
    const json = JSON.parse(synthHfTokenizerJson(vocab));
    json.post_processor = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
    const q = new HfTokenizer(json, 1, 2);
    expect(q.addsBos).toBe(false);
    expect(q.encode('hello')[0]).not.toBe(1);
    expect(q.encode('hello', { bos: true })[0]).toBe(1);
    expect(q.encode('hello')).toEqual(t.encode('hello', { bos: false }));
  });
  it('decodes no ids to no text; a U+FEFF and the spaces before punctuation as written', () => {
    expect(t.decode([])).toBe('');
    for (const text of ['\ufeffHello', "Wait . What ? Yes ! I 'm sure it 's fine , n't"]) {
      const ids = t.encode(text, { bos: false });
      expect(t.decode(ids), JSON.stringify(text)).toBe(text);
      const d = t.streamDecoder();
      expect(ids.map((id) => d.push(id)).join('') + d.flush(), JSON.stringify(text)).toBe(text);
    }
  });
  it('streams without splitting a multi-byte character', () => {
    const ids = t.encode('a é€ b', { bos: false });
    const d = t.streamDecoder(1);
    const parts = ids.map((id) => d.push(id));
    expect(parts.join('') + d.flush()).toBe('a é€ b');
    expect(parts.some((p) => p.includes('\uFFFD'))).toBe(false);
  });
});

describe('piece tokenizers stream whole characters', () => {
  it('holds back byte tokens until a character is complete', () => {
    const vocab = synthVocabulary(600);
    const t = new SpmTokenizer(vocab, 1, 2);
    const ids = t.encode('€a', { bos: true });
    expect(ids.slice(0, 2)).toEqual([1, 259]); // BOS, then "▁" (add_space_prefix; piece 259), which has no merge with a byte
    const d = t.streamDecoder();
    const out = ids.map((id) => d.push(id));
    expect(out.join('')).toBe('€a');
    expect(out.filter((s) => s.length > 0).every((s) => !s.includes('\uFFFD'))).toBe(true);
  });
  it('prints a leading U+FEFF the model writes (text, not a byte-order mark to strip), whole and streamed', () => {
    const t = new SpmTokenizer(synthVocabulary(600), 1, 2);
    for (const text of ['\ufeffHello', 'a\ufeff', '\ufeff']) {
      const ids = t.encode(text, { bos: true });
      expect(t.decode(ids), JSON.stringify(text)).toBe(text);
      const d = t.streamDecoder();
      expect(ids.map((id) => d.push(id)).join('') + d.flush(), JSON.stringify(text)).toBe(text);
    }
  });
});

describe.skipIf(!HAS_STORIES)(`the llama2.c tokenizer on long text${STORIES_REASON}`, () => {
  // The bound is on the algorithm, not the machine: run.c's rescan per merge takes ~30 s here, the
  // heap-based merge ~0.1 s on a quiet core and 1.4 s on a loaded 2-core CI VM; 10 s tells them apart.
  it('encodes 32K characters in far less than a rescan per merge (run.c: 30 s), and decodes back', { timeout: 30_000 }, async () => {
    const src = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await src.close();
    if (src.tokenizer.model !== 'llama2c') throw new Error('expected llama2c');
    const t = new Llama2cTokenizer(src.tokenizer, 1, 2);
    const text = Array.from({ length: 900 }, (_, i) => `Once upon a time, ${i} little cats ran. `).join('');
    expect(text.length).toBeGreaterThan(32000);
    const t0 = performance.now();
    const ids = t.encode(text);
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(t.decode(ids)).toBe(text);
    // Merges never cross what a shorter text would merge: the first sentence encodes alike alone.
    expect(ids.slice(0, t.encode('Once upon a time,').length - 1)).toEqual(t.encode('Once upon a time,').slice(0, -1));
  });
});
