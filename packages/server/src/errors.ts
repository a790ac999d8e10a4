/**
 * Errors from @ie/server: one class with a stable `code`, and one table that gives each code its
 * HTTP status and the `type`/`code` of OpenAI's error object, so the wire format and the status
 * never disagree.
 */
import { isAbsolute, resolve } from 'node:path';
import { IeRuntimeError, InvalidOptionError, StructuredOutputError } from '@ie/runtime';

export const SERVER_ERROR_CODES = {
  IE_SERVER_BAD_REQUEST: { status: 400, type: 'invalid_request_error', code: null, about: 'a field is missing or has the wrong type' },
  IE_SERVER_INVALID_JSON: { status: 400, type: 'invalid_request_error', code: 'invalid_json', about: 'the body is not valid JSON' },
  IE_SERVER_UNSUPPORTED: {
    status: 400,
    type: 'invalid_request_error',
    code: 'unsupported_parameter',
    about:
      'a parameter ie does not implement was given a non-default value (n or best_of > 16, echo with logprobs, suffix, …), or a request needs more generations at once (n, best_of, prompts) than the server ever holds',
  },
  IE_SERVER_CONTEXT_LENGTH: {
    status: 400,
    type: 'invalid_request_error',
    code: 'context_length_exceeded',
    about: "the prompt is longer than the model's context",
  },
  IE_SERVER_CHAT_UNSUPPORTED: {
    status: 400,
    type: 'invalid_request_error',
    code: 'chat_unsupported',
    about: 'the model has no chat format (template) ie can write, or the template refused the conversation',
  },
  IE_SERVER_UNAUTHORIZED: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key', about: 'missing or wrong bearer key' },
  IE_SERVER_NOT_FOUND: { status: 404, type: 'invalid_request_error', code: 'not_found', about: 'no such route' },
  IE_SERVER_MODEL_NOT_FOUND: {
    status: 404,
    type: 'invalid_request_error',
    code: 'model_not_found',
    about: 'the server serves another model',
  },
  IE_SERVER_BODY_TOO_LARGE: { status: 413, type: 'invalid_request_error', code: 'request_too_large', about: 'the body exceeds the limit' },
  IE_SERVER_UNSUPPORTED_MEDIA: {
    status: 415,
    type: 'invalid_request_error',
    code: 'unsupported_media_type',
    about: 'the body is not application/json',
  },
  IE_SERVER_QUEUE_FULL: { status: 429, type: 'rate_limit_error', code: 'queue_full', about: 'every slot and queue place is taken' },
  IE_SERVER_INTERNAL: { status: 500, type: 'server_error', code: 'internal_error', about: 'a bug or an engine failure' },
  IE_SERVER_LOADING: { status: 503, type: 'server_error', code: 'model_loading', about: 'the model is still loading' },
  IE_SERVER_LOAD_FAILED: { status: 503, type: 'server_error', code: 'model_load_failed', about: 'the model failed to load' },
  IE_SERVER_SHUTTING_DOWN: { status: 503, type: 'server_error', code: 'shutting_down', about: 'the server is shutting down' },
} as const;
export type ServerErrorCode = keyof typeof SERVER_ERROR_CODES;

/** OpenAI's error object, as every non-2xx response carries it. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ServerError extends Error {
  override readonly name = 'ServerError';
  readonly status: number;
  constructor(
    readonly code: ServerErrorCode,
    message: string,
    readonly param: string | null = null,
    /** Seconds a client should wait before retrying (429, 503): the Retry-After header. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.status = SERVER_ERROR_CODES[code].status;
  }

  toJSON(): OpenAiErrorBody {
    const row = SERVER_ERROR_CODES[this.code];
    return { error: { message: this.message, type: row.type, param: this.param, code: row.code } };
  }
}

/** The request field an engine option comes from (an InvalidOptionError names the option): the error's `param`. */
const REQUEST_FIELDS: Partial<Record<string, string>> = {
  prompt: 'prompt',
  input: 'input',
  messages: 'messages',
  maxTokens: 'max_tokens',
  temperature: 'temperature',
  topP: 'top_p',
  seed: 'seed',
  stop: 'stop',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  logprobs: 'logprobs',
  topLogprobs: 'top_logprobs',
  topK: 'top_k',
  minP: 'min_p',
  repetitionPenalty: 'repeat_penalty',
  repeatLastN: 'repeat_last_n',
  logitBias: 'logit_bias',
  tools: 'tools',
  toolChoice: 'tool_choice',
};

/**
 * What an engine error means to a client. The chat codes (today IE_CHAT_UNSUPPORTED; a template
 * that refuses a conversation) are the client's to fix: 400, never 500.
 */
export function fromRuntimeError(e: unknown): ServerError {
  if (e instanceof ServerError) return e;
  // Structured output: a schema (or grammar) ie cannot enforce or that is malformed is the
  // client's response_format to fix; the IE code stays in the message for callers to match.
  if (e instanceof StructuredOutputError) {
    if (/^IE_(SCHEMA|GRAMMAR)_/.test(e.code))
      return new ServerError('IE_SERVER_BAD_REQUEST', `response_format: ${e.message} [${e.code}]`, 'response_format');
    // The model's vocabulary cannot spell what the schema needs (or list its tokens' bytes at all).
    if (e.code === 'IE_CONSTRAINT_VOCAB' || e.code === 'IE_CONSTRAINT_DEAD_END')
      return new ServerError('IE_SERVER_UNSUPPORTED', `response_format: ${e.message} [${e.code}]`, 'response_format');
    return new ServerError('IE_SERVER_INTERNAL', `${e.message} [${e.code}]`);
  }
  // A constraint option the engine refuses came from response_format (or grammar).
  if (e instanceof InvalidOptionError && ['json', 'jsonSchema', 'grammar'].includes(e.option))
    return new ServerError('IE_SERVER_UNSUPPORTED', e.message, e.option === 'grammar' ? 'grammar' : 'response_format');
  if (e instanceof IeRuntimeError) {
    if (e.code === 'IE_CONTEXT_OVERFLOW') return new ServerError('IE_SERVER_CONTEXT_LENGTH', e.message, 'messages');
    if (e.code === 'IE_INVALID_OPTION') {
      if (!(e instanceof InvalidOptionError)) return new ServerError('IE_SERVER_BAD_REQUEST', e.message);
      // An option's member (`logitBias[5]`, `toolChoice.name`) is its field's, and the message
      // names it as the API does (`logit_bias[5]: …`), not by the engine's option.
      const option = e.option.replace(/[[.].*$/, '');
      const field = REQUEST_FIELDS[option];
      const member = e.option.slice(option.length);
      const message =
        field !== undefined && e.message.startsWith(`${e.option}:`) ? `${field}${member}${e.message.slice(e.option.length)}` : e.message;
      return new ServerError('IE_SERVER_BAD_REQUEST', message, field ?? null);
    }
    // A template's raise_exception (roles that do not alternate, …) is about this conversation.
    if (e.code === ('IE_CHAT_TEMPLATE_REFUSED' as string)) return new ServerError('IE_SERVER_BAD_REQUEST', e.message, 'messages');
    if (e.code === ('IE_CHAT_TOOLS_UNSUPPORTED' as string)) return new ServerError('IE_SERVER_CHAT_UNSUPPORTED', e.message, 'tools');
    if (/CHAT|TEMPLATE/.test(e.code)) return new ServerError('IE_SERVER_CHAT_UNSUPPORTED', e.message, 'messages');
    // The server aborts a generation only when its client left (nobody to tell) or at shutdown.
    if (e.code === 'IE_DISPOSED' || e.code === 'IE_ABORTED') return new ServerError('IE_SERVER_SHUTTING_DOWN', e.message);
    return new ServerError('IE_SERVER_INTERNAL', `${e.message} [${e.code}]`);
  }
  return new ServerError('IE_SERVER_INTERNAL', e instanceof Error ? e.message : String(e));
}

/**
 * The error as a client may read it: the runtime names the model by where it lies on the server's
 * disk (`/models/tl: the model has no chat template …`), which is none of the client's business; the
 * client knows the model by its id (what /v1/models lists). `path` is the engine's, as it was loaded:
 * it is replaced wherever it appears, as given and resolved to an absolute path, except that a bare
 * name (`tl`, no directory: it could also be a word of the message) is replaced only where it
 * starts the message (`tl: …`), as the runtime writes it.
 */
export function withModelId(err: ServerError, path: string | undefined, id: string): ServerError {
  const message = hideModelPath(err.message, path, id);
  return message === err.message ? err : new ServerError(err.code, message, err.param, err.retryAfter);
}

/** `message` with the model's `path` replaced by its `id`, as withModelId does for an error. */
export function hideModelPath(message: string, path: string | undefined, id: string): string {
  if (!path) return message;
  const trimmed = (p: string) => p.replace(/(.)[\\/]+$/, '$1');
  const given = trimmed(path);
  const bare = !isAbsolute(given) && !/[\\/]/.test(given);
  const forms = [...new Set([trimmed(resolve(path)), ...(bare ? [] : [given])])]
    .filter((p) => p.length > 1)
    .sort((a, b) => b.length - a.length);
  let out = message;
  for (const p of forms) out = out.split(p).join(id);
  if (bare && out.startsWith(`${given}:`)) out = `${id}${out.slice(given.length)}`;
  return out;
}
