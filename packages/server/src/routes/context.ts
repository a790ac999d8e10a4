import type { Engine } from '@ie/runtime';
/** What every route gets from the server: the serving state, the answering context, and the served model's id. */
import type { AnswerContext } from '../answer.js';
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

const longestPiece = new WeakMap<Engine, number>();

/**
 * Refuses text that is surely longer than the context before tokenizing it (which holds the event
 * loop: about a second for a 1 MiB prompt): a token covers at most the vocabulary's longest piece,
 * and normalization shrinks text at most 4x (a 4-byte letter to 1), so text over 4 x longest x
 * context bytes is over the context. Tokenizers that cannot list their pieces are not bounded here.
 */
export function refuseSurelyTooLong(engine: Engine, bytes: number, what: string, param: string): void {
  let longest = longestPiece.get(engine);
  if (longest === undefined) {
    longest = 0;
    for (const p of engine.tokenizer.tokenBytes?.() ?? []) longest = Math.max(longest, p.length);
    longestPiece.set(engine, longest);
  }
  if (longest === 0) return;
  const atLeast = Math.ceil(bytes / (4 * longest));
  if (atLeast > engine.contextLength)
    throw new ServerError(
      'IE_SERVER_CONTEXT_LENGTH',
      `${what} is ${bytes} bytes, at least ${atLeast} tokens; the model's context holds ${engine.contextLength}`,
      param,
    );
}
