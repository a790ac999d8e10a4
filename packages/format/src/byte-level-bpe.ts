/**
 * Byte-level BPE vocabularies (GGUF `tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen2, gpt-oss's
 * o200k_harmony, SmolLM2, ...) written as the Hugging Face tokenizer.json they come from: the
 * pieces, the merges and the pre-tokenizer llama.cpp names in `tokenizer.ggml.pre`. The runtime
 * runs GGUF vocabularies through it and `ie synth` writes it for Hugging Face directories.
 */
import type { Gpt2TokenizerSpec } from './header.js';

// JavaScript regular expressions have no inline (?i:...): the contractions spelled out.
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const LLAMA3 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** Pre-tokenizer split patterns by llama.cpp's `tokenizer.ggml.pre` names (as in llama-vocab.cpp). */
export const BYTE_LEVEL_PRE_PATTERNS: Readonly<Record<string, string>> = Object.freeze({
  gpt2: GPT2,
  smollm: GPT2,
  'llama-bpe': LLAMA3,
  smaug: LLAMA3,
  qwen2: `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  'gpt-4o': `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
});

/** GGUF token types that are special (control, user-defined): matched whole, never split or merged. */
const SPECIAL_TYPES = new Set([3, 4]);

/**
 * The tokenizer.json object of a byte-level BPE vocabulary: special pieces as added tokens, a
 * Split (by `pre`, default gpt2) + ByteLevel pre-tokenizer, a ByteLevel decoder, BPE with the
 * merges. Throws a RangeError for a `pre` not in {@link BYTE_LEVEL_PRE_PATTERNS}.
 */
export function byteLevelBpeTokenizerJson(t: Pick<Gpt2TokenizerSpec, 'pieces' | 'types' | 'merges' | 'pre'>): Record<string, unknown> {
  const pre = t.pre ?? 'gpt2';
  const pattern = Object.hasOwn(BYTE_LEVEL_PRE_PATTERNS, pre) ? BYTE_LEVEL_PRE_PATTERNS[pre] : undefined;
  if (!pattern)
    throw new RangeError(
      `the byte-level BPE pre-tokenizer "${pre}" is not known; known: ${Object.keys(BYTE_LEVEL_PRE_PATTERNS).join(', ')}`,
    );
  // Own properties even for a piece named "__proto__" (an assignment would set the prototype and drop it).
  const vocab: Record<string, number> = Object.fromEntries(t.pieces.map((p, i) => [p, i]));
  const added = t.pieces.flatMap((content, id) =>
    SPECIAL_TYPES.has(t.types[id])
      ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }]
      : [],
  );
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: t.merges,
    },
  };
}
