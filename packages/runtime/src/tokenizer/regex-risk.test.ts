import { describe, expect, it } from 'vitest';
import { backtrackingRisk, tokenizerRegexes } from './regex-risk.js';

// The pre-tokenizer patterns of real vocabularies, as their tokenizer.json files write them.
const REAL = [
  // GPT-2 / RoBERTa
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  // cl100k (Llama 3, Qwen2 with \\p{N})
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // o200k (gpt-oss)
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // DeepSeek
  '[\\r\\n]',
  '\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕ]+',
  '\\s?[!-/:-~！-／：-～‘-‟　-。]+',
  '\\s+$',
  '[一-龥ࠀ-一가-퟿]+',
  '\\p{N}+',
  // BLOOM (a class with brackets and parentheses in it)
  ' ?[^(\\s|[.,!?…。，、।۔،])]+',
  // Metaspace-style replacements
  ' ',
  '▁',
];

describe('tokenizer.json regexes that could backtrack without bound', () => {
  it("passes real vocabularies' patterns", () => {
    for (const re of REAL) expect(backtrackingRisk(re), re).toBeUndefined();
  });

  it('refuses repeated groups that hold alternatives or a quantifier, and backreferences, saying where', () => {
    for (const [re, why] of [
      ['(a|aa)+$', /group before \+ at 6 repeats alternatives/],
      ['(a+)+b', /repeats a quantifier/],
      ['^((.*)*)*x$', /repeats a quantifier/],
      ['(?:x|y)*z', /repeats alternatives/],
      ['(\\s?\\w)+', /repeats a quantifier/],
      ['(?:a|b){2,}', /repeats alternatives/],
      ['(?:a|b){1,100}', /repeats alternatives/],
      ['(a)\\1', /backreference/],
      ['(?<x>a)\\k<x>', /backreference/],
    ] as const)
      expect(backtrackingRisk(re), re).toMatch(why);
    // Bounded or single-character repetition is linear enough: kept.
    for (const re of ["(?:'s|'t)?", '(?:ab){3}', '(?:a|b){1,4}', '[(|)]+', '\\(a|b\\)+', 'a{2,}', '\\p{L}+', '(?:ab)+'])
      expect(backtrackingRisk(re), re).toBeUndefined();
  });

  it('finds the patterns of the normalizer, the pre-tokenizer (in sequences) and the decoder', () => {
    const json = {
      normalizer: { type: 'Replace', pattern: { Regex: 'n' }, content: ' ' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: 'p' } }, { type: 'ByteLevel' }] },
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { Regex: 'd' }, content: '' }] },
      model: { type: 'BPE', vocab: { x: { Regex: 'not a pattern' } } },
    };
    expect(tokenizerRegexes(json)).toEqual(['n', 'p', 'd']);
  });
});
