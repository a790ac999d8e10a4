/**
 * Continuous batching over one Model: up to `slots` sequences decode together, every active one
 * a row of ONE forward step (the matrices read once for all of them: GEMM with a row per
 * sequence; attention per sequence over its own KV slot). New requests are admitted between
 * steps and prefilled in chunks (`prefillChunk` prompt tokens per step while others decode), so
 * running streams keep flowing; each request keeps its own sampling, stop strings and maxTokens;
 * an aborted request (AbortSignal, or its consumer leaving) gives its slot back within one step.
 * A finished sequence's cache stays in its slot: a request extending it (a chat's next turn) is
 * admitted to that slot and prefills only what is new (`reusePrefix`).
 */
import type { ChatMessage } from '../chat/harmony.js';
import { GenerationAbortedError, IeRuntimeError, InvalidOptionError } from '../errors.js';
import type { StepRows } from '../forward.js';
import { Decoding } from '../generation/decoding.js';
import { Generation } from '../generation/generation.js';
import { prepareRequest, type PreparedRequest } from '../generation/request.js';
import type { ChatCompletion, ChatOptions, ChatPrompt, GenerateOptions, Piece } from '../generation/types.js';
import type { Model } from '../model.js';
import type { Sequence } from '../sequence.js';
import { sharedLength } from '../arrays.js';
import { Channel } from './channel.js';

export interface BatchSchedulerOptions {
  /** Sequences decoded together: KV slots taken from the model for the scheduler's life. Default: every free slot. */
  slots?: number;
  /** Prompt tokens prefilled per step while other sequences decode. Default 64. */
  prefillChunk?: number;
}

export interface BatchStats {
  /** Requests holding a slot (prefilling or decoding). */
  active: number;
  /** Requests waiting for a slot. */
  waiting: number;
  slots: number;
  /** Forward steps run so far, and the rows they carried. */
  steps: number;
  rows: number;
}

interface Job {
  request: PreparedRequest;
  decoding: Decoding;
  out: Channel<Piece>;
  seq?: Sequence;
  /** Prompt tokens still to prefill; empty once decoding. */
  pending: number[];
  /** Set when aborted; its slot is freed as soon as no step uses it. */
  cancelled?: unknown;
  inStep: boolean;
  unlisten: () => void;
  /**
   * Waiting for another request's prefill to reach the prompt prefix the two share (n choices of
   * one prompt, one system prompt): copied from its KV slot then, not prefilled again.
   */
  follow?: { job: Job; seq: Sequence; length: number };
}

/** The shortest shared prompt prefix worth waiting for and copying rather than prefilling. */
const MIN_SHARED_PREFIX = 16;

export class BatchScheduler {
  readonly slots: number;
  readonly prefillChunk: number;
  private readonly idle: Sequence[] = [];
  private readonly all: Sequence[] = [];
  private readonly waiting: Job[] = [];
  private readonly active: Job[] = [];
  private loop: Promise<void> | undefined;
  /** Whether run() is stepping (cleared in the same tick it stops, so an enqueue never misses it). */
  private looping = false;
  private closed = false;
  private steps = 0;
  private rows = 0;

  constructor(
    readonly model: Model,
    options: BatchSchedulerOptions = {},
  ) {
    this.slots = options.slots ?? model.freeSlots;
    this.prefillChunk = options.prefillChunk ?? 64;
    if (!Number.isSafeInteger(this.slots) || this.slots < 1 || this.slots > model.freeSlots)
      throw new InvalidOptionError(
        'slots',
        `must be an integer in 1..${model.freeSlots} (the model's free KV slots), got ${String(this.slots)}`,
      );
    if (!Number.isSafeInteger(this.prefillChunk) || this.prefillChunk < 1)
      throw new InvalidOptionError('prefillChunk', `must be a positive integer, got ${String(this.prefillChunk)}`);
    for (let i = 0; i < this.slots; i++) this.all.push(model.sequence());
    this.idle.push(...this.all);
  }

  stats(): BatchStats {
    return { active: this.active.length, waiting: this.waiting.length, slots: this.slots, steps: this.steps, rows: this.rows };
  }

  /** Streams the continuation of `prompt`, decoded alongside the other requests. It queues at its first pull. */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    if (this.closed) throw new IeRuntimeError('IE_DISPOSED', 'the scheduler was closed');
    const m = this.model;
    const request = prepareRequest(prompt, options, m.tokenizer, m.config, m.contextLength);
    const self = this;
    return new Generation(async function* (gen: Generation) {
      const job = self.enqueue(gen, request);
      try {
        yield* job.out;
      } finally {
        // The consumer left early (break, return): the request goes, and its slot with it.
        if (!job.out.isEnded) self.cancel(job, new GenerationAbortedError('the consumer stopped reading'));
      }
    });
  }

  /** A chat turn (see Engine.chat), decoded alongside the other requests. */
  async chat(conversation: readonly ChatMessage[] | ChatPrompt, options: ChatOptions = {}): Promise<ChatCompletion> {
    return this.model.chatPrompter.complete((ids, o) => this.generate(ids, o), conversation, options);
  }

  private enqueue(gen: Generation, request: PreparedRequest): Job {
    const m = this.model;
    const job: Job = {
      request,
      decoding: new Decoding(gen, request, m.tokenizer, m.config),
      out: new Channel<Piece>(),
      pending: [],
      inStep: false,
      unlisten: () => {},
    };
    const signal = request.options.signal;
    if (this.closed) job.out.fail(new IeRuntimeError('IE_DISPOSED', 'the scheduler was closed'));
    else if (signal?.aborted) job.out.fail(new GenerationAbortedError(signal.reason));
    else {
      if (signal) {
        const onAbort = () => this.cancel(job, new GenerationAbortedError(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
        job.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      this.waiting.push(job);
      if (!this.looping) {
        this.looping = true;
        // The first step waits for the event loop's turn to end, so that a burst of requests (a
        // client's parallel calls, the I/O of one poll) is prefilled in one step rather than the first
        // request alone and the others one step later.
        this.loop = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.run());
      }
    }
    return job;
  }

  /** Ends a request now: its consumer gets `error`; its slot is free at once, or after the step using it. */
  private cancel(job: Job, error: unknown): void {
    if (job.cancelled !== undefined) return;
    job.cancelled = error;
    job.out.fail(error);
    const w = this.waiting.indexOf(job);
    if (w >= 0) this.waiting.splice(w, 1);
    if (!job.inStep) this.release(job);
  }

  private release(job: Job): void {
    job.unlisten();
    const a = this.active.indexOf(job);
    if (a >= 0) this.active.splice(a, 1);
    if (job.seq) {
      this.idle.push(job.seq);
      job.seq = undefined;
      job.decoding.finish(this.model.kvCacheBytesPerSequence, this.model.weightBytesPerToken);
    }
  }

  /** Steps while anything is active or waiting. */
  private async run(): Promise<void> {
    try {
      while (!this.closed && (this.active.length > 0 || this.waiting.length > 0)) if (!(await this.once())) break;
    } finally {
      this.looping = false;
    }
  }

  /** One step: admit, plan, run, collect. False when there was nothing to run (the next request restarts the loop). */
  private async once(): Promise<boolean> {
    this.admit();
    await this.share();
    const plan = this.plan();
    if (plan.length === 0) return false;
    const t = performance.now();
    for (const [job] of plan) job.inStep = true;
    const done = () => {
      for (const [job] of plan) job.inStep = false;
      this.steps++;
      this.rows += plan.reduce((n, [, r]) => n + r.tokens.length, 0);
    };
    try {
      // Each request's token is taken from the step's logits before any other step may run.
      await this.model.step(
        plan.map(([, rows]) => rows),
        () => {
          done();
          this.collect(plan, t);
        },
      );
    } catch (e) {
      if (plan[0][0].inStep) done();
      for (const [job] of plan) this.cancel(job, e);
    }
    return true;
  }

  /** Waiting requests take idle slots: the one holding the longest common prefix when they reuse prefixes. */
  private admit(): void {
    while (this.waiting.length > 0 && this.idle.length > 0) {
      const job = this.waiting.shift() as Job;
      const ids = job.request.ids;
      let best = 0;
      if (job.request.reusePrefix)
        for (let i = 1; i < this.idle.length; i++) if (this.idle[i].commonPrefix(ids) > this.idle[best].commonPrefix(ids)) best = i;
      const seq = this.idle.splice(best, 1)[0];
      const cached = job.request.reusePrefix ? seq.commonPrefix(ids) : 0;
      seq.truncate(cached);
      job.seq = seq;
      job.decoding.cached = cached;
      job.pending = ids.slice(cached);
      if (job.request.reusePrefix) job.follow = this.leaderFor(job, cached);
      this.active.push(job);
    }
  }

  /**
   * The running request whose cache holds (now, or once its prefill gets there) the longest prefix
   * of `job`'s prompt, at least MIN_SHARED_PREFIX tokens beyond what `job`'s own slot kept; the
   * prompt's last token always runs (its logits start the generation).
   */
  private leaderFor(job: Job, cached: number): Job['follow'] {
    const ids = job.request.ids;
    let best: Job['follow'];
    for (const other of this.active) {
      if (!other.seq || other.cancelled !== undefined || other.follow) continue;
      // A scored prompt prefills a few logit rows a step: only what it already holds is worth taking.
      const ahead = other.decoding.scoring ? 0 : sharedLength(ids, other.request.ids);
      const length = Math.min(ids.length - 1, Math.max(other.seq.commonPrefix(ids), ahead));
      if (length >= cached + MIN_SHARED_PREFIX && length > (best?.length ?? 0)) best = { job: other, seq: other.seq, length };
    }
    return best;
  }

  /**
   * Followers whose leader's cache now holds what they share take it (Sequence.copyFrom); a leader
   * gone, or done prefilling short of it, ends the wait and the follower prefills the rest itself.
   */
  private async share(): Promise<void> {
    for (const job of [...this.active]) {
      const f = job.follow;
      if (!f || job.cancelled !== undefined) continue;
      // The leader's sequence, even once the leader is done: between steps its tokens describe its slot.
      const lead = f.seq;
      if (f.job.seq === lead && f.job.cancelled === undefined && lead.length < f.length && f.job.pending.length > 0) continue;
      job.follow = undefined;
      const seq = job.seq as Sequence;
      const n = Math.min(f.length, lead.commonPrefix(job.request.ids));
      if (n <= seq.length) continue;
      let got: number;
      try {
        got = await seq.copyFrom(lead, n);
      } catch (e) {
        // The model disposed or its file changed: this request fails, the others go on.
        this.cancel(job, e);
        continue;
      }
      if (got === 0 || job.cancelled !== undefined) continue;
      job.decoding.cached = got;
      job.pending = job.request.ids.slice(got);
    }
  }

  /**
   * This step's rows: one decode row per decoding sequence, then prompt chunks of the prefilling
   * ones (all of the step's rows when nothing decodes; else `prefillChunk`), oldest first. A scored
   * prompt's chunk wants a logit row per token: it takes what the logits buffer has left.
   */
  private plan(): Array<[Job, StepRows]> {
    const plan: Array<[Job, StepRows]> = [];
    for (const job of [...this.active]) {
      const seq = job.seq as Sequence;
      if (job.pending.length > 0 || job.decoding.done) continue;
      if (seq.length >= seq.contextLength) {
        job.decoding.end('context');
        this.complete(job);
        continue;
      }
      plan.push([job, seq.rows([job.decoding.last], true)]);
    }
    let budget = Math.min(plan.length > 0 ? this.prefillChunk : this.model.maxBatch, this.model.maxBatch - plan.length);
    let logitRows = this.model.forward.logitRows - plan.length;
    for (const job of this.active) {
      if (budget <= 0) break;
      if (job.pending.length === 0 || job.follow) continue;
      const scored = job.decoding.scoring;
      let n = Math.min(budget, job.pending.length, scored ? logitRows : Number.POSITIVE_INFINITY);
      // A prompt's last row wants a logit row; with none left, it runs next step.
      if (!scored && n === job.pending.length && logitRows === 0) n--;
      if (n <= 0) continue;
      const last = n === job.pending.length;
      plan.push([job, (job.seq as Sequence).rows(job.pending.slice(0, n), scored ? 'all' : last)]);
      budget -= n;
      logitRows -= scored ? n : last ? 1 : 0;
    }
    return plan;
  }

  /** After a step: record what each sequence ran, take each request's next token, end the finished. */
  private collect(plan: Array<[Job, StepRows]>, startedAt: number): void {
    const f = this.model.forward;
    let row = 0;
    for (const [job, rows] of plan) {
      // A scored chunk's rows are all logit rows; its last is the one that starts the generation.
      const first = row;
      row += rows.logits === 'all' ? rows.tokens.length : rows.logits ? 1 : 0;
      const pos = rows.pos;
      job.seq?.appended(rows.tokens);
      if (job.cancelled !== undefined) {
        this.release(job);
        continue;
      }
      const d = job.decoding;
      const decoding = job.pending.length === 0;
      if (!decoding) {
        job.pending = job.pending.slice(rows.tokens.length);
        if (rows.logits === 'all') d.scorePrompt((j) => f.logitsRow(first + j), rows.tokens.length, pos);
        // Not the prompt's last chunk: nothing to take yet.
        if (job.pending.length > 0) continue;
        d.prefilled();
      }
      const logitRow = row - 1;
      let pieces: Piece[];
      try {
        pieces = d.done ? [] : d.accept(f.logitsRow(logitRow), f.argmaxOf(logitRow), decoding ? startedAt : undefined);
      } catch (e) {
        // Choosing this request's token failed (a constraint at a dead end): it fails alone, the step's other requests go on.
        this.cancel(job, e);
        continue;
      }
      for (const piece of pieces) job.out.push(piece);
      if (d.done) this.complete(job);
    }
  }

  private complete(job: Job): void {
    for (const piece of job.decoding.flush()) job.out.push(piece);
    this.release(job);
    job.out.end();
  }

  /** Stops admitting, fails waiting and running requests, waits for the step in flight, gives the slots back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new IeRuntimeError('IE_DISPOSED', 'the scheduler was closed');
    for (const job of [...this.waiting, ...this.active]) this.cancel(job, error);
    await this.loop;
    for (const job of [...this.active]) this.release(job);
    for (const seq of this.all) seq.dispose();
  }
}
