/**
 * Errors from @ie/runtime: one class per kind a caller handles differently, each with a stable
 * `code`. Errors from @ie/format (bad model files) and @ie/kernels pass through as they are.
 */
export const RUNTIME_ERROR_CODES = {
  IE_INVALID_OPTION: 'an engine or generation option is invalid',
  IE_PRECISION_UNSUPPORTED: 'the model cannot run at the requested precision',
  IE_TOKENIZER_UNSUPPORTED: "the model's tokenizer kind is not supported",
  IE_TOKENIZER_INVALID:
    "the model's tokenizer is corrupt or malformed (unreadable, not its recorded sha256, or refused by the tokenizer library)",
  IE_MODEL_CORRUPT: 'the model fails its deep checks: weight checksums, NaN/Inf weights (EngineOptions.verify, ie generate --verify)',
  IE_CONTEXT_OVERFLOW: 'the prompt does not fit the context',
  IE_ABORTED: 'the generation was aborted',
  IE_DISPOSED: 'the engine was disposed',
  IE_CHAT_UNSUPPORTED: 'the model has no chat format ie can write',
  IE_CHAT_TOOLS_UNSUPPORTED: "tools were given, and the model's chat template has no tool-call format ie reads",
  IE_CHAT_NO_TEMPLATE: 'the model has no chat template (model.ie.json has no chat member): chat() needs one',
  IE_CHAT_TEMPLATE_INVALID: "the model's chat template does not parse or fails to render",
  IE_CHAT_TEMPLATE_REFUSED: "the model's chat template refused the conversation (raise_exception)",
  IE_MODEL_CHANGED: 'the model file changed on disk while loaded',
  IE_BAD_SLOT: 'a forward step names a KV slot the model does not have',
  IE_BAD_POSITION: "a forward step's positions lie outside the KV slot's context",
  IE_BAD_STEP: 'a forward step is malformed (no rows, too many rows, a slot twice, a token id outside the vocabulary)',
  IE_CACHE_NOT_WRITABLE:
    'a GGUF file loaded directly cannot be converted into its cache directory (cacheDir, IE_CACHE_DIR): not writable or not a directory',
  IE_NO_FREE_SLOT: "every KV slot of the model is taken (Model.open's `sequences`)",
  IE_KV_CACHE_TOO_LARGE: 'the KV cache (contextLength positions for each of `sequences` slots) needs more memory than the machine has',
} as const;
export type RuntimeErrorCode = keyof typeof RUNTIME_ERROR_CODES;

export class IeRuntimeError extends Error {
  override readonly name: string = 'IeRuntimeError';
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The prompt (plus anything already in the sequence) does not fit the context length. */
export class ContextOverflowError extends IeRuntimeError {
  override readonly name = 'ContextOverflowError';
  constructor(
    message: string,
    readonly tokens: number,
    readonly contextLength: number,
  ) {
    super('IE_CONTEXT_OVERFLOW', message);
  }

  /** Throws when `tokens` positions do not fit a `contextLength`-position context. */
  static check(tokens: number, contextLength: number): void {
    if (tokens > contextLength)
      throw new ContextOverflowError(`${tokens} tokens do not fit the ${contextLength}-position context`, tokens, contextLength);
  }
}

/** The caller's AbortSignal fired. */
export class GenerationAbortedError extends IeRuntimeError {
  override readonly name = 'GenerationAbortedError';
  constructor(reason?: unknown) {
    super(
      'IE_ABORTED',
      `the generation was aborted${reason instanceof Error ? `: ${reason.message}` : reason !== undefined ? `: ${String(reason)}` : ''}`,
      { cause: reason },
    );
  }
}

export class InvalidOptionError extends IeRuntimeError {
  override readonly name = 'InvalidOptionError';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super('IE_INVALID_OPTION', `${option}: ${message}`);
  }
}

/** A forward step refused before the kernels see it: a bad KV slot, position or row count. */
export class StepError extends IeRuntimeError {
  override readonly name = 'StepError';
  constructor(code: 'IE_BAD_SLOT' | 'IE_BAD_POSITION' | 'IE_BAD_STEP', message: string) {
    super(code, message);
  }
}
