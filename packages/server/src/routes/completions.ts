/** POST /v1/completions: a continuation of `prompt` (text, or token ids used as given). */
import type { Engine } from '@ie/runtime';
import type { FastifyInstance } from 'fastify';
import { answer } from '../answer.js';
import { ServerError } from '../errors.js';
import { COMPLETION_BODY_SCHEMA, type CompletionBody, checkCompletion, choicesOf, completionLogprobsOf, samplingOf } from '../openai.js';
import type { GenerationRequest } from '../scheduler.js';
import { type RouteContext, checkModel, refuseSurelyTooLong, tokenBytesOf } from './context.js';

/**
 * The prompt's token ids. Text is tokenized here (BOS where the vocabulary's rules add it, as
 * engine.generate does) to refuse a prompt longer than the context before it takes a place in the queue.
 */
function promptIds(engine: Engine, p: CompletionBody['prompt']): number[] {
  const text = typeof p === 'string' ? p : typeof p[0] === 'string' ? (p[0] as string) : undefined;
  if (text === undefined) return p as number[];
  refuseSurelyTooLong(engine, text, 'the prompt', 'prompt');
  return engine.tokenize(text, { bos: true });
}

export function registerCompletions(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/v1/completions', { schema: { body: COMPLETION_BODY_SCHEMA } }, async (req, reply) => {
    const body = req.body as CompletionBody;
    const { engine, scheduler } = ctx.life.ready();
    checkModel(body.model, ctx.modelId);
    checkCompletion(body);
    const ids = promptIds(engine, body.prompt);
    if (ids.length > engine.contextLength)
      throw new ServerError(
        'IE_SERVER_CONTEXT_LENGTH',
        `the prompt is ${ids.length} tokens; the model's context holds ${engine.contextLength}`,
        'prompt',
      );
    // OpenAI's default for completions is 16 tokens.
    // best_of > n: that many candidates, ranked by their tokens' log-probabilities (computed for all).
    const n = body.n ?? 1;
    const best = body.best_of != null && body.best_of > n ? { n, showLogprobs: body.logprobs != null } : undefined;
    const request: GenerationRequest = {
      kind: 'completion',
      prompt: ids,
      options: {
        ...samplingOf(body, 16),
        ...completionLogprobsOf(body),
        ...(best ? { logprobs: true, topLogprobs: body.logprobs ?? 0 } : {}),
      },
    };
    const requests = choicesOf(best ? body.best_of : n, request);
    return answer(ctx, reply, scheduler, requests, {
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      tokenBytes: tokenBytesOf(engine),
      best,
      // The prompt as text: as given, or the ids' text (specials such as BOS are not text).
      ...(body.echo
        ? {
            echo:
              typeof body.prompt === 'string'
                ? body.prompt
                : typeof body.prompt[0] === 'string'
                  ? (body.prompt[0] as string)
                  : engine.detokenize(ids),
          }
        : {}),
    });
  });
}
