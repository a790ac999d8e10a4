/** POST /v1/chat/completions: a chat turn in the model's own format. */
import type { FastifyInstance } from 'fastify';
import { answer } from '../answer.js';
import { ServerError } from '../errors.js';
import { CHAT_BODY_SCHEMA, type ChatBody, chatLogprobsOf, checkChat, choicesOf, messagesOf, samplingOf, toolsOf } from '../openai.js';
import type { GenerationRequest } from '../scheduler.js';
import { type RouteContext, checkModel, refuseNeverFits, refuseSurelyTooLong, tokenBytesOf } from './context.js';

export function registerChat(app: FastifyInstance, ctx: RouteContext): void {
  app.post('/v1/chat/completions', { schema: { body: CHAT_BODY_SCHEMA } }, async (req, reply) => {
    const body = req.body as ChatBody;
    const { engine, scheduler } = ctx.life.ready();
    checkModel(body.model, ctx.modelId);
    checkChat(body);
    refuseNeverFits(scheduler, body.n ?? 1, `n = ${body.n ?? 1}`, 'n');
    const messages = messagesOf(body);
    // Rendered here, to refuse before the request takes a place in the queue: a model with no chat
    // format, a conversation its template refuses, one longer than the context; the scheduler runs
    // this prompt as it is. The contents alone first: the rendered conversation is longer.
    refuseSurelyTooLong(engine, messages.map((m) => m.content).join(''), 'the conversation', 'messages');
    // The functions offered and the response format are part of the prompt (gpt-oss's developer
    // message declares both); the format's constraint runs in the scheduler. OpenAI's default
    // max_tokens: as long as the context allows.
    const sampling = samplingOf(body, engine.contextLength);
    const prompt = engine.chatPrompt(messages, {
      ...toolsOf(body),
      ...(sampling.jsonSchema !== undefined
        ? { jsonSchema: sampling.jsonSchema, jsonSchemaName: body.response_format?.json_schema?.name }
        : {}),
      ...(sampling.json ? { json: true } : {}),
      ...(sampling.grammar !== undefined ? { grammar: sampling.grammar } : {}),
      ...(body.reasoning_effort
        ? { reasoningEffort: body.reasoning_effort, templateVariables: { reasoning_effort: body.reasoning_effort } }
        : {}),
    });
    if (prompt.ids.length > engine.contextLength)
      throw new ServerError(
        'IE_SERVER_CONTEXT_LENGTH',
        `the conversation is ${prompt.ids.length} tokens in the model's chat format; the model's context holds ${engine.contextLength}`,
        'messages',
      );
    const options = { ...sampling, ...chatLogprobsOf(body) };
    const request: GenerationRequest = { kind: 'chat', conversation: prompt, options, singleToolCall: body.parallel_tool_calls === false };
    const requests = choicesOf(body.n, request);
    return answer(ctx, reply, scheduler, requests, {
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      tokenBytes: tokenBytesOf(engine),
    });
  });
}
