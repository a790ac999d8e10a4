/** The chat template of a Hugging Face directory (chat_template.jinja or tokenizer_config.json). */
import { basename, join } from 'node:path';
import { HfModelError } from '../errors.js';
import { readRegularFile } from '../file.js';
import {
  MAX_CHAT_TEMPLATE_BYTES,
  chatTemplateProblem,
  pickChatTemplate,
  pickSpecialToken,
  type ChatTemplateSpec,
} from '../chat-template.js';
import { exists, readJson } from './files.js';

/** The largest tokenizer_config.json read (real ones, with their added_tokens_decoder, are under 1 MiB). */
const MAX_TOKENIZER_CONFIG = 16 << 20;

/**
 * The chat template of a Hugging Face directory and the special-token strings it uses: newer
 * transformers save the template as chat_template.jinja (which then wins, as it does there), older
 * ones as tokenizer_config.json's `chat_template` (a string, or a list of `{name, template}` whose
 * `default` is taken); `bos_token` / `eos_token` come from tokenizer_config.json. Neither file is
 * required; a present one that is malformed or too large is HF_BAD_TOKENIZER_CONFIG.
 */
export async function readHfChatTemplate(dir: string): Promise<{ spec: ChatTemplateSpec | null; files: string[]; notes: string[] }> {
  const files: string[] = [];
  const notes: string[] = [];
  const fail = (file: string, field: string | undefined, message: string): never => {
    throw new HfModelError('HF_BAD_TOKENIZER_CONFIG', message, { file, ...(field ? { field } : {}) });
  };
  const cfgPath = join(dir, 'tokenizer_config.json');
  let cfg: Record<string, unknown> = {};
  if (await exists(cfgPath)) {
    cfg = await readJson(cfgPath, 'HF_BAD_TOKENIZER_CONFIG', 'tokenizer_config.json', MAX_TOKENIZER_CONFIG);
    files.push(cfgPath);
  }
  let template: string | null = null;
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (await exists(jinjaPath)) {
    const bytes = await readRegularFile(
      jinjaPath,
      MAX_CHAT_TEMPLATE_BYTES,
      (code, message) => new HfModelError(code, message, { file: jinjaPath }),
      'HF_BAD_TOKENIZER_CONFIG',
    );
    let text = '';
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      fail(jinjaPath, undefined, 'is not valid UTF-8');
    }
    const problem = chatTemplateProblem(text);
    if (problem) fail(jinjaPath, undefined, problem);
    template = text;
    files.push(jinjaPath);
  } else {
    const picked = pickChatTemplate(cfg.chat_template);
    if (picked.problem !== undefined) fail(cfgPath, picked.field, picked.problem);
    else template = picked.template;
    if (template === null && Array.isArray(cfg.chat_template))
      notes.push('tokenizer_config.json lists chat templates but none named "default": no chat template recorded');
  }
  const tokens: { bos_token?: string; eos_token?: string } = {};
  for (const k of ['bos_token', 'eos_token'] as const) {
    const t = pickSpecialToken(cfg[k]);
    if (t.problem !== undefined) fail(cfgPath, k, t.problem);
    else if (t.token !== undefined) tokens[k] = t.token;
  }
  if (template === null) return { spec: null, files, notes };
  notes.push(`chat template from ${basename(files[files.length - 1])} (${Buffer.byteLength(template, 'utf8')} bytes)`);
  return { spec: { template, ...tokens }, files, notes };
}
