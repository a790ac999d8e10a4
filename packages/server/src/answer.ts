/**
 * A generation submitted to the scheduler and answered in OpenAI's shape: one JSON object, or a
 * stream of server-sent-event chunks. A client that disconnects cancels its generation.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { PromptLogprob } from '@ie/runtime';
import type { FastifyReply } from 'fastify';
import { type FinishReason, finishReason, usage } from './openai.js';
import type { ServerError } from './errors.js';
import { toServerError } from './replies.js';
import type { Delta, GenerationRequest, Outcome, Scheduler, Ticket } from './scheduler.js';
import type { ServerMetrics } from './server-metrics.js';
import { eventSender, openEventStream } from './sse.js';

/** What answering needs from the server: the served id, the metrics a generation moves, the log. */
export interface AnswerContext {
  modelId: string;
  metrics: Pick<ServerMetrics, 'cancelled' | 'record'>;
  log: (line: string) => void;
  /** An error as its client may read it (the model's id for its path; see withModelId). Default: as it is. */
  publicError?: (err: ServerError) => ServerError;
}

/** A token's bytes as the text prints them (for logprobs' `token` and `bytes`). */
export type TokenBytes = (id: number) => Uint8Array;

interface LogprobEntry {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** A prompt token's entry (echo): the first token's logprob and alternatives are null, as OpenAI's. */
type PromptEntry = Omit<LogprobEntry, 'logprob' | 'top_logprobs'> & {
  logprob: number | null;
  top_logprobs: LogprobEntry['top_logprobs'] | null;
};

/**
 * Logprobs in OpenAI's two shapes, built token by token: chat's `content` entries, and completions'
 * arrays derived from them (with echo, the prompt's tokens first; text offsets count from the echoed prompt's start).
 */
class LogprobsBuilder {
  private readonly content: LogprobEntry[] = [];
  private readonly textOffset: number[] = [];
  private readonly prompt: PromptEntry[] = [];
  private readonly promptOffset: number[] = [];

  constructor(
    private readonly bytesOf: TokenBytes,
    /** Where the generated text starts: after the echoed prompt. */
    private offset = 0,
  ) {}

  /**
   * Adds the prompt's scores (echo); returns their completions arrays. `offsets`: where each prompt
   * token's text starts in the echoed prompt (else the tokens' own texts summed).
   */
  addPrompt(scores: readonly PromptLogprob[], offsets?: readonly number[]): unknown {
    let at = 0;
    for (const [i, s] of scores.entries()) {
      const e = this.entry(s.token, s.logprob);
      this.prompt.push({
        ...e,
        top_logprobs: s.logprob === null ? null : (s.topLogprobs ?? []).map((t) => this.entry(t.token, t.logprob)),
      });
      this.promptOffset.push(offsets?.[i] ?? at);
      at += e.token.length;
    }
    return completionArrays(this.prompt, this.promptOffset);
  }

  private entry<L extends number | null>(token: number, logprob: L) {
    const b = this.bytesOf(token);
    return { token: Buffer.from(b).toString('utf8'), logprob, bytes: Array.from(b) };
  }

  /** Adds a delta's token (if it carries one); returns this token's chat entry and completions arrays. */
  add(d: Delta): { chat: LogprobEntry; completion: unknown } | undefined {
    const at = this.offset;
    this.offset += d.text.length;
    if (!d.logprob) return undefined;
    const { token, logprob, top } = d.logprob;
    const chat = { ...this.entry(token, logprob), top_logprobs: top.map((t) => this.entry(t.token, t.logprob)) };
    this.content.push(chat);
    this.textOffset.push(at);
    return { chat, completion: completionArrays([chat], [at]) };
  }

  chatObject() {
    return { content: this.content, refusal: null };
  }

  completionObject() {
    return completionArrays([...this.prompt, ...this.content], [...this.promptOffset, ...this.textOffset]);
  }
}

/** Completions' logprobs (parallel arrays; top_logprobs as token text -> logprob) from chat's entries. */
function completionArrays(entries: readonly (LogprobEntry | PromptEntry)[], textOffset: readonly number[]) {
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => (e.top_logprobs ? Object.fromEntries(e.top_logprobs.map((t) => [t.token, t.logprob])) : null)),
    text_offset: textOffset,
  };
}

/** A turn's function calls in OpenAI's shape, each with an id of its own (tool messages answer it by that id). */
function toolCallsOf(o: Outcome) {
  return (o.toolCalls ?? []).map((c) => ({
    id: `call_${randomBytes(12).toString('hex')}`,
    type: 'function' as const,
    function: { name: c.name, arguments: c.arguments },
  }));
}

/** One of a request's choices: its own generation in the scheduler. */
interface Choice {
  readonly index: number;
  readonly ticket: Ticket;
  readonly deltas: AsyncIterator<Delta>;
  /** Set when the request asked for logprobs. */
  readonly logprobs?: LogprobsBuilder;
}

/** A submitted request (its n choices) and what both response forms name it by. */
interface Generation {
  readonly chat: boolean;
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly choices: readonly Choice[];
  readonly res: ServerResponse;
  /** Set when the client closes the connection before the response is complete. */
  clientGone: boolean;
}

/**
 * Submits a request's choices (one generation each: `requests`, from the route's `n`) and answers
 * them, as one JSON object or as a stream of chunks.
 */
export async function answer(
  ctx: AnswerContext,
  reply: FastifyReply,
  sched: Scheduler,
  requests: readonly GenerationRequest[],
  shape: AnswerShape,
): Promise<unknown> {
  const g = submit(ctx, reply.raw, sched, requests, shape);
  return shape.stream ? answerStream(ctx, reply, g, shape) : answerWhole(ctx, reply, g, shape);
}

/** How a request wants its answer. */
export interface AnswerShape {
  stream: boolean;
  /** With stream: a last chunk with the usage. */
  includeUsage: boolean;
  /** For logprobs' token texts and bytes. */
  tokenBytes?: TokenBytes;
  /** Completions' best_of (not streamed). */
  best?: BestOf;
  /** Completions' echo: each choice's prompt text, before its own. */
  echo?: readonly string[];
  /** With echo: where each prompt token's text starts in its choice's echo (logprobs' text_offset). */
  echoOffsets?: readonly (readonly number[])[];
  /** Choices per prompt (completions with several prompts; default: all share one prompt), for the usage. */
  perPrompt?: number;
}

/**
 * OpenAI's best_of (completions, not streamed): of the requests' candidates, the `n` whose tokens
 * have the highest mean log-probability, best first; their logprobs shown only when asked.
 */
export interface BestOf {
  n: number;
  showLogprobs: boolean;
}

/** A candidate's score: the mean log-probability of its tokens (-Infinity for none). */
function meanLogprob(c: Choice): number {
  const entries = c.logprobs?.chatObject().content ?? [];
  return entries.length ? entries.reduce((a, e) => a + e.logprob, 0) / entries.length : Number.NEGATIVE_INFINITY;
}

/** Cancels the choices still running (the client left, or another choice failed). */
function cancelAll(ctx: AnswerContext, choices: readonly Choice[], reason: string): void {
  for (const c of choices)
    if (c.ticket.state !== 'ended') {
      ctx.metrics.cancelled.inc();
      c.ticket.cancel(reason);
    }
}

/** Queues the choices, and cancels them when the client leaves before its response is complete. */
function submit(
  ctx: AnswerContext,
  res: ServerResponse,
  sched: Scheduler,
  requests: readonly GenerationRequest[],
  shape: AnswerShape,
): Generation {
  const { tokenBytes } = shape;
  const chat = requests[0].kind === 'chat';
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
  const created = Math.floor(Date.now() / 1000);
  const choices: Choice[] = [];
  try {
    for (const [index, request] of requests.entries()) {
      const ticket = sched.submit(request);
      const logprobs = request.options.logprobs && tokenBytes ? new LogprobsBuilder(tokenBytes, shape.echo?.[index].length) : undefined;
      choices.push({ index, ticket, deltas: ticket[Symbol.asyncIterator](), logprobs });
    }
  } catch (e) {
    // A full queue for a later choice: the earlier ones go too (a request is answered whole or not at all).
    for (const c of choices) c.ticket.cancel('another choice of the request was refused');
    throw e;
  }
  const g: Generation = { chat, id, created, model: ctx.modelId, choices, res, clientGone: false };
  res.once('close', () => {
    if (res.writableFinished) return;
    g.clientGone = true;
    cancelAll(ctx, choices, 'the client disconnected');
  });
  return g;
}

interface ChoiceText {
  content: string;
  reasoning: string;
}

/** Not streamed: each choice's whole text (reasoning apart) in one chat.completion or text_completion object. */
async function answerWhole(ctx: AnswerContext, reply: FastifyReply, g: Generation, shape: AnswerShape): Promise<unknown> {
  const collect = async (c: Choice): Promise<ChoiceText> => {
    const t = { content: '', reasoning: '' };
    for (let r = await c.deltas.next(); !r.done; r = await c.deltas.next()) {
      if (r.value.prompt) c.logprobs?.addPrompt(r.value.prompt, shape.echoOffsets?.[c.index]);
      else if (r.value.channel === 'analysis') t.reasoning += r.value.text;
      // The answer is the final channel (harmony's commentary, a call's or a preamble, is not content).
      else if (r.value.channel === undefined || r.value.channel === 'final') {
        c.logprobs?.add(r.value);
        t.content += r.value.text;
      }
    }
    return t;
  };
  let texts: ChoiceText[];
  try {
    texts = await Promise.all(
      g.choices.map((c) =>
        collect(c).catch((e) => {
          cancelAll(ctx, g.choices, 'another choice of the request failed');
          throw e;
        }),
      ),
    );
  } catch (e) {
    if (g.clientGone) return reply.hijack();
    throw e;
  }
  const outcomes = await Promise.all(g.choices.map((c) => c.ticket.done));
  for (const o of outcomes) ctx.metrics.record(o);
  return completionObject(g, outcomes, texts, shape);
}

/** The request's usage: each prompt once (its choices read the same), every choice's completion. */
function usageOf(outcomes: readonly Outcome[], perPrompt = outcomes.length) {
  const completion = outcomes.reduce((a, o) => a + o.completionTokens, 0);
  const firsts = outcomes.filter((_, i) => i % perPrompt === 0);
  const sum = (f: (o: Outcome) => number) => firsts.reduce((a, o) => a + f(o), 0);
  return usage(
    sum((o) => o.promptTokens),
    completion,
    sum((o) => o.metrics.cachedTokens),
  );
}

function completionObject(g: Generation, outcomes: readonly Outcome[], texts: readonly ChoiceText[], shape: AnswerShape): unknown {
  const { best, echo } = shape;
  const { id, created, model } = g;
  // Usage counts every candidate: each was generated.
  const u = usageOf(outcomes, shape.perPrompt);
  if (g.chat)
    return {
      id,
      object: 'chat.completion',
      created,
      model,
      choices: g.choices.map((c, i) => {
        const calls = toolCallsOf(outcomes[i]);
        return {
          index: c.index,
          message: {
            role: 'assistant',
            // OpenAI's null content beside tool calls when the model said nothing else.
            content: calls.length && !texts[i].content.trim() ? null : texts[i].content,
            refusal: null,
            ...(texts[i].reasoning ? { reasoning_content: texts[i].reasoning } : {}),
            ...(calls.length ? { tool_calls: calls } : {}),
          },
          logprobs: c.logprobs?.chatObject() ?? null,
          finish_reason: finishReason(outcomes[i].stopReason, calls.length),
        };
      }),
      usage: u,
    };
  const all = g.choices.map((c, i) => ({
    index: c.index,
    text: (echo?.[i] ?? '') + texts[i].content,
    logprobs: c.logprobs?.completionObject() ?? null,
    finish_reason: finishReason(outcomes[i].stopReason),
  }));
  if (!best) return { id, object: 'text_completion', created, model, choices: all, usage: u };
  // Stable: equal scores keep the candidates' order (their seeds').
  const ranked = g.choices
    .map((c, i) => ({ i, score: meanLogprob(c) }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, best.n);
  const choices = ranked.map(({ i }, index) => ({ ...all[i], index, logprobs: best.showLogprobs ? all[i].logprobs : null }));
  return { id, object: 'text_completion', created, model, choices, usage: u };
}

/**
 * Streamed: the status is sent with the first choice's first piece, so a request that fails before
 * it (a prompt too long for a chat template's rendering, a model without chat) still gets its 4xx.
 */
async function answerStream(ctx: AnswerContext, reply: FastifyReply, g: Generation, shape: AnswerShape): Promise<unknown> {
  let first: IteratorResult<Delta>;
  try {
    first = await g.choices[0].deltas.next();
  } catch (e) {
    cancelAll(ctx, g.choices, 'another choice of the request failed');
    if (g.clientGone) return reply.hijack();
    throw e;
  }
  reply.hijack();
  openEventStream(g.res);
  try {
    await relayChunks(ctx, g, first, shape);
  } catch (e) {
    cancelAll(ctx, g.choices, 'another choice of the request failed');
    if (g.clientGone) return;
    // Past the status line an error can only be an event; OpenAI's clients raise it as an APIError.
    const err = toServerError(e);
    const shown = ctx.publicError?.(err) ?? err;
    if (err.code === 'IE_SERVER_INTERNAL') ctx.log(`ie: error: ${(e as Error)?.stack ?? String(e)}`);
    g.res.end(`data: ${JSON.stringify(shown.toJSON())}\n\n`);
  }
}

/**
 * The chunks of a stream: every choice's pieces as they come (choice 0 from `first` on), each
 * choice's finish reason when it ends, the usage when asked, then [DONE].
 */
async function relayChunks(ctx: AnswerContext, g: Generation, first: IteratorResult<Delta>, shape: AnswerShape): Promise<void> {
  const { id, created, model, chat } = g;
  const { includeUsage, echo } = shape;
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  const extra = includeUsage ? { usage: null } : {};
  const send = eventSender(g.res);
  const chunk = (index: number, delta: Record<string, unknown> | string, finish: FinishReason | null, logprobs: unknown = null) =>
    chat
      ? { id, object, created, model, choices: [{ index, delta, logprobs, finish_reason: finish }], ...extra }
      : { id, object, created, model, choices: [{ index, text: delta, logprobs, finish_reason: finish }], ...extra };
  const relay = async (c: Choice, from: IteratorResult<Delta> | undefined): Promise<Outcome | undefined> => {
    // The echoed prompt's chunk carries its scores when they were asked (they come first).
    let echoed = echo?.[c.index];
    const sendEcho = async (logprobs: unknown = null) => {
      if (echoed !== undefined) await send(chunk(c.index, echoed, null, logprobs));
      echoed = undefined;
    };
    if (chat) await send(chunk(c.index, { role: 'assistant', content: '' }, null));
    else if (!c.logprobs) await sendEcho();
    for (let next = from ?? (await c.deltas.next()); !next.done && !g.clientGone; next = await c.deltas.next()) {
      const d = next.value;
      if (d.prompt) {
        const lp = c.logprobs?.addPrompt(d.prompt, shape.echoOffsets?.[c.index]);
        await sendEcho(lp);
        continue;
      }
      await sendEcho();
      if (d.channel === 'analysis') await send(chunk(c.index, { reasoning_content: d.text }, null));
      else if (d.channel === undefined || d.channel === 'final') {
        const lp = c.logprobs?.add(d);
        if (!chat) await send(chunk(c.index, d.text, null, lp?.completion ?? null));
        else await send(chunk(c.index, { content: d.text }, null, lp ? { content: [lp.chat], refusal: null } : null));
      }
    }
    if (g.clientGone) return undefined;
    await sendEcho();
    const o = await c.ticket.done;
    ctx.metrics.record(o);
    // The calls once read whole (each one chunk, arguments complete), then the finish reason.
    const calls = toolCallsOf(o);
    for (const [index, call] of calls.entries()) await send(chunk(c.index, { tool_calls: [{ index, ...call }] }, null));
    await send(chunk(c.index, chat ? {} : '', finishReason(o.stopReason, calls.length)));
    return o;
  };
  const outcomes = await Promise.all(g.choices.map((c, i) => relay(c, i === 0 ? first : undefined)));
  if (g.clientGone) return;
  if (includeUsage) await send({ id, object, created, model, choices: [], usage: usageOf(outcomes as Outcome[], shape.perPrompt) });
  g.res.end('data: [DONE]\n\n');
}
