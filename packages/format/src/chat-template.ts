/**
 * A model's own chat template (the Jinja text of Hugging Face's `chat_template`, GGUF's
 * `tokenizer.chat_template`) and the special-token strings it refers to, carried from the source
 * into model.ie.json (`chat`). Templates come from untrusted files: every importer and the header
 * reader check them here, and none is rendered by @ie/format (the runtime renders them).
 */

/** What model.ie.json's `chat` member holds. */
export interface ChatTemplateSpec {
  /** The Jinja source, as the model ships it. */
  template: string;
  /** The text of the BOS token the template writes as `{{ bos_token }}` (`<s>`), when the source names it. */
  bos_token?: string;
  /** The text of the EOS token (`</s>`, `<|im_end|>`), when the source names it. */
  eos_token?: string;
}

/** The longest template accepted, in UTF-8 bytes (the largest real ones, tool-calling templates, are under 20 KiB). */
export const MAX_CHAT_TEMPLATE_BYTES = 256 * 1024;
/** The longest special-token string accepted, in UTF-8 bytes. */
export const MAX_SPECIAL_TOKEN_BYTES = 1024;

/** Why `v` is not an acceptable template, or null. */
export function chatTemplateProblem(v: unknown): string | null {
  if (typeof v !== 'string') return `must be a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`;
  if (v.length === 0) return 'is empty';
  const bytes = Buffer.byteLength(v, 'utf8');
  if (bytes > MAX_CHAT_TEMPLATE_BYTES) return `is ${bytes} bytes, more than the cap of ${MAX_CHAT_TEMPLATE_BYTES}`;
  // A NUL byte is no part of any Jinja text; it marks a corrupt or hostile file.
  if (v.includes('\u0000')) return 'holds a NUL character';
  return null;
}

/** Why `v` is not an acceptable special-token string, or null. */
export function specialTokenProblem(v: unknown): string | null {
  if (typeof v !== 'string') return `must be a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`;
  const bytes = Buffer.byteLength(v, 'utf8');
  if (bytes > MAX_SPECIAL_TOKEN_BYTES) return `is ${bytes} bytes, more than the cap of ${MAX_SPECIAL_TOKEN_BYTES}`;
  if (v.includes('\u0000')) return 'holds a NUL character';
  return null;
}

/**
 * tokenizer_config.json's `chat_template`: a string, or a list of `{name, template}` (models with
 * tool-use or RAG variants) of which `default` is the chat template, as transformers picks it.
 * Returns the template, null when there is none (absent, or a list without `default`), or a
 * problem with the JSON path of what is wrong.
 */
export function pickChatTemplate(v: unknown): { template: string | null; problem?: undefined } | { problem: string; field: string } {
  if (v === undefined || v === null) return { template: null };
  if (typeof v === 'string') {
    const problem = chatTemplateProblem(v);
    return problem ? { problem, field: 'chat_template' } : { template: v };
  }
  if (!Array.isArray(v)) return { problem: chatTemplateProblem(v) as string, field: 'chat_template' };
  if (v.length > 64) return { problem: `lists ${v.length} templates, more than the cap of 64`, field: 'chat_template' };
  for (let i = 0; i < v.length; i++) {
    const e = v[i] as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || Array.isArray(e) || typeof e.name !== 'string')
      return { problem: 'must be an object with a string "name" and "template"', field: `chat_template[${i}]` };
    if (e.name !== 'default') continue;
    const problem = chatTemplateProblem(e.template);
    return problem ? { problem, field: `chat_template[${i}].template` } : { template: e.template as string };
  }
  return { template: null };
}

/**
 * A special token as tokenizer_config.json writes it: a string, or an AddedToken object
 * (`{"__type": "AddedToken", "content": "<s>", ...}`, older transformers). Returns undefined
 * when absent or null, or a problem.
 */
export function pickSpecialToken(v: unknown): { token: string | undefined; problem?: undefined } | { problem: string } {
  if (v === undefined || v === null) return { token: undefined };
  const s = typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>).content : v;
  const problem = specialTokenProblem(s);
  return problem ? { problem } : { token: s as string };
}
