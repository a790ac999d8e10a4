import { type Engine, leastTokens } from '@ie/runtime';
/** What every route gets from the server: the serving state, the answering context, and the served model's id. */
import type { AnswerContext, TokenBytes } from '../answer.js';
import { ServerError } from '../errors.js';
import type { ServingState } from '../lifecycle.js';
import type { Scheduler } from '../scheduler.js';

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

/**
 * Refuses a request of more generations (`n` choices, `best_of` candidates, a batch of prompts)
 * than the scheduler ever holds at once, its slots and its queue together: on an idle server it
 * would still be 429 `queue_full`, and clients that retry a 429 by themselves would retry forever.
 * It is the client's to change (400 `unsupported_parameter`, `param` the field to lower), or the
 * operator's (--parallel, --queue). `asked` says what the count is made of (`n = 4`).
 */
export function refuseNeverFits(scheduler: Scheduler, generations: number, asked: string, param: string): void {
  const { parallel, queueLimit } = scheduler.stats();
  const most = parallel + queueLimit;
  if (generations > most)
    throw new ServerError(
      'IE_SERVER_UNSUPPORTED',
      `${param}: the request needs ${generations} generations at once (${asked}), and this server holds at most ${most} (--parallel ${parallel} running + --queue ${queueLimit} waiting): ask for at most ${most} per request, or restart ie serve with a larger --queue or --parallel`,
      param,
    );
}

/** Each token's bytes as the text prints them (for logprobs; the tokenizer lists them once, at the first call). */
export function tokenBytesOf(engine: Engine): TokenBytes {
  // A tokenizer that cannot list its tokens' bytes: the token decoded alone.
  return (id) => engine.tokenizer.tokenBytes?.()[id] ?? new TextEncoder().encode(engine.detokenize([id]));
}
