/**
 * Vocabularies for the structured-output tests and the mask benchmark (not exported from the
 * package): a Llama-shaped 32,000-token byte-fallback vocabulary with what real ones hold besides
 * words — punctuation and JSON runs, digits, capitalized words, whitespace runs, and a block of
 * non-ASCII pieces (Cyrillic, CJK, accented Latin) whose bytes split across UTF-8 lead bytes.
 */
import { synthVocabulary } from '@ie/format';
import type { ConstraintVocabulary } from './constraint.js';

const enc = new TextEncoder();

/** A deterministic xorshift32 generator in [0, 1). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Single punctuation characters (and a few digits): alone, in pairs and in runs they make a vocabulary's JSON pieces. */
const PUNCT = [
  '"',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  '.',
  ' ',
  '\n',
  '-',
  '_',
  '(',
  ')',
  "'",
  '\\',
  '/',
  '!',
  '?',
  ';',
  '=',
  '<',
  '>',
  '*',
  '#',
  '@',
  '&',
  '%',
  '+',
  '0',
  '1',
  '2',
  '9',
];

/** Code-point ranges of the non-ASCII pieces: Cyrillic, CJK, accented Latin, Hiragana. */
const SCRIPTS = [
  [0x0410, 0x044f],
  [0x4e00, 0x4fff],
  [0x00c0, 0x00ff],
  [0x3040, 0x309f],
];

/** Distinct pieces in the order first added, up to `size`. */
class Pieces {
  readonly list: string[] = [];
  private readonly seen = new Set<string>();
  constructor(readonly size: number) {}

  add(p: string): void {
    if (this.list.length < this.size && !this.seen.has(p)) {
      this.seen.add(p);
      this.list.push(p);
    }
  }
}

/** Punctuation alone, in pairs and in random runs of 3-5; the numbers 0-999; runs of spaces and of newlines. */
function addSymbols(pieces: Pieces, r: () => number): void {
  for (const a of PUNCT) pieces.add(a);
  for (const a of PUNCT) for (const b of PUNCT) pieces.add(a + b);
  for (let i = 0; i < 1500; i++)
    pieces.add(Array.from({ length: 3 + Math.floor(r() * 3) }, () => PUNCT[Math.floor(r() * PUNCT.length)]).join(''));
  for (let i = 0; i < 1000; i++) pieces.add(String(i));
  for (let n = 2; n <= 16; n++) pieces.add(' '.repeat(n));
  for (let n = 1; n <= 8; n++) pieces.add('\n'.repeat(n));
}

/** Non-ASCII: single characters and short runs from a few scripts, some after a space. */
function addNonAscii(pieces: Pieces, r: () => number): void {
  for (let i = 0; i < 4000; i++) {
    const [lo, hi] = SCRIPTS[i % SCRIPTS.length];
    const len = 1 + Math.floor(r() * 3);
    pieces.add((r() < 0.3 ? ' ' : '') + Array.from({ length: len }, () => String.fromCodePoint(lo + Math.floor(r() * (hi - lo)))).join(''));
  }
}

/**
 * Words: the short synthetic SentencePiece n-grams (with and without the word marker), then
 * pseudo-words of 3-12 letters as long as real vocabularies' (mean about 6 bytes), some capitalized,
 * until the vocabulary is full.
 */
function addWords(pieces: Pieces, r: () => number): void {
  for (const p of synthVocabulary(3000).pieces.slice(260)) pieces.add(p.replaceAll('\u2581', ' '));
  const abc = 'etaoinshrdlcumwfgypbvkjxqz';
  while (pieces.list.length < pieces.size) {
    const len = 3 + Math.floor(r() * r() * 10);
    let w = Array.from({ length: len }, () => abc[Math.floor(r() * r() * abc.length)]).join('');
    if (r() < 0.15) w = w[0].toUpperCase() + w.slice(1);
    pieces.add(r() < 0.6 ? ` ${w}` : w);
  }
}

/** ids 0..2: <unk> <s> </s>; 3..258: the 256 byte tokens; then pieces; EOS = 2. */
export function llamaLikeVocabulary(size = 32000): ConstraintVocabulary & { pieces: string[] } {
  const pieces = new Pieces(size);
  // One generator through all three steps, in this order: the vocabulary is the same on every run.
  const r = rng(12345);
  addSymbols(pieces, r);
  addNonAscii(pieces, r);
  addWords(pieces, r);
  const tokens: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)];
  for (let b = 0; b < 256; b++) tokens.push(Uint8Array.of(b));
  const names = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).padStart(2, '0')}>`)];
  for (const p of pieces.list) {
    if (tokens.length >= size) break;
    tokens.push(enc.encode(p));
    names.push(p);
  }
  return { tokens, stopTokens: [2], pieces: names };
}
