/**
 * What every importer produces: a model config, a tokenizer and a list of tensors under
 * their canonical names, each already in an IEBIN encoding (row-major) and read lazily.
 */
import type { Provenance } from './header.js';
import type { Dtype } from './layout.js';
import type { ModelConfig } from './llama.js';
import type { QuantParams, TokenizerInput } from './writer.js';

export interface SourceTensor {
  /** Canonical name (`blk.0.attn_q.weight`). */
  name: string;
  dtype: Dtype;
  shape: number[];
  quant: QuantParams | null;
  /** Row-major IEBIN bytes of this tensor. */
  read(): Promise<Uint8Array>;
}

export interface ModelSource {
  format: Provenance['source_format'];
  config: ModelConfig;
  tokenizer: TokenizerInput;
  /** Files the model was read from (hashed into the provenance when exported). */
  files: string[];
  /** In canonical order. */
  tensors: SourceTensor[];
  /** Facts about the import worth recording (e.g. a tensor that was dropped). */
  notes: string[];
  /** For synthetic models: how to regenerate them. */
  synth?: { preset: string; seed: number };
  close(): Promise<void>;
}
