/** The tokenizer for a model header, whatever kind it embeds or references. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IebinHeader } from '@ie/format';
import { gpt2Tokenizer } from './gpt2.js';
import { HfTokenizer } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { SpmTokenizer } from './spm.js';
import type { Tokenizer } from './types.js';

export type { StreamDecoder, Tokenizer } from './types.js';
export { Llama2cTokenizer } from './llama2c.js';
export { SpmTokenizer } from './spm.js';
export { HfTokenizer } from './hf.js';
export { gpt2TokenizerJson } from './gpt2.js';

export async function createTokenizer(header: IebinHeader, dir: string): Promise<Tokenizer> {
  const t = header.tokenizer;
  const { bos_id, eos_id } = header.config;
  switch (t.model) {
    case 'llama2c':
      return new Llama2cTokenizer(t, bos_id, eos_id);
    case 'spm':
      // GGUF SentencePiece models (llama.cpp's conversions of llama2.c and Llama checkpoints) stop
      // on a sampled BOS as run.c does, so both sources of one model end their text alike.
      return new SpmTokenizer(t, bos_id, eos_id, header.provenance.source_format === 'gguf');
    case 'hf':
      return new HfTokenizer(JSON.parse(await readFile(join(dir, t.file), 'utf8')), bos_id, eos_id);
    case 'gpt2':
      return gpt2Tokenizer(t, bos_id, eos_id);
  }
}
