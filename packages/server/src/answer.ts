/**
 * A generation submitted to the scheduler and answered in OpenAI's shape: one JSON object, or a
 * stream of server-sent-event chunks. A client that disconnects cancels its generation.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { finishReason, usage } from './openai.js';
import { toServerError } from './replies.js';
import type { Delta, GenerationRequest, Outcome, Scheduler, Ticket } from './scheduler.js';
import type { ServerMetrics } from './server-metrics.js';
import { eventSender, openEventStream } from './sse.js';

/** What answering needs from the server: the served id, the metrics a generation moves, the log. */
export interface AnswerContext {
  modelId: string;
  metrics: Pick<ServerMetrics, 'cancelled' | 'record'>;
  log: (line: string) => void;
}

/** A token's bytes as the text prints them (for logprobs' `token` and `bytes`). */
export type TokenBytes = (id: number) => Uint8Array;

/** Logprobs in OpenAI's two shapes, built token by token: chat's `content` entries, completions' parallel arrays. */
class LogprobsBuilder {
  readonly content: unknown[] = [];
  readonly tokens: string[] = [];
  readonly tokenLogprobs: number[] = [];
  readonly topLogprobs: Record<string, number>[] = [];
  readonly textOffset: number[] = [];
  private offset = 0;

  constructor(private readonly bytesOf: TokenBytes) {}

  private entry(token: number, logprob: number) {
    const b = this.bytesOf(token);
    return { token: Buffer.from(b).toString('utf8'), logprob, bytes: Array.from(b) };
  }

  /** Adds a delta's token (if it carries one); returns this token's chat entry and completions arrays. */
  add(d: Delta): { chat: unknown; completion: unknown } | undefined {
    const at = this.offset;
    this.offset += d.text.length;
    if (!d.logprob) return undefined;
    const { token, logprob, top } = d.logprob;
    const e = this.entry(token, logprob);
    const chat = { ...e, top_logprobs: top.map((t) => this.entry(t.token, t.logprob)) };
    const topMap = Object.fromEntries(top.map((t) => [this.entry(t.token, t.logprob).token, t.logprob]));
    this.content.push(chat);
    this.tokens.push(e.token);
    this.tokenLogprobs.push(logprob);
    this.topLogprobs.push(topMap);
    this.textOffset.push(at);
    return { chat, completion: { tokens: [e.token], token_logprobs: [logprob], top_logprobs: [topMap], text_offset: [at] } };
  }

  chatObject() {
    return { content: this.content, refusal: null };
  }

  completionObject() {
    return { tokens: this.tokens, token_logprobs: this.tokenLogprobs, top_logprobs: this.topLogprobs, text_offset: this.textOffset };
  }
}

/** A submitted generation and what both response forms name it by. */
interface Generation {
  readonly chat: boolean;
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly ticket: Ticket;
  readonly deltas: AsyncIterator<Delta>;
  readonly res: ServerResponse;
  /** Set when the request asked for logprobs. */
  readonly logprobs?: LogprobsBuilder;
  /** Set when the client closes the connection before the response is complete. */
  clientGone: boolean;
}

/** Submits a generation and answers it, as one JSON object or as a stream of chunks. */
export async function answer(
  ctx: AnswerContext,
  reply: FastifyReply,
  sched: Scheduler,
  request: GenerationRequest,
  stream: boolean,
  includeUsage: boolean,
  tokenBytes?: TokenBytes,
): Promise<unknown> {
  const g = submit(ctx, reply.raw, sched, request, request.options.logprobs && tokenBytes ? new LogprobsBuilder(tokenBytes) : undefined);
  return stream ? answerStream(ctx, reply, g, includeUsage) : answerWhole(ctx, reply, g);
}

/** Queues the request, and cancels it when the client leaves before its response is complete. */
function submit(
  ctx: AnswerContext,
  res: ServerResponse,
  sched: Scheduler,
  request: GenerationRequest,
  logprobs?: LogprobsBuilder,
): Generation {
  const chat = request.kind === 'chat';
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const ticket = sched.submit(request);
  const g: Generation = {
    chat,
    id,
    created,
    model: ctx.modelId,
    ticket,
    deltas: ticket[Symbol.asyncIterator](),
    res,
    logprobs,
    clientGone: false,
  };
  res.once('close', () => {
    if (res.writableFinished) return;
    g.clientGone = true;
    if (ticket.state !== 'ended') {
      ctx.metrics.cancelled.inc();
      ticket.cancel('the client disconnected');
    }
  });
  return g;
}

/** Not streamed: the whole text (reasoning apart) in one chat.completion or text_completion object. */
async function answerWhole(ctx: AnswerContext, reply: FastifyReply, g: Generation): Promise<unknown> {
  let content = '';
  let reasoning = '';
  try {
    for (let r = await g.deltas.next(); !r.done; r = await g.deltas.next()) {
      if (r.value.channel === 'analysis') reasoning += r.value.text;
      else if (r.value.channel !== 'commentary') {
        g.logprobs?.add(r.value);
        content += r.value.text;
      }
    }
  } catch (e) {
    if (g.clientGone) return reply.hijack();
    throw e;
  }
  const o = await g.ticket.done;
  ctx.metrics.record(o);
  return completionObject(g, o, content, reasoning);
}

function completionObject(g: Generation, o: Outcome, content: string, reasoning: string): unknown {
  const { id, created, model } = g;
  const finish_reason = finishReason(o.stopReason);
  const u = usage(o.promptTokens, o.completionTokens, o.metrics.cachedTokens);
  if (g.chat)
    return {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, refusal: null, ...(reasoning ? { reasoning_content: reasoning } : {}) },
          logprobs: g.logprobs?.chatObject() ?? null,
          finish_reason,
        },
      ],
      usage: u,
    };
  const logprobs = g.logprobs?.completionObject() ?? null;
  return { id, object: 'text_completion', created, model, choices: [{ index: 0, text: content, logprobs, finish_reason }], usage: u };
}

/**
 * Streamed: the status is sent with the first piece, so a request that fails before it (a prompt
 * too long for a chat template's rendering, a model without chat) still gets its 4xx.
 */
async function answerStream(ctx: AnswerContext, reply: FastifyReply, g: Generation, includeUsage: boolean): Promise<unknown> {
  let first: IteratorResult<Delta>;
  try {
    first = await g.deltas.next();
  } catch (e) {
    if (g.clientGone) return reply.hijack();
    throw e;
  }
  reply.hijack();
  openEventStream(g.res);
  try {
    await relayChunks(ctx, g, first, includeUsage);
  } catch (e) {
    if (g.clientGone) return;
    // Past the status line an error can only be an event; OpenAI's clients raise it as an APIError.
    const err = toServerError(e);
    if (err.code === 'IE_SERVER_INTERNAL') ctx.log(`ie: error: ${(e as Error)?.stack ?? String(e)}`);
    g.res.end(`data: ${JSON.stringify(err.toJSON())}\n\n`);
  }
}

/** The chunks of a stream from `first` on: the pieces, the finish reason, the usage when asked, then [DONE]. */
async function relayChunks(ctx: AnswerContext, g: Generation, first: IteratorResult<Delta>, includeUsage: boolean): Promise<void> {
  const { id, created, model, chat } = g;
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const extra = includeUsage ? { usage: null } : {};
  const send = eventSender(g.res);
  const chunk = (delta: Record<string, unknown> | string, finish: 'stop' | 'length' | null, logprobs: unknown = null) =>
    chat
      ? { id, object, created, model, choices: [{ index: 0, delta, logprobs, finish_reason: finish }], ...extra }
      : { id, object, created, model, choices: [{ index: 0, text: delta, logprobs, finish_reason: finish }], ...extra };
  if (chat) await send(chunk({ role: 'assistant', content: '' }, null));
  for (let next = first; !next.done && !g.clientGone; next = await g.deltas.next()) {
    const d = next.value;
    if (d.channel === 'analysis') await send(chunk({ reasoning_content: d.text }, null));
    else if (d.channel !== 'commentary') {
      const lp = g.logprobs?.add(d);
      if (!chat) await send(chunk(d.text, null, lp?.completion ?? null));
      else await send(chunk({ content: d.text }, null, lp ? { content: [lp.chat], refusal: null } : null));
    }
  }
  if (g.clientGone) return;
  const o = await g.ticket.done;
  ctx.metrics.record(o);
  await send(chunk(chat ? {} : '', finishReason(o.stopReason)));
  if (includeUsage)
    await send({ id, object, created, model, choices: [], usage: usage(o.promptTokens, o.completionTokens, o.metrics.cachedTokens) });
  g.res.end('data: [DONE]\n\n');
}
