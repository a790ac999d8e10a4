import { type Engine, leastTokens } from '@ie/runtime';
/** What every route gets from the server: the serving state, the answering context, and the served model's id. */
import type { AnswerContext, TokenBytes } from '../answer.js';
import { ServerError } from '../errors.js';
import type { ServingState } from '../lifecycle.js';

export interface RouteContext extends AnswerContext {
  life: ServingState;
}

/** Refuses a request for another model than the one served (404 model_not_found, param `model`). */
export function checkModel(model: string, served: string): void {
  if (model !== served)
    throw new ServerError(
      'IE_SERVER_MODEL_NOT_FOUND',
      `the model ${JSON.stringify(model)} is not served here; this server serves ${JSON.stringify(served)}`,
      'model',
    );
}

/**
 * Refuses text that is surely longer than the context before tokenizing it (which holds the event
 * loop: about a second for a 1 MiB prompt): the runtime's bound, a text's characters over the most
 * one token can stand for (leastTokens, @ie/runtime's tokenizer/text-bound.ts). Where the tokenizer
 * has no bound the text is tokenized and counted as before.
 */
export function refuseSurelyTooLong(engine: Engine, text: string, what: string, param: string): void {
  const atLeast = leastTokens(text, engine.tokenizer);
  if (atLeast > engine.contextLength)
    throw new ServerError(
      'IE_SERVER_CONTEXT_LENGTH',
      `${what} is ${text.length} characters, at least ${atLeast} tokens; the model's context holds ${engine.contextLength}`,
      param,
    );
}

/** Each token's bytes as the text prints them (for logprobs; the tokenizer lists them once, at the first call). */
export function tokenBytesOf(engine: Engine): TokenBytes {
  // A tokenizer that cannot list its tokens' bytes: the token decoded alone.
  return (id) => engine.tokenizer.tokenBytes?.()[id] ?? new TextEncoder().encode(engine.detokenize([id]));
}
