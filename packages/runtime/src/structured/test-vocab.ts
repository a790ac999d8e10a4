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

/** ids 0..2: <unk> <s> </s>; 3..258: the 256 byte tokens; then pieces; EOS = 2. */
export function llamaLikeVocabulary(size = 32000): ConstraintVocabulary & { pieces: string[] } {
  const pieces: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    if (pieces.length < size && !seen.has(p)) {
      seen.add(p);
      pieces.push(p);
    }
  };
  const r = rng(12345);
  const punct = [
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
  for (const a of punct) add(a);
  for (const a of punct) for (const b of punct) add(a + b);
  for (let i = 0; i < 1500; i++) add(Array.from({ length: 3 + Math.floor(r() * 3) }, () => punct[Math.floor(r() * punct.length)]).join(''));
  for (let i = 0; i < 1000; i++) add(String(i));
  for (let n = 2; n <= 16; n++) add(' '.repeat(n));
  for (let n = 1; n <= 8; n++) add('\n'.repeat(n));
  // Non-ASCII: single characters and short runs from a few scripts.
  const scripts = [
    [0x0410, 0x044f],
    [0x4e00, 0x4fff],
    [0x00c0, 0x00ff],
    [0x3040, 0x309f],
  ];
  for (let i = 0; i < 4000; i++) {
    const [lo, hi] = scripts[i % scripts.length];
    const len = 1 + Math.floor(r() * 3);
    add((r() < 0.3 ? ' ' : '') + Array.from({ length: len }, () => String.fromCodePoint(lo + Math.floor(r() * (hi - lo)))).join(''));
  }
  // Words: the short synthetic SentencePiece n-grams (with and without the word marker), then
  // pseudo-words of 3-12 letters as long as real vocabularies' (mean about 6 bytes), some capitalized.
  for (const p of synthVocabulary(3000).pieces.slice(260)) add(p.replaceAll('\u2581', ' '));
  const abc = 'etaoinshrdlcumwfgypbvkjxqz';
  while (pieces.length < size) {
    const len = 3 + Math.floor(r() * r() * 10);
    let w = Array.from({ length: len }, () => abc[Math.floor(r() * r() * abc.length)]).join('');
    if (r() < 0.15) w = w[0].toUpperCase() + w.slice(1);
    add(r() < 0.6 ? ` ${w}` : w);
  }
  const tokens: Uint8Array[] = [new Uint8Array(0), new Uint8Array(0), new Uint8Array(0)];
  for (let b = 0; b < 256; b++) tokens.push(Uint8Array.of(b));
  const names = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).padStart(2, '0')}>`)];
  for (const p of pieces) {
    if (tokens.length >= size) break;
    tokens.push(enc.encode(p));
    names.push(p);
  }
  return { tokens, stopTokens: [2], pieces: names };
}
