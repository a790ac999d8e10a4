/**
 * GGUF byte-level BPE tokenizers (`tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen2, gpt-oss's
 * o200k_harmony, SmolLM2, ...): the GGUF's pieces, merges and pre-tokenizer name rebuilt as the
 * Hugging Face tokenizer.json they were converted from, then run by the same tokenizers library
 * as Hugging Face models (one BPE implementation in the project).
 */
import type { Gpt2TokenizerSpec } from '@ie/format';
import { IeRuntimeError } from '../errors.js';
import { HfTokenizer } from './hf.js';

// JavaScript regular expressions have no inline (?i:...): the contractions spelled out.
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

/** Pre-tokenizer split patterns by llama.cpp's `tokenizer.ggml.pre` names (as in llama-vocab.cpp). */
const PRE_PATTERNS: Record<string, string> = {
  gpt2: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
  'llama-bpe': `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  qwen2: `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
  'gpt-4o': `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`,
};
PRE_PATTERNS.smaug = PRE_PATTERNS['llama-bpe'];
PRE_PATTERNS['smollm'] = PRE_PATTERNS.gpt2;

/** GGUF token types that are special (control, user-defined): matched whole, never split or merged. */
const SPECIAL_TYPES = new Set([3, 4]);

/** The tokenizer.json a GGUF gpt2 tokenizer was made from (pre-tokenizer chosen by `pre`). */
export function gpt2TokenizerJson(t: Gpt2TokenizerSpec): Record<string, unknown> {
  const pre = t.pre ?? 'gpt2';
  const pattern = PRE_PATTERNS[pre];
  if (!pattern) {
    throw new IeRuntimeError(
      'IE_TOKENIZER_UNSUPPORTED',
      `the GGUF's byte-level BPE pre-tokenizer "${pre}" is not known; known: ${Object.keys(PRE_PATTERNS).join(', ')}`,
    );
  }
  const vocab: Record<string, number> = {};
  t.pieces.forEach((p, i) => {
    vocab[p] = i;
  });
  const added = t.pieces.flatMap((content, id) =>
    SPECIAL_TYPES.has(t.types[id])
      ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }]
      : [],
  );
  return {
    version: '1.0',
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

/** A GGUF byte-level BPE tokenizer: BOS only where the file says so (`tokenizer.ggml.add_bos_token`). */
export function gpt2Tokenizer(t: Gpt2TokenizerSpec, bosId: number, eosId: number): HfTokenizer {
  // llama.cpp detokenizes these byte for byte: no transformers-style space clean-up.
  return new HfTokenizer(gpt2TokenizerJson(t), bosId, eosId, { addsBos: t.add_bos, cleanUpSpaces: false });
}
