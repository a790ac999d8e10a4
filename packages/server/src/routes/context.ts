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
