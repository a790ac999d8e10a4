/**
 * The tokenizer for a model header, whatever kind it embeds or references. Every tokenizer is
 * checked before it is trusted: a referenced tokenizer.json must have the size and sha256 its
 * header records, parse, be accepted by the tokenizers library, and survive a probe (encode then
 * decode a short text); any failure is one IeRuntimeError IE_TOKENIZER_INVALID naming the file.
 */
import { join } from 'node:path';
import { jsonErrorPosition, readRegularFile, sha256Bytes, type IebinHeader, type Provenance, type TokenizerInput } from '@ie/format';
import { IeRuntimeError } from '../errors.js';
import { gpt2Tokenizer } from './gpt2.js';
import { HfTokenizer, libraryMessage } from './hf.js';
import { Llama2cTokenizer } from './llama2c.js';
import { backtrackingRisk, tokenizerRegexes } from './regex-risk.js';
import { SpmTokenizer } from './spm.js';
import type { Tokenizer } from './types.js';

export type { StreamDecoder, Tokenizer } from './types.js';
export { Llama2cTokenizer } from './llama2c.js';
export { SpmTokenizer } from './spm.js';
export { HfTokenizer } from './hf.js';
export { gpt2TokenizerJson } from './gpt2.js';
export { checkTextFits, leastTokens } from './text-bound.js';

/** The largest tokenizer.json read (Llama 3's is 9 MB; Gemma's 34 MB). */
export const MAX_TOKENIZER_JSON_BYTES = 64 << 20;

/** The text a tokenizer must encode and decode before it is used. */
export const TOKENIZER_PROBE_TEXT = 'Hello, world! 123';

const invalid = (file: string, message: string, cause?: unknown) =>
  new IeRuntimeError('IE_TOKENIZER_INVALID', `${file}: ${message}`, cause === undefined ? undefined : { cause });

/**
 * Reads and parses a Hugging Face tokenizer.json. With `expected`, its size and sha256 must be
 * those (the header's `tokenizer.bytes` and `tokenizer.sha256`). Errors never quote the file.
 */
export async function readHfTokenizerJson(file: string, expected?: { bytes: number; sha256: string }): Promise<Record<string, unknown>> {
  const bytes = await readRegularFile(file, MAX_TOKENIZER_JSON_BYTES, (_code, message) => invalid(file, message));
  if (expected) {
    if (bytes.length !== expected.bytes)
      throw invalid(
        file,
        `is ${bytes.length} bytes, model.ie.json says ${expected.bytes}; the file was changed or is corrupt, re-export the model`,
      );
    const sum = sha256Bytes(bytes);
    if (sum !== expected.sha256)
      throw invalid(
        file,
        `hashes to ${sum}, model.ie.json says ${expected.sha256} (tokenizer.sha256); the file was changed or is corrupt, re-export the model`,
      );
  }
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw invalid(file, e instanceof TypeError ? 'is not valid UTF-8' : `is not valid JSON (${jsonErrorPosition(e)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(file, 'must hold a JSON object');
  const model = (v as Record<string, unknown>).model;
  if (typeof model !== 'object' || model === null || Array.isArray(model))
    throw invalid(file, 'has no "model" object; is it a tokenizers-library tokenizer.json?');
  return v as Record<string, unknown>;
}

/**
 * Encodes and decodes {@link TOKENIZER_PROBE_TEXT}: the ids must be integers below `vocabSize`
 * (the model's embedding rows) and the text must come back non-empty. Throws IE_TOKENIZER_INVALID.
 */
export function probeTokenizer(t: Tokenizer, vocabSize: number, file: string): void {
  const run = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw invalid(
        file,
        e instanceof IeRuntimeError && e.code === 'IE_TOKENIZER_INVALID' ? e.message : `fails to ${what} a test text: ${libraryMessage(e)}`,
        e,
      );
    }
  };
  const ids: unknown = run('encode', () => t.encode(TOKENIZER_PROBE_TEXT, { bos: false }));
  if (!Array.isArray(ids) || ids.length === 0) throw invalid(file, `encodes ${JSON.stringify(TOKENIZER_PROBE_TEXT)} to no tokens`);
  const bad = ids.find((id) => !Number.isSafeInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined)
    throw invalid(
      file,
      `encodes ${JSON.stringify(TOKENIZER_PROBE_TEXT)} to token id ${typeof bad === 'number' ? bad : `of type ${typeof bad}`}, not an integer in 0..${vocabSize - 1} (the model's vocabulary)`,
    );
  const text: unknown = run('decode', () => t.decode(ids));
  if (typeof text !== 'string' || text.trim() === '')
    throw invalid(file, `decodes ${JSON.stringify(TOKENIZER_PROBE_TEXT)}'s tokens to no text`);
}

/**
 * Every added token's id an integer below the model's vocabulary: one past it (a tokenizer.json
 * from another model) would be produced by encoding its text and fail only when a prompt held it.
 */
function addedTokensWithinVocabulary(json: Record<string, unknown>, vocabSize: number, file: string): void {
  const added = json.added_tokens;
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) throw invalid(file, 'has an "added_tokens" member that is not a list');
  for (const [i, t] of added.entries()) {
    const id = (t as { id?: unknown } | null)?.id;
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
      const content = (t as { content?: unknown } | null)?.content;
      const what = typeof content === 'string' ? ` (${JSON.stringify(content.slice(0, 40))})` : '';
      throw invalid(
        file,
        `added_tokens[${i}]${what} has id ${typeof id === 'number' ? id : (JSON.stringify(id) ?? typeof id)}, not a token id in 0..${vocabSize - 1} (the model's vocabulary)`,
      );
    }
  }
}

/** No regex of the tokenizer.json may backtrack exponentially on a prompt (regex-risk.ts). */
function regexesLinear(json: Record<string, unknown>, file: string): void {
  for (const re of tokenizerRegexes(json)) {
    const risk = backtrackingRisk(re);
    if (risk)
      throw invalid(
        file,
        `has a regex (${JSON.stringify(re.length > 60 ? `${re.slice(0, 59)}…` : re)}) whose matching time can grow exponentially with a prompt: ${risk}; ie refuses it rather than hang on a text`,
      );
  }
}

/**
 * Builds a tokenizer from its spec (a header's, or an importer's with a tokenizer.json path) and
 * probes it. `file` names it in errors; `expected` checks a referenced tokenizer.json's size and sha256.
 */
export async function buildTokenizer(
  spec: IebinHeader['tokenizer'] | TokenizerInput,
  config: { bos_id: number; eos_id: number; vocab_size: number },
  options: { sourceFormat?: Provenance['source_format']; file: string; hfPath?: string; expected?: { bytes: number; sha256: string } },
): Promise<Tokenizer> {
  const { bos_id, eos_id } = config;
  let t: Tokenizer;
  const file = options.file;
  if (spec.model === 'hf') {
    const path = options.hfPath ?? ('source' in spec ? spec.source : file);
    const json = await readHfTokenizerJson(path, options.expected);
    addedTokensWithinVocabulary(json, config.vocab_size, path);
    regexesLinear(json, path);
    try {
      t = new HfTokenizer(json, bos_id, eos_id);
    } catch (e) {
      if (e instanceof IeRuntimeError) throw e;
      throw invalid(path, `the tokenizers library refuses it: ${libraryMessage(e)}`, e);
    }
    probeTokenizer(t, config.vocab_size, path);
    return t;
  }
  try {
    switch (spec.model) {
      case 'llama2c':
        t = new Llama2cTokenizer(spec, bos_id, eos_id);
        break;
      case 'spm':
        // GGUF SentencePiece models (llama.cpp's conversions of llama2.c and Llama checkpoints) stop
        // on a sampled BOS as run.c does, so both sources of one model end their text alike.
        t = new SpmTokenizer(spec, bos_id, eos_id, options.sourceFormat === 'gguf');
        break;
      case 'gpt2':
        t = gpt2Tokenizer(spec, bos_id, eos_id);
        break;
    }
  } catch (e) {
    if (e instanceof IeRuntimeError) throw e;
    throw invalid(file, `its ${spec.model} tokenizer cannot be built: ${libraryMessage(e)}`, e);
  }
  probeTokenizer(t, config.vocab_size, file);
  return t;
}

/** The tokenizer of a loaded model: built, checked against the header (tokenizer.json's sha256) and probed. */
export async function createTokenizer(header: IebinHeader, dir: string): Promise<Tokenizer> {
  const t = header.tokenizer;
  const jsonFile = join(dir, 'model.ie.json');
  if (t.model === 'hf')
    return buildTokenizer(t, header.config, { file: join(dir, t.file), expected: { bytes: t.bytes, sha256: t.sha256 } });
  return buildTokenizer(t, header.config, { file: `${jsonFile} (tokenizer)`, sourceFormat: header.provenance.source_format });
}
