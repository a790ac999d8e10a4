/**
 * The longest input a token can stand for, so that a text too long for the context is refused
 * before it is encoded: encoding is linear but slow (a 1 MiB prompt held the event loop for 1.5 s,
 * every running stream of a server with it), and a text of n UTF-16 code units needs at least
 * n / maxCharsPerToken tokens. Where normalization can shrink a text without bound (a Strip, a
 * regex Replace, a SentencePiece charsmap, unknown characters fused into one token) there is no
 * bound, and the text is encoded as before.
 */
import { ContextOverflowError } from '../errors.js';
import type { Tokenizer } from './types.js';

/**
 * How far a Unicode normalization can shrink a text, in UTF-16 code units: canonical composition
 * takes at most four code points into one character (U+1F87 is alpha and three marks), each at
 * most two code units.
 */
const UNICODE_NORMALIZATION_SHRINK = 8;

type Json = Record<string, unknown>;
const obj = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);

/** The factor a tokenizer.json normalizer shrinks text by at most; undefined where it is unbounded. */
function normalizerShrink(n: unknown): number | undefined {
  if (n === null || n === undefined) return 1;
  const o = obj(n);
  switch (o?.type) {
    case 'Sequence': {
      if (!Array.isArray(o.normalizers)) return undefined;
      let f = 1;
      for (const m of o.normalizers) {
        const g = normalizerShrink(m);
        if (g === undefined) return undefined;
        f *= g;
      }
      return f;
    }
    case 'Prepend':
      return 1;
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
    case 'Lowercase':
      return UNICODE_NORMALIZATION_SHRINK;
    case 'Replace': {
      // A literal replaced by a text no shorter (Llama's " " -> "▁"); a pattern or a shorter text is unbounded.
      const from = obj(o.pattern)?.String;
      const to = o.content;
      return typeof from === 'string' && typeof to === 'string' && from.length > 0 && to.length >= from.length ? 1 : undefined;
    }
    default:
      return undefined;
  }
}

/** Whether a tokenizer.json pre-tokenizer keeps every character (none removes any). */
function preTokenizerKeeps(p: unknown): boolean {
  if (p === null || p === undefined) return true;
  const o = obj(p);
  switch (o?.type) {
    case 'Sequence':
      return Array.isArray(o.pretokenizers) && o.pretokenizers.every(preTokenizerKeeps);
    case 'ByteLevel':
    case 'Metaspace':
    case 'Digits':
    case 'UnicodeScripts':
      return true;
    case 'Split':
      // invert keeps only the pattern's matches; a pattern that is neither a Regex nor a String matches nothing.
      return (
        o.behavior !== 'Removed' &&
        o.invert !== true &&
        (typeof obj(o.pattern)?.Regex === 'string' || typeof obj(o.pattern)?.String === 'string')
      );
    case 'Punctuation':
      return o.behavior !== 'Removed';
    default:
      return false; // Whitespace, BertPreTokenizer, CharDelimiterSplit drop characters
  }
}

/**
 * maxCharsPerToken for a Hugging Face tokenizer.json: the longest vocabulary piece or added
 * token (a byte-level piece's characters are its bytes, at least the code units they encode),
 * times what the normalizer may shrink. BPE only, without fused unknowns or added tokens that
 * strip whitespace.
 */
export function hfMaxCharsPerToken(json: Json): number | undefined {
  const model = obj(json.model);
  const vocab = obj(model?.vocab);
  if (!model || !vocab || model.type !== 'BPE') return undefined;
  // Unknown characters fused into one unknown token stand for any number of characters, unless
  // every byte has its token to fall back to.
  const allBytes = () =>
    Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`).every((p) => p in vocab);
  const bytes = model.byte_fallback === true && allBytes();
  if (model.fuse_unk === true && model.unk_token != null && !bytes) return undefined;
  // Without an unknown token, a byte fallback or byte-level pieces, characters outside the vocabulary are dropped.
  const byteLevel = JSON.stringify(json.pre_tokenizer ?? null).includes('"ByteLevel"');
  if (model.unk_token == null && !bytes && !byteLevel) return undefined;
  const shrink = normalizerShrink(json.normalizer);
  if (shrink === undefined || !preTokenizerKeeps(json.pre_tokenizer)) return undefined;
  let longest = 1;
  for (const piece of Object.keys(vocab)) longest = Math.max(longest, piece.length);
  const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
  for (const t of added) {
    const o = obj(t);
    // An added token that strips the whitespace beside it stands for any amount of it; one matched
    // in normalized text (normalized, by default unless special) for more than its own length.
    if (o?.lstrip === true || o?.rstrip === true) return undefined;
    if ((o?.normalized ?? o?.special !== true) === true && json.normalizer != null) return undefined;
    if (typeof o?.content === 'string') longest = Math.max(longest, o.content.length);
  }
  return longest * shrink;
}

/** The longest of `pieces` in UTF-16 code units (at least 1). */
export function longestPiece(pieces: readonly string[]): number {
  let longest = 1;
  for (const p of pieces) if (p.length > longest) longest = p.length;
  return longest;
}

/**
 * Refuses `text` before it is encoded when even its fewest possible tokens (its code units over
 * the tokenizer's maxCharsPerToken) do not fit `contextLength`. `what` names it in the message.
 */
/** The fewest tokens `text` can encode to (its code units over maxCharsPerToken; 0 where there is no bound). */
export function leastTokens(text: string, tokenizer: Tokenizer): number {
  const per = tokenizer.maxCharsPerToken;
  return per === undefined ? 0 : Math.ceil(text.length / per);
}

export function checkTextFits(text: string, tokenizer: Tokenizer, contextLength: number, what: string): void {
  const least = leastTokens(text, tokenizer);
  if (least > contextLength)
    throw new ContextOverflowError(
      `${what} is ${text.length} characters, at least ${least} tokens; the context holds ${contextLength} (set contextLength, or shorten it)`,
      least,
      contextLength,
    );
}
