/** POST /v1/embeddings: the embedding of each input, as floats or base64. */
import type { FastifyInstance } from 'fastify';
import { ServerError, fromRuntimeError } from '../errors.js';
import { EMBEDDINGS_BODY_SCHEMA, type EmbeddingsBody, embeddingInputs, encodeEmbedding } from '../openai.js';
import { type RouteContext, checkModel, refuseSurelyTooLong } from './context.js';

/** An embed() failure: a bad option names itself (`dimensions`), a bad input (empty, a token id outside the vocabulary) or one too long names `input`. */
function embedError(e: unknown): ServerError {
  const { code, option } = (e ?? {}) as { code?: unknown; option?: unknown };
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'IE_INVALID_OPTION')
    return new ServerError('IE_SERVER_BAD_REQUEST', message, option === 'dimensions' ? 'dimensions' : 'input');
  if (code === 'IE_CONTEXT_OVERFLOW') return new ServerError('IE_SERVER_CONTEXT_LENGTH', message, 'input');
  return fromRuntimeError(e);
}

export function registerEmbeddings(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/v1/embeddings', { schema: { body: EMBEDDINGS_BODY_SCHEMA } }, async (req) => {
    const body = req.body as EmbeddingsBody;
    const { engine, scheduler } = ctx.life.ready();
    checkModel(body.model, ctx.modelId);
    const inputs = embeddingInputs(body);
    // Tokenized here as embed() does (texts with BOS), for the usage and to refuse a long input before it queues.
    inputs.forEach((x, i) => {
      if (typeof x === 'string') refuseSurelyTooLong(engine, x, `input ${i}`, 'input');
    });
    const counts = inputs.map((x) => (typeof x === 'string' ? engine.tokenize(x, { bos: true }).length : x.length));
    counts.forEach((n, i) => {
      if (n > engine.contextLength)
        throw new ServerError(
          'IE_SERVER_CONTEXT_LENGTH',
          `input ${i} is ${n} tokens; the model's context holds ${engine.contextLength}`,
          'input',
        );
    });
    let vectors: Float32Array[];
    try {
      vectors = await scheduler.embed(inputs, body.dimensions != null ? { dimensions: body.dimensions } : {});
    } catch (e) {
      throw e instanceof ServerError ? e : embedError(e);
    }
    const format = body.encoding_format ?? 'float';
    const tokens = counts.reduce((a, n) => a + n, 0);
    return {
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: encodeEmbedding(v, format) })),
      model: ctx.modelId,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });
}
