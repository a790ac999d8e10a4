/**
 * The scheduler: where requests wait and how they reach the engine. The HTTP layer only submits a
 * request, reads its stream of text, and cancels it; it never touches the engine. SerialScheduler
 * runs requests on one Engine (which decodes one sequence at a time); BatchingScheduler runs them
 * on a BatchScheduler (continuous batching: every running request a row of one forward step).
 */
import {
  BatchScheduler,
  GenerationAbortedError,
  type ChatCompletion,
  type ChatMessage,
  type ChatOptions,
  type ChatPrompt,
  type EmbedInput,
  type EmbedOptions,
  type GenerateOptions,
  type Generation,
  type GenerationMetrics,
  type Model,
  type Piece,
  type PromptLogprob,
  type StopReason,
  type TokenLogprob,
  type ToolCall,
} from '@ie/runtime';
import { ServerError } from './errors.js';

/** The sampling settings a request carries (OpenAI's, already mapped to the engine's names). */
export interface SamplingRequest {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  stop?: string[];
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Token id (as OpenAI's JSON keys) -> bias. */
  logitBias?: Readonly<Record<string, number>>;
  /** llama.cpp's server's fields (OpenAI's defaults when absent: no top-k, no min-p). */
  topK?: number;
  minP?: number;
  repetitionPenalty?: number;
  repeatLastN?: number;
  /** A GBNF grammar the output follows (llama.cpp's server's `grammar`). */
  grammar?: string;
  /** Each token's log-probability, and its step's topLogprobs likeliest tokens. */
  logprobs?: boolean;
  topLogprobs?: number;
  /** The prompt's tokens' log-probabilities too (completions' echo with logprobs): one `prompt` delta before the first piece. */
  promptLogprobs?: boolean;
  /** Keep the cache's common prefix with the prompt, or copy it from a request that holds it (the result is the same). */
  reusePrefix?: boolean;
  /** Structured output (response_format): any JSON object, or a JSON schema. */
  json?: boolean;
  jsonSchema?: object | boolean;
}

export type GenerationRequest =
  | { kind: 'completion'; prompt: readonly number[]; options: SamplingRequest }
  /**
   * `conversation`: the messages, or the ChatPrompt the route already rendered for them (not rendered
   * again). `singleToolCall`: report at most one call (OpenAI's parallel_tool_calls: false).
   */
  | { kind: 'chat'; conversation: readonly ChatMessage[] | ChatPrompt; options: SamplingRequest; singleToolCall?: boolean };

/** A piece of the answer as it is decoded. `channel` is set for chat (`final`, `analysis`, …). */
export interface Delta {
  text: string;
  channel?: string;
  /** When logprobs were asked: the token this piece is, with its log-probability and its step's likeliest. */
  logprob?: { token: number; logprob: number; top: readonly TokenLogprob[] };
  /** With promptLogprobs: the prompt's scores, in a delta of their own (text ''), before any piece. */
  prompt?: readonly PromptLogprob[];
}

/** The logprob member of a piece's delta, when it has one. */
function logprobOf(p: Piece | undefined): Pick<Delta, 'logprob'> {
  return p && p.token >= 0 && p.logprob !== undefined ? { logprob: { token: p.token, logprob: p.logprob, top: p.topLogprobs ?? [] } } : {};
}

export interface Outcome {
  stopReason: StopReason;
  /** A chat turn's function calls (none: it answered). */
  toolCalls?: ToolCall[];
  promptTokens: number;
  completionTokens: number;
  metrics: GenerationMetrics;
  /** From submit to a slot. */
  queuedMs: number;
  /** From submit to the first generated token (NaN when none was). */
  ttftMs: number;
  /** From submit to the end. */
  totalMs: number;
}

/** A submitted request: iterate it for its deltas (it throws what ended it, if not the model). */
export interface Ticket extends AsyncIterable<Delta> {
  /** The outcome when it ends; rejects with what ended it otherwise (never unhandled). */
  readonly done: Promise<Outcome>;
  /** Stops it now: a queued request leaves the queue, a running one frees its slot at once. */
  cancel(reason?: string): void;
  readonly state: 'queued' | 'running' | 'ended';
}

export interface SchedulerStats {
  /** Requests holding a slot. */
  active: number;
  /** Requests waiting for one. */
  queued: number;
  parallel: number;
  queueLimit: number;
}

export interface Scheduler {
  /** Admits a request, or throws a ServerError (IE_SERVER_QUEUE_FULL with retryAfter, IE_SERVER_SHUTTING_DOWN). */
  submit(request: GenerationRequest): Ticket;
  /** Embeddings (see Engine.embed), never at the same time as a step of a generation on the same sequence. */
  embed(inputs: EmbedInput, options?: EmbedOptions): Promise<Float32Array[]>;
  stats(): SchedulerStats;
  /** Refuses new requests and fails queued ones; running ones get `graceMs` to finish, then are cancelled. */
  close(graceMs: number): Promise<void>;
}

class Job implements Ticket {
  state: 'queued' | 'running' | 'ended' = 'queued';
  readonly controller = new AbortController();
  readonly submittedAt = performance.now();
  startedAt = 0;
  firstTokenAt = 0;
  /** Whether it still counts against `parallel`. */
  holdsSlot = false;
  readonly done: Promise<Outcome>;
  private resolve!: (o: Outcome) => void;
  private reject!: (e: unknown) => void;
  private readonly buffer: Delta[] = [];
  private error: unknown;
  private wake: (() => void) | undefined;
  private iterated = false;

  constructor(
    readonly request: GenerationRequest,
    private readonly onCancel: (job: Job, reason: string) => void,
  ) {
    this.done = new Promise<Outcome>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    // Callers that only iterate must not leave an unhandled rejection behind.
    this.done.catch(() => {});
  }

  token(): void {
    if (this.firstTokenAt === 0) this.firstTokenAt = performance.now();
  }

  push(delta: Delta): void {
    if (this.state === 'ended') return;
    this.buffer.push(delta);
    this.signal();
  }

  finish(result: { ok: true; outcome: Omit<Outcome, 'queuedMs' | 'ttftMs' | 'totalMs'> } | { ok: false; error: unknown }): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (result.ok) {
      const now = performance.now();
      this.resolve({
        ...result.outcome,
        queuedMs: (this.startedAt || now) - this.submittedAt,
        ttftMs: this.firstTokenAt ? this.firstTokenAt - this.submittedAt : Number.NaN,
        totalMs: now - this.submittedAt,
      });
    } else {
      this.error = result.error;
      this.reject(result.error);
    }
    this.signal();
  }

  cancel(reason = 'cancelled'): void {
    if (this.state !== 'ended') this.onCancel(this, reason);
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Delta> {
    if (this.iterated) throw new Error('a ticket can be iterated once');
    this.iterated = true;
    for (;;) {
      const d = this.buffer.shift();
      if (d) {
        yield d;
        continue;
      }
      if (this.state === 'ended') {
        if (this.error !== undefined) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

/** What requests run on: an Engine (one sequence at a time) or a BatchScheduler (all at once). */
export interface GenerationRunner {
  generate(prompt: readonly number[], options: GenerateOptions): Generation;
  chat(conversation: readonly ChatMessage[] | ChatPrompt, options: ChatOptions): Promise<ChatCompletion>;
  /** An Engine's: in its turn, like a generation. */
  embed?(inputs: EmbedInput, options?: EmbedOptions): Promise<Float32Array[]>;
}

export interface SerialSchedulerOptions {
  /** Requests admitted to run at once (they take turns on the engine). Default 1. */
  parallel?: number;
  /** Requests that may wait for a slot; beyond it submit() refuses with 429. Default 16. */
  queue?: number;
}

/**
 * Runs requests on one Engine. Up to `parallel` hold a slot; the engine decodes one sequence at a
 * time, so slots take turns in arrival order. A cancelled request frees its slot at once (the
 * engine drops the sequence at its next step, before the next request's turn).
 */
export class SerialScheduler implements Scheduler {
  readonly parallel: number;
  readonly queueLimit: number;
  private readonly waiting: Job[] = [];
  private active = 0;
  private closed = false;
  /** Runs still inside the engine, including cancelled ones whose slot was already freed. */
  private readonly inEngine = new Map<Job, Promise<void>>();

  constructor(
    private readonly engine: GenerationRunner,
    options: SerialSchedulerOptions = {},
  ) {
    this.parallel = options.parallel ?? 1;
    this.queueLimit = options.queue ?? 16;
    if (!Number.isSafeInteger(this.parallel) || this.parallel < 1) throw new RangeError(`parallel must be >= 1, got ${this.parallel}`);
    if (!Number.isSafeInteger(this.queueLimit) || this.queueLimit < 0) throw new RangeError(`queue must be >= 0, got ${this.queueLimit}`);
  }

  stats(): SchedulerStats {
    return { active: this.active, queued: this.waiting.length, parallel: this.parallel, queueLimit: this.queueLimit };
  }

  submit(request: GenerationRequest): Ticket {
    if (this.closed) throw new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5);
    if (this.active >= this.parallel && this.waiting.length >= this.queueLimit)
      throw new ServerError(
        'IE_SERVER_QUEUE_FULL',
        `the server is busy: ${this.active} request(s) running and ${this.waiting.length} waiting (the queue holds ${this.queueLimit}); retry later`,
        null,
        this.retryAfterSeconds(),
      );
    const job = new Job(request, (j, reason) => this.cancel(j, reason));
    this.waiting.push(job);
    this.pump();
    return job;
  }

  /**
   * Embeddings on the engine: Engine.embed waits for the engine's turn, so it runs between
   * generations, never inside one.
   */
  async embed(inputs: EmbedInput, options: EmbedOptions = {}): Promise<Float32Array[]> {
    const embed = this.engine.embed?.bind(this.engine);
    if (!embed) throw new ServerError('IE_SERVER_UNSUPPORTED', 'embeddings are not supported by this scheduler', 'input');
    return this.inEmbedLine(() => embed(inputs, options));
  }

  private embedsPending = 0;
  private embedTail: Promise<unknown> = Promise.resolve();

  /**
   * Embedding requests one at a time, in arrival order, with the generations' queue bound: one
   * running and up to `queue` waiting, more get 429 (as generations do).
   */
  protected inEmbedLine<T>(run: () => Promise<T>): Promise<T> {
    if (this.closed) throw new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5);
    if (this.embedsPending > this.queueLimit)
      throw new ServerError(
        'IE_SERVER_QUEUE_FULL',
        `the server is busy: ${this.embedsPending} embedding request(s) running or waiting (the queue holds ${this.queueLimit}); retry later`,
        null,
        this.retryAfterSeconds(),
      );
    this.embedsPending++;
    const result = this.embedTail.then(() => {
      if (this.closed) throw new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5);
      return run();
    });
    const done = result.finally(() => this.embedsPending--);
    this.embedTail = done.catch(() => {});
    return done;
  }

  /** Mean seconds a request held its slot, smoothed: how long a place takes to free up. */
  private meanServiceMs = 1000;

  /** Seconds until a place is likely free: the queue ahead, over the slots, at the mean service time. */
  retryAfterSeconds(): number {
    const ahead = this.waiting.length + this.active;
    return Math.min(60, Math.max(1, Math.ceil(((ahead / this.parallel) * this.meanServiceMs) / 1000)));
  }

  private pump(): void {
    while (!this.closed && this.active < this.parallel && this.waiting.length > 0) {
      const job = this.waiting.shift() as Job;
      this.active++;
      job.holdsSlot = true;
      job.state = 'running';
      job.startedAt = performance.now();
      this.inEngine.set(
        job,
        this.run(job).finally(() => this.inEngine.delete(job)),
      );
    }
  }

  private release(job: Job): void {
    if (!job.holdsSlot) return;
    job.holdsSlot = false;
    this.active--;
    const held = performance.now() - job.startedAt;
    this.meanServiceMs = 0.8 * this.meanServiceMs + 0.2 * held;
    this.pump();
  }

  private cancel(job: Job, reason: string): void {
    if (job.state === 'queued') {
      const at = this.waiting.indexOf(job);
      if (at >= 0) this.waiting.splice(at, 1);
    }
    job.controller.abort(new Error(reason));
    job.finish({ ok: false, error: new GenerationAbortedError(reason) });
    this.release(job);
  }

  private async run(job: Job): Promise<void> {
    const { request } = job;
    const signal = job.controller.signal;
    const options = { ...request.options, topK: request.options.topK ?? 0, minP: request.options.minP ?? 0, signal };
    try {
      if (request.kind === 'completion') {
        const g = this.engine.generate(request.prompt, options);
        // The prompt's scores are set once it has run: handed on before the first piece (or at the end, with none).
        let scored = false;
        const pushScores = () => {
          if (scored || !g.promptLogprobs) return;
          scored = true;
          job.push({ text: '', prompt: g.promptLogprobs });
        };
        for await (const p of g) {
          pushScores();
          job.token();
          const lp = logprobOf(p);
          if (p.text || lp.logprob) job.push({ text: p.text, ...lp });
        }
        pushScores();
        const m = g.metrics as GenerationMetrics;
        job.finish({
          ok: true,
          outcome: { stopReason: g.stopReason ?? 'length', promptTokens: m.promptTokens, completionTokens: m.generatedTokens, metrics: m },
        });
      } else {
        const r = await this.engine.chat(request.conversation, {
          ...options,
          onText: (text, channel, piece) => {
            job.token();
            const lp = logprobOf(piece);
            if (text || lp.logprob) job.push({ text, channel, ...lp });
          },
        });
        job.finish({
          ok: true,
          outcome: {
            stopReason: r.stopReason,
            ...(r.toolCalls.length ? { toolCalls: request.singleToolCall ? r.toolCalls.slice(0, 1) : r.toolCalls } : {}),
            promptTokens: r.metrics.promptTokens,
            completionTokens: r.metrics.generatedTokens,
            metrics: r.metrics,
          },
        });
      }
    } catch (e) {
      job.finish({ ok: false, error: e });
    } finally {
      this.release(job);
    }
  }

  async close(graceMs: number): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0))
      job.finish({ ok: false, error: new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5) });
    const all = Promise.allSettled([...this.inEngine.values()]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
    clearTimeout(timer);
    if (timedOut) {
      // Streams still running past the grace period are cut; their clients get an error event.
      for (const job of this.inEngine.keys()) job.cancel('the server is shutting down');
      await Promise.allSettled([...this.inEngine.values()]);
    }
  }
}

export interface BatchingSchedulerOptions extends SerialSchedulerOptions {
  /** Prompt tokens prefilled per step while other requests decode (BatchScheduler's prefillChunk). Default 64. */
  prefillChunk?: number;
}

/**
 * Continuous batching: up to `parallel` requests hold a KV slot of the model each and decode
 * together, one forward step for all of them (the model must be opened with at least `parallel`
 * sequences: `Engine.load(dir, { sequences })`); the rest wait in the bounded queue. A cancelled
 * request gives its slot back within one step and the next queued request takes it.
 */
export class BatchingScheduler extends SerialScheduler {
  private readonly batcher: BatchScheduler;

  constructor(model: Model, options: BatchingSchedulerOptions = {}) {
    const batcher = new BatchScheduler(model, { slots: options.parallel ?? 1, prefillChunk: options.prefillChunk });
    super(batcher, options);
    this.batcher = batcher;
  }

  /**
   * Embeddings run on a KV slot of the model that the batcher does not hold (their steps take turns
   * with the batcher's: the model runs one step at a time), one request at a time; the model needs
   * one more sequence than `parallel` for them.
   */
  override async embed(inputs: EmbedInput, options: EmbedOptions = {}): Promise<Float32Array[]> {
    const model = this.batcher.model;
    // In line, one at a time: the one slot beyond the batcher's is free whenever its turn comes.
    return this.inEmbedLine(async () => {
      if (model.freeSlots === 0)
        throw new ServerError(
          'IE_SERVER_UNSUPPORTED',
          `embeddings need a KV slot the batching scheduler does not hold: load the model with ${this.parallel + 1} sequences (parallel + 1)`,
          'input',
        );
      return model.embed(inputs, options);
    });
  }

  override async close(graceMs: number): Promise<void> {
    await super.close(graceMs);
    await this.batcher.close();
  }
}
