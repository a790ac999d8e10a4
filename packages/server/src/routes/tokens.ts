/**
 * POST /tokenize and /detokenize, as llama.cpp's server has them: a text's token ids in the served
 * model's vocabulary and back, for clients that count or build prompts in tokens. A text surely
 * longer than the context is refused untokenized (400 context_length_exceeded); ids are bounded by
 * the body limit (decoding a 1 MiB body's ids takes about a tenth of the time tokenizing 1 MiB does).
 */
import type { FastifyInstance } from 'fastify';
import { ServerError } from '../errors.js';
import { type RouteContext, refuseSurelyTooLong } from './context.js';

const TOKENIZE_BODY_SCHEMA = {
  type: 'object',
  required: ['content'],
  properties: {
    content: { type: 'string' },
    /** BOS where the vocabulary's rules add one (llama.cpp's `add_special`); default false, as there. */
    add_special: { type: 'boolean' },
  },
} as const;

const DETOKENIZE_BODY_SCHEMA = {
  type: 'object',
  required: ['tokens'],
  properties: { tokens: { type: 'array', items: { type: 'integer' } } },
} as const;

export function registerTokens(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/tokenize', { schema: { body: TOKENIZE_BODY_SCHEMA } }, async (req) => {
    const body = req.body as { content: string; add_special?: boolean };
    const { engine } = ctx.life.ready();
    // Text surely longer than the context is refused before it is tokenized, as prompts are:
    // tokenizing holds the event loop (about a second for a body at the 1 MiB limit).
    refuseSurelyTooLong(engine, body.content, 'the content', 'content');
    return { tokens: engine.tokenize(body.content, { bos: body.add_special === true }) };
  });
  app.post('/detokenize', { schema: { body: DETOKENIZE_BODY_SCHEMA } }, async (req) => {
    const { tokens } = req.body as { tokens: number[] };
    const { engine } = ctx.life.ready();
    const vocab = engine.config.vocab_size;
    const bad = tokens.findIndex((t) => t < 0 || t >= vocab);
    if (bad >= 0)
      throw new ServerError('IE_SERVER_BAD_REQUEST', `tokens[${bad}]: token id ${tokens[bad]} is outside 0..${vocab - 1}`, 'tokens');
    return { content: engine.detokenize(tokens) };
  });
}
