import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteLevelBpeTokenizerJson, gpt2ByteChars, openGguf, openLlama2c, synthHfTokenizerJson, synthVocabulary } from '@ie/format';
import { HAS_STORIES, STORIES_DIR, STORIES_REASON, seededFloats } from '@ie/testing';
import { ContextOverflowError } from '../errors.js';
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { SpmTokenizer } from './spm.js';
import { checkTextFits, hfMaxCharsPerToken } from './text-bound.js';
import type { Tokenizer } from './types.js';

/** A BPE tokenizer.json with `pieces` for vocabulary and the given normalizer / pre-tokenizer. */
const bpe = (extra: Record<string, unknown> = {}, model: Record<string, unknown> = {}) => ({
  normalizer: null,
  pre_tokenizer: null,
  added_tokens: [{ id: 3, content: '<|a longer added token|>' }],
  model: { type: 'BPE', vocab: { a: 0, abc: 1, '\u2581abcd': 2 }, merges: [], unk_token: '<unk>', ...model },
  ...extra,
});

describe('hfMaxCharsPerToken: the longest piece, times what the normalizer can shrink', () => {
  it('takes the longest vocabulary piece or added token', () => {
    expect(hfMaxCharsPerToken(bpe())).toBe('<|a longer added token|>'.length);
    expect(hfMaxCharsPerToken(bpe({ added_tokens: [] }))).toBe(5);
    // Byte-level pieces need no unknown token; special added tokens are matched in the raw text.
    expect(hfMaxCharsPerToken(bpe({ pre_tokenizer: { type: 'ByteLevel' } }, { unk_token: null }))).toBe(24);
    expect(hfMaxCharsPerToken(bpe({ normalizer: { type: 'NFC' }, added_tokens: [{ id: 3, content: '<s>', special: true }] }))).toBe(40);
  });

  it("multiplies by 8 for Unicode normalization and keeps Llama's Prepend + Replace(' ' -> '▁') as they are", () => {
    const llama = {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    };
    expect(hfMaxCharsPerToken(bpe({ added_tokens: [], normalizer: llama }))).toBe(5);
    expect(hfMaxCharsPerToken(bpe({ added_tokens: [], normalizer: { type: 'NFC' } }))).toBe(40);
    const split = {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Isolated' }, { type: 'ByteLevel' }],
    };
    expect(hfMaxCharsPerToken(bpe({ added_tokens: [], pre_tokenizer: split }))).toBe(5);
  });

  it('gives no bound where characters can vanish or fuse without limit', () => {
    const none = [
      bpe({ normalizer: { type: 'Strip', left: true, right: true } }),
      bpe({ normalizer: { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' } }),
      bpe({ normalizer: { type: 'Replace', pattern: { String: '  ' }, content: ' ' } }),
      bpe({ normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'BertNormalizer' }] } }),
      bpe({ normalizer: { type: 'Precompiled', precompiled_charsmap: '' } }),
      bpe({ pre_tokenizer: { type: 'Whitespace' } }),
      bpe({ pre_tokenizer: { type: 'Split', behavior: 'Removed' } }),
      bpe({ added_tokens: [{ id: 3, content: '<mask>', lstrip: true }] }),
      bpe({ added_tokens: [{ id: 3, content: '<|end|>', rstrip: true }] }),
      bpe({}, { fuse_unk: true, unk_token: '<unk>' }),
      // Characters outside the vocabulary dropped: no unknown token, no byte fallback, not byte-level.
      bpe({}, { unk_token: null }),
      bpe({ pre_tokenizer: { type: 'Split', pattern: { Regex: 'a+' }, behavior: 'Isolated', invert: true } }),
      bpe({ pre_tokenizer: { type: 'Split', pattern: {}, behavior: 'Isolated' } }),
      // An added token matched in normalized text (normalized by default) stands for more than its
      // length: Llama's Prepend + Replace make ' <|xyz|>' one token of 8 input characters.
      bpe({
        added_tokens: [{ id: 3, content: '<|xyz|>' }],
        normalizer: {
          type: 'Sequence',
          normalizers: [
            { type: 'Prepend', prepend: '▁' },
            { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
          ],
        },
      }),
      bpe({}, { fuse_unk: true, unk_token: '<unk>', byte_fallback: true }), // no <0xHH> pieces to fall back to
      { ...bpe(), model: { type: 'Unigram', vocab: [['a', 0]] } },
      { ...bpe(), model: { type: 'WordPiece', vocab: { a: 0 } } },
    ];
    for (const json of none) expect(hfMaxCharsPerToken(json), JSON.stringify(json)).toBeUndefined();
    const bytes = Object.fromEntries(
      Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 10 + b]),
    );
    expect(
      hfMaxCharsPerToken(
        bpe({ added_tokens: [] }, { fuse_unk: true, unk_token: '<unk>', byte_fallback: true, vocab: { ...bytes, abc: 1 } }),
      ),
    ).toBe(6);
  });
});

/** Seeded texts, among them the worst case for the bound: the longest piece's text over and over. */
function texts(t: Tokenizer, longest: string, seed: number): string[] {
  const r = seededFloats(4000, seed, 1);
  const pick = (i: number, s: string) => s[Math.floor(((r[i % r.length] + 1) / 2) * s.length) % s.length];
  const alphabet = 'abcdefghij ABC  \n\t.,!?0123é\u0301ü😀漢字';
  const random = Array.from({ length: 3000 }, (_, i) => pick(i, alphabet)).join('');
  return [
    random,
    longest.repeat(200),
    ` ${longest}`.repeat(150),
    ' '.repeat(3000),
    '\n'.repeat(500),
    '😀'.repeat(400),
    `${t.kind} ${random.slice(0, 500)}`,
  ];
}

/** Every text encodes to at least its length over maxCharsPerToken tokens: the bound never refuses a text that fits. */
function expectSound(t: Tokenizer, longest: string) {
  const per = t.maxCharsPerToken;
  expect(per).toBeGreaterThanOrEqual(longest.length);
  for (const text of texts(t, longest, 7)) {
    const n = t.encode(text, { bos: false }).length;
    expect(n, JSON.stringify(text.slice(0, 40))).toBeGreaterThanOrEqual(Math.ceil(text.length / (per as number)));
  }
}

describe('maxCharsPerToken is a sound bound', () => {
  it('for a Llama-style tokenizer.json (Prepend, Replace, byte fallback)', () => {
    const vocab = synthVocabulary(512);
    const t = new HfTokenizer(JSON.parse(synthHfTokenizerJson(vocab)), 1, 2);
    const longest = vocab.pieces.filter((_, i) => vocab.types[i] === 1).reduce((a, b) => (b.length > a.length ? b : a), '');
    expectSound(t, longest.replaceAll('\u2581', ' '));
  });

  it('for a byte-level BPE (GGUF gpt2 pieces as a tokenizer.json)', () => {
    const chars = gpt2ByteChars();
    const pieces = [...chars, 'Ġthe', 'Ġthe Ġthe'.replace(' ', ''), '==', '====', '========'];
    const merges = ['Ġ t', 'Ġt h', 'Ġth e', 'Ġthe Ġthe', '= =', '== ==', '==== ===='];
    const json = byteLevelBpeTokenizerJson({ model: 'gpt2', pieces, types: pieces.map(() => 1), merges, pre: 'gpt2' } as never);
    const t = new HfTokenizer(json, 0, 0, { addsBos: false });
    expectSound(t, '========');
  });

  it.skipIf(!HAS_STORIES)(`for stories260K's llama2.c and SentencePiece vocabularies${STORIES_REASON}`, async () => {
    const c = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
    await c.close();
    if (c.tokenizer.model !== 'llama2c') throw new Error('expected llama2c');
    const l2c = new Llama2cTokenizer(c.tokenizer, 1, 2);
    const g = await openGguf(join(STORIES_DIR, 'stories260K.gguf'));
    await g.close();
    if (g.tokenizer.model !== 'spm') throw new Error('expected spm');
    const spm = new SpmTokenizer(g.tokenizer, 1, 2);
    const longest = g.tokenizer.pieces.reduce((a, b) => (b.length > a.length ? b : a), '').replaceAll('\u2581', ' ');
    expectSound(l2c, longest);
    expectSound(spm, longest);
  });
});

describe('checkTextFits', () => {
  const t = new HfTokenizer(JSON.parse(synthHfTokenizerJson(synthVocabulary(512))), 1, 2);
  it('refuses a text whose fewest tokens pass the context, naming it, and passes one that might fit', () => {
    const per = t.maxCharsPerToken as number;
    expect(() => checkTextFits('x'.repeat(per * 100), t, 100, 'the prompt')).not.toThrow();
    const e = (() => {
      try {
        checkTextFits('x'.repeat(per * 100 + 1), t, 100, 'the prompt');
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(ContextOverflowError);
    expect(e).toMatchObject({
      code: 'IE_CONTEXT_OVERFLOW',
      tokens: 101,
      contextLength: 100,
      message: expect.stringMatching(/^the prompt is \d+ characters, at least 101 tokens/),
    });
  });
});
