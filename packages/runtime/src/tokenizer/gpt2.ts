/**
 * GGUF byte-level BPE tokenizers (`tokenizer.ggml.model = "gpt2"`: Llama 3, Qwen2, gpt-oss's
 * o200k_harmony, SmolLM2, ...): the GGUF's pieces, merges and pre-tokenizer name rebuilt as the
 * Hugging Face tokenizer.json they were converted from, then run by the same tokenizers library
 * as Hugging Face models (one BPE implementation in the project).
 */
import { BYTE_LEVEL_PRE_PATTERNS, byteLevelBpeTokenizerJson, byteLevelPreSplits, type Gpt2TokenizerSpec } from '@ie/format';
import { IeRuntimeError } from '../errors.js';
import { HfTokenizer } from './hf.js';

/** The tokenizer.json a GGUF gpt2 tokenizer was made from (@ie/format); an unknown pre-tokenizer is IE_TOKENIZER_UNSUPPORTED. */
export function gpt2TokenizerJson(t: Gpt2TokenizerSpec): Record<string, unknown> {
  if (!byteLevelPreSplits(t.pre)) {
    throw new IeRuntimeError(
      'IE_TOKENIZER_UNSUPPORTED',
      `the GGUF's byte-level BPE pre-tokenizer "${t.pre}" is not known; known: ${Object.keys(BYTE_LEVEL_PRE_PATTERNS).join(', ')}`,
    );
  }
  return byteLevelBpeTokenizerJson(t);
}

/** A GGUF byte-level BPE tokenizer: BOS only where the file says so (`tokenizer.ggml.add_bos_token`). */
export function gpt2Tokenizer(t: Gpt2TokenizerSpec, bosId: number, eosId: number): HfTokenizer {
  // llama.cpp detokenizes these byte for byte: no transformers-style space clean-up.
  return new HfTokenizer(gpt2TokenizerJson(t), bosId, eosId, { addsBos: t.add_bos });
}
