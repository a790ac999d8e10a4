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
const QWEN2 = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const O200K = `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
/**
 * llama.cpp's DEFAULT, for a file that names no pre-tokenizer: punctuation runs first, then
 * GPT-2's split, then digit runs, then three digits at a time.
 */
const DEFAULT = ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'];

/**
 * Pre-tokenizer splits by llama.cpp's `tokenizer.ggml.pre` names (as in llama-vocab.cpp): the
 * regexes applied in turn, each splitting what the one before left (Split, Isolated). `gpt2` and
 * `smaug` are ie's older spellings of `gpt-2` and `smaug-bpe`.
 */
export const BYTE_LEVEL_PRE_PATTERNS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  default: DEFAULT,
  'gpt-2': [GPT2],
  gpt2: [GPT2],
  'phi-2': [GPT2],
  // SmolLM: each digit alone first.
  smollm: ['\\p{N}', GPT2],
  'llama-bpe': [LLAMA3],
  llama3: [LLAMA3],
  'llama-v3': [LLAMA3],
  falcon3: [LLAMA3],
  'smaug-bpe': [LLAMA3],
  smaug: [LLAMA3],
  qwen2: [QWEN2],
  'deepseek-r1-qwen': [QWEN2],
  'gpt-4o': [O200K],
});

/** The splits of a `tokenizer.ggml.pre` name (none: llama.cpp's default); undefined for a name not known. */
export function byteLevelPreSplits(pre: string | null): readonly string[] | undefined {
  const name = pre ?? 'default';
  // An own key only: "valueOf" or "__proto__" is no pre-tokenizer.
  return Object.hasOwn(BYTE_LEVEL_PRE_PATTERNS, name) ? BYTE_LEVEL_PRE_PATTERNS[name] : undefined;
}

/**
 * What llama.cpp sets by a pre-tokenizer's name where the file does not say: BOS first (Llama 3's
 * family, `tokenizer.ggml.add_bos_token` absent), and whole pieces taken before merges (Hugging
 * Face's `ignore_merges`, which Llama 3's tokenizer.json sets).
 */
const LLAMA3_FAMILY = new Set(['llama-bpe', 'llama3', 'llama-v3', 'falcon3']);
export function byteLevelPreDefaults(pre: string | null): { addBos: boolean; ignoreMerges: boolean } {
  const llama3 = pre !== null && LLAMA3_FAMILY.has(pre);
  return { addBos: llama3, ignoreMerges: llama3 };
}

/** GGUF token types that are special (control, user-defined): matched whole, never split or merged. */
const SPECIAL_TYPES = new Set([3, 4]);

/**
 * The tokenizer.json object of a byte-level BPE vocabulary: special pieces as added tokens, a
 * Split (by `pre`; none: llama.cpp's default) + ByteLevel pre-tokenizer, a ByteLevel decoder, BPE with the
 * merges. Throws a RangeError for a `pre` not in {@link BYTE_LEVEL_PRE_PATTERNS}.
 */
export function byteLevelBpeTokenizerJson(t: Pick<Gpt2TokenizerSpec, 'pieces' | 'types' | 'merges' | 'pre'>): Record<string, unknown> {
  const patterns = byteLevelPreSplits(t.pre);
  if (!patterns)
    throw new RangeError(
      `the byte-level BPE pre-tokenizer "${t.pre}" is not known; known: ${Object.keys(BYTE_LEVEL_PRE_PATTERNS).join(', ')}`,
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
        ...patterns.map((p) => ({ type: 'Split', pattern: { Regex: p }, behavior: 'Isolated', invert: false })),
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
      ignore_merges: byteLevelPreDefaults(t.pre).ignoreMerges,
      vocab,
      merges: t.merges,
    },
  };
}
