/** Models the server's tests make for themselves: seeded, random weights, written as IEBIN. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNTH_PRESETS, exportIebin, synthModel, type ModelConfig } from '@ie/format';

async function write(model: string | ModelConfig, withTemplate = true): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'ie-server-')), 'm');
  const source = synthModel(model, { seed: 3 });
  await exportIebin(withTemplate ? source : { ...source, chat: undefined }, dir, { converter: 'test' });
  return dir;
}

/** The tiny llama preset: fast (thousands of tokens/s), context 512, TinyLlama-Chat's template. */
export const tinyModel = () => write('tiny');

/** The same without a chat template: chat requests must be refused. */
export const noTemplateModel = () => write('tiny', false);

/** gpt-oss-tiny: its vocabulary has harmony's special tokens, so engine.chat works on it. */
export const gptOssModel = () => write('gpt-oss-tiny');

/** Slow enough (12 layers, ~500 tokens/s on one thread, context 1024) that a long request holds its slot while a test looks. */
export const slowModel = () => write({ ...SYNTH_PRESETS['small-256'].config, n_layers: 12, context_length: 1024 });
