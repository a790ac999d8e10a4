/** POST /v1/completions: a continuation of `prompt` (text, or token ids used as given). */
import type { Engine } from '@ie/runtime';
import type { FastifyInstance } from 'fastify';
import { answer } from '../answer.js';
import { ServerError } from '../errors.js';
import {
  COMPLETION_BODY_SCHEMA,
  type CompletionBody,
  checkCompletion,
  choicesOf,
  completionLogprobsOf,
  promptCount,
  samplingOf,
} from '../openai.js';
import type { GenerationRequest, Scheduler } from '../scheduler.js';
import { type RouteContext, checkModel, refuseNeverFits, refuseSurelyTooLong, tokenBytesOf } from './context.js';

/**
 * Refuses a request of more generations (prompts x n, or best_of candidates) than the server ever
 * holds at once, naming the field that makes it too many: `prompt` when the batch alone is, else
 * `best_of` or `n`.
 */
function checkFits(body: CompletionBody, scheduler: Scheduler): void {
  const prompts = promptCount(body.prompt);
  const n = body.n ?? 1;
  const candidates = body.best_of != null && body.best_of > n;
  const perPrompt = candidates ? (body.best_of as number) : n;
  const { parallel, queueLimit } = scheduler.stats();
  const param = perPrompt === 1 || prompts > parallel + queueLimit ? 'prompt' : candidates ? 'best_of' : 'n';
  const asked = [prompts > 1 ? `${prompts} prompts` : '', perPrompt > 1 ? `${candidates ? 'best_of' : 'n'} = ${perPrompt}` : '']
    .filter(Boolean)
    .join(' x ');
  refuseNeverFits(scheduler, prompts * perPrompt, asked, param);
}

/** The request's prompts: text, token ids, or a batch of either. */
function promptsOf(p: CompletionBody['prompt']): Array<string | number[]> {
  if (typeof p === 'string') return [p];
  return typeof p[0] === 'string' || Array.isArray(p[0]) ? (p as Array<string | number[]>) : [p as number[]];
}

/**
 * A prompt's token ids. Text is tokenized here (BOS where the vocabulary's rules add it, as
 * engine.generate does) to refuse a prompt longer than the context before it takes a place in the
 * queue; ids are used as given.
 */
function promptIds(engine: Engine, p: string | number[], field: string): number[] {
  if (typeof p === 'string') refuseSurelyTooLong(engine, p, 'the prompt', field);
  const vocab = engine.config.vocab_size;
  for (const id of typeof p === 'string' ? [] : p)
    if (id >= vocab) throw new ServerError('IE_SERVER_BAD_REQUEST', `${field}: token id ${id} is outside 0..${vocab - 1}`, field);
  const ids = typeof p === 'string' ? engine.tokenize(p, { bos: true }) : p;
  if (ids.length > engine.contextLength)
    throw new ServerError(
      'IE_SERVER_CONTEXT_LENGTH',
      `the prompt is ${ids.length} tokens; the model's context holds ${engine.contextLength}`,
      field,
    );
  return ids;
}

/**
 * Echo: each choice's prompt text (as given, or the ids' text) and, with logprobs, where each prompt
 * token's text starts in it (the tokens decoded in turn, as a generation's text streams).
 */
function echoOf(engine: Engine, prompts: Array<string | number[]>, ids: number[][], perPrompt: number, offsets: boolean) {
  const texts = prompts.map((p, i) => (typeof p === 'string' ? p : engine.detokenize(ids[i])));
  const starts = ids.map((t) => {
    const decoder = engine.tokenizer.streamDecoder();
    let at = 0;
    return t.map((id) => {
      const start = at;
      at += decoder.push(id).length;
      return start;
    });
  });
  const each = <T>(per: T[]) => Array.from({ length: prompts.length * perPrompt }, (_, i) => per[Math.floor(i / perPrompt)]);
  return { echo: each(texts), ...(offsets ? { echoOffsets: each(starts) } : {}) };
}

export function registerCompletions(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/v1/completions', { schema: { body: COMPLETION_BODY_SCHEMA } }, async (req, reply) => {
    const body = req.body as CompletionBody;
    const { engine, scheduler } = ctx.life.ready();
    checkModel(body.model, ctx.modelId);
    checkCompletion(body);
    checkFits(body, scheduler);
    const prompts = promptsOf(body.prompt);
    const ids = prompts.map((p, i) => promptIds(engine, p, prompts.length > 1 ? `prompt[${i}]` : 'prompt'));
    // OpenAI's default for completions is 16 tokens.
    // best_of > n: that many candidates, ranked by their tokens' log-probabilities (computed for all).
    const n = body.n ?? 1;
    const best = body.best_of != null && body.best_of > n ? { n, showLogprobs: body.logprobs != null } : undefined;
    const perPrompt = best ? (body.best_of as number) : n;
    // Each prompt's choices in turn (OpenAI's choice index: prompt i's j-th is i * n + j).
    const requests = ids.flatMap((prompt) =>
      choicesOf(perPrompt, {
        kind: 'completion',
        prompt,
        options: {
          ...samplingOf(body, 16),
          ...completionLogprobsOf(body),
          ...(best ? { logprobs: true, topLogprobs: body.logprobs ?? 0 } : {}),
        },
      } satisfies GenerationRequest),
    );
    return answer(ctx, reply, scheduler, requests, {
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      tokenBytes: tokenBytesOf(engine),
      best,
      perPrompt,
      // Each choice's prompt as text: as given, or the ids' text (specials such as BOS are not text).
      ...(body.echo ? echoOf(engine, prompts, ids, perPrompt, body.logprobs != null) : {}),
    });
  });
}
