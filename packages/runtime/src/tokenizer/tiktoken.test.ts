/**
 * gpt-oss's o200k_harmony is a tiktoken vocabulary (byte-pair ranks and a split regex) that
 * Hugging Face converted to tokenizer.json merges. This checks that ie's byte-level BPE path gives
 * tiktoken's own answers: a vocabulary is trained here by byte-pair counting, converted the way
 * transformers' TikTokenConverter does (every split of a token into two known tokens is a merge,
 * ordered by the merged token's rank), and ie's tokenizers (the Hugging Face tokenizer.json path
 * and the GGUF `gpt2` path) are compared with a rank-based encoder written after tiktoken's
 * `byte_pair_encode`, on a few hundred seeded strings full of the harmony special tokens.
 */
import { describe, expect, it } from 'vitest';
import { byteLevelBpeTokenizerJson, type Gpt2TokenizerSpec, gpt2ByteChars } from '@ie/format';
import { seededFloats } from '@ie/testing';
import { pushAll } from '../arrays.js';
import { gpt2Tokenizer } from './gpt2.js';
import { HfTokenizer } from './hf.js';

// tiktoken's o200k_base pat_str, with (?i:'s|...) spelled out (JavaScript has no inline flags).
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?";
const UPPERISH = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]';
const LOWERISH = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
const O200K = new RegExp(
  [
    `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}*${LOWERISH}+${CONTRACTIONS}`,
    `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}+${LOWERISH}*${CONTRACTIONS}`,
    '\\p{N}{1,3}',
    ' ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*',
    '\\s*[\\r\\n]+',
    '\\s+(?!\\S)',
    '\\s+',
  ].join('|'),
  'gu',
);

const HARMONY = ['<|start|>', '<|end|>', '<|message|>', '<|channel|>', '<|constrain|>', '<|return|>', '<|call|>'];
const FRAGMENTS = [
  'analysis',
  'final',
  ' the',
  ' The',
  ' weather',
  "'s",
  "'LL",
  " don't",
  '2026',
  '1234567',
  ' 3.14',
  '\n',
  '\n\n',
  '  \n',
  '\t',
  '    ',
  '/\n',
  ' //',
  '::',
  '中文',
  '日本語',
  '😀',
  '👍🏽',
  'é',
  'e\u0301',
  'ß',
  'Ωμέγα',
  'HTTPServer',
  'camelCase',
  ' json',
  '{"a": 1}',
  '?!',
  ' functions.get_weather',
  ' to=',
  // What transformers' clean_up_tokenization_spaces would rewrite: decoded as written.
  ' .',
  ' ,',
  ' ?',
  " 's",
  " n't",
  '\n    .bar()',
];

/** Seeded strings: fragments and harmony tokens in random order. */
function sampleTexts(count: number, seed: number, withSpecials: boolean): string[] {
  const r = seededFloats(count * 20, seed, 1);
  const pool = withSpecials ? [...FRAGMENTS, ...HARMONY] : FRAGMENTS;
  return Array.from({ length: count }, (_, n) => {
    let text = '';
    for (let k = 0; k < 20; k++) text += pool[Math.floor(Math.abs(r[n * 20 + k]) * 1e6) % pool.length];
    return text;
  });
}

const bytesKey = (b: Uint8Array | number[]) => String.fromCharCode(...b);
const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * A tiktoken-style vocabulary: the 256 bytes at seeded-shuffled ranks (o200k's single bytes are
 * not in byte order either), then `merges` tokens learned by counting adjacent pairs inside the
 * regex pieces of a corpus, each new token ranked after all before it.
 */
function trainRanks(corpus: string[], merges: number): Map<string, number> {
  const ranks = new Map<string, number>();
  const order = Array.from({ length: 256 }, (_, b) => b);
  const r = seededFloats(256, 5, 1);
  order.sort((a, b) => r[a] - r[b] || a - b);
  order.forEach((b, rank) => {
    ranks.set(bytesKey([b]), rank);
  });
  let words: string[][] = corpus.flatMap((t) => (t.match(O200K) ?? []).map((w) => Array.from(utf8(w), (b) => bytesKey([b]))));
  for (let m = 0; m < merges; m++) {
    const counts = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.length; i++) counts.set(`${w[i]}\u0000${w[i + 1]}`, (counts.get(`${w[i]}\u0000${w[i + 1]}`) ?? 0) + 1);
    let best = '';
    let bestCount = 0;
    for (const [pair, c] of counts) if (c > bestCount || (c === bestCount && pair < best)) [best, bestCount] = [pair, c];
    if (bestCount < 2) break;
    const [left, right] = best.split('\u0000');
    ranks.set(left + right, ranks.size);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === left && w[i + 1] === right) out.push(left + w[++i]);
        else out.push(w[i]);
      }
      return out;
    });
  }
  return ranks;
}

/** tiktoken's byte_pair_encode: merge the adjacent pair whose concatenation has the lowest rank, leftmost first, until none is a token. */
function bytePairEncode(piece: string, ranks: Map<string, number>): number[] {
  const parts = Array.from(piece);
  for (;;) {
    let at = -1;
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < parts.length; i++) {
      const rank = ranks.get(parts[i] + parts[i + 1]);
      if (rank !== undefined && rank < min) [at, min] = [i, rank];
    }
    if (at < 0) return parts.map((p) => ranks.get(p) as number);
    parts.splice(at, 2, parts[at] + parts[at + 1]);
  }
}

/** tiktoken's encode with every special allowed: specials split out first, then regex pieces, then byte-pair merging. */
/** tiktoken's encode_ordinary: the regex's pieces byte-pair encoded, special tokens' text included. */
function tiktokenEncodeOrdinary(text: string, ranks: Map<string, number>): number[] {
  return (text.match(O200K) ?? []).flatMap((w) => bytePairEncode(bytesKey(utf8(w)), ranks));
}

function tiktokenEncode(text: string, ranks: Map<string, number>, specials: Map<string, number>): number[] {
  const ids: number[] = [];
  const special = new RegExp([...specials.keys()].map((s) => s.replace(/[|]/g, '\\|')).join('|'), 'g');
  let last = 0;
  const ordinary = (s: string) => pushAll(ids, tiktokenEncodeOrdinary(s, ranks));
  for (const m of text.matchAll(special)) {
    ordinary(text.slice(last, m.index));
    ids.push(specials.get(m[0]) as number);
    last = (m.index ?? 0) + m[0].length;
  }
  ordinary(text.slice(last));
  return ids;
}

/** The vocabulary as Hugging Face converts a tiktoken file: pieces in GPT-2's byte alphabet, one merge per split into two tokens. */
function convertToSpec(ranks: Map<string, number>, specials: string[]): Gpt2TokenizerSpec {
  const chars = gpt2ByteChars();
  const piece = (key: string) => Array.from(key, (c) => chars[c.charCodeAt(0)]).join('');
  const pieces: string[] = new Array(ranks.size);
  const merges: Array<{ left: string; right: string; rank: number }> = [];
  for (const [key, rank] of ranks) {
    pieces[rank] = piece(key);
    for (let i = 1; i < key.length; i++) {
      const left = key.slice(0, i);
      const right = key.slice(i);
      if (ranks.has(left) && ranks.has(right)) merges.push({ left, right, rank });
    }
  }
  merges.sort((a, b) => a.rank - b.rank || (ranks.get(a.left) as number) - (ranks.get(b.left) as number));
  return {
    model: 'gpt2',
    pieces: [...pieces, ...specials],
    types: [...pieces.map(() => 1), ...specials.map(() => 3)],
    merges: merges.map((m) => `${piece(m.left)} ${piece(m.right)}`),
    pre: 'gpt-4o',
    add_bos: false,
  };
}

describe('o200k-style byte-level BPE agrees with tiktoken', () => {
  const ranks = trainRanks(sampleTexts(400, 17, false), 700);
  const spec = convertToSpec(ranks, HARMONY);
  const specials = new Map(HARMONY.map((s, i) => [s, ranks.size + i]));
  const texts = sampleTexts(300, 23, true);

  it('the trained vocabulary has multi-byte merges of every kind the strings need (UTF-8 sequences, spaces, digits)', () => {
    expect(ranks.size).toBeGreaterThan(256 + 300);
    expect(ranks.has(bytesKey(utf8(' the')))).toBe(true);
    expect([...ranks.keys()].some((k) => k.length >= 3 && k.charCodeAt(0) >= 0xe0)).toBe(true);
    expect(ranks.has(bytesKey(utf8('123')))).toBe(true);
    // A converted vocabulary lists several merges for some tokens (every split into two known tokens).
    expect(spec.merges.length).toBeGreaterThan(ranks.size - 256);
  });

  it.each([
    ['tokenizer.json (Hugging Face path)', () => new HfTokenizer(byteLevelBpeTokenizerJson(spec), 0, specials.get('<|return|>') as number)],
    ['GGUF gpt2 with pre "gpt-4o"', () => gpt2Tokenizer(spec, 0, specials.get('<|return|>') as number)],
  ])('%s: 300 strings with harmony specials encode to tiktoken ids and decode back', (_, make) => {
    const t = make();
    let multiByteMerges = 0;
    for (const text of texts) {
      const want = tiktokenEncode(text, ranks, specials);
      expect(t.encode(text), JSON.stringify(text)).toEqual(want);
      multiByteMerges += want.filter((id) => id >= 256 && id < ranks.size).length;
      const plain = text.split(/<\|[a-z]+\|>/).join('');
      expect(t.decode(want)).toBe(plain);
      // Streamed token by token: the same text (no space taken back, no character dropped).
      const d = t.streamDecoder();
      expect(want.map((id) => d.push(id)).join('') + d.flush(), JSON.stringify(text)).toBe(plain);
      // As a message's content: the specials' text as ordinary tokens, cut by the regex as the rest.
      expect(t.encodeOrdinary(text), JSON.stringify(text)).toEqual(tiktokenEncodeOrdinary(text, ranks));
    }
    expect(multiByteMerges).toBeGreaterThan(texts.length * 10);
    // Special-shaped text whose regex pieces run across "<|" and "|>" (a cut after "<|" took other ids).
    for (const text of ["<|'s|>", '<|/end|>', '<|.x|>', '<|-x|>', "x<|'re|>", '<|"q"|>', '<|end|>'])
      expect(t.encodeOrdinary(text), text).toEqual(tiktokenEncodeOrdinary(text, ranks));
    expect(t.encodeOrdinary('')).toEqual([]);
    expect(t.decode([])).toBe('');
  });
});
