/**
 * One request's decoding, step by step, whoever runs the forward passes (Engine.generate on its
 * one sequence, BatchScheduler on many in one step): from the logits after the last step, sample
 * the next token, end at EOS / a stop token / a stop string / maxTokens, stream its text. A
 * constrained request (jsonSchema, grammar, json) samples from logits its constraint masked and
 * ends when the constraint is done.
 */
import type { ModelConfig } from '@ie/format';
import { Sampler, logSumExp, topIndices } from '../sampler.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { StepClock } from './clock.js';
import type { Generation } from './generation.js';
import type { PreparedRequest } from './request.js';
import { TextStream } from './text.js';
import type { Piece, PromptLogprob, StopReason, TokenLogprob } from './types.js';

export class Decoding {
  reason: StopReason = 'length';
  done: boolean;
  readonly clock = new StepClock();
  /** Prompt tokens whose keys and values were already in the cache. */
  cached = 0;
  private readonly sampler: Sampler;
  private readonly history: number[];
  private readonly stream: TextStream;
  private readonly isStop: (token: number) => boolean;
  /** The masked copy of a step's logits (constrained requests): the caller's logits stay as the model gave them. */
  private masked: Float32Array | null = null;
  /** With promptLogprobs: the prompt's scores so far (its first token's, null, first). */
  private readonly scores: PromptLogprob[] | null;
  /**
   * Pieces whose text the stream still holds (it could begin a stop string), with the characters
   * of theirs not yet out; `out` is text released but not yet given to them. A piece leaves with
   * its whole text, so one whose tokens make a stop string never leaves (nor its logprob).
   */
  private readonly held: Array<{ piece: Piece; left: number }> = [];
  private out = '';

  constructor(
    readonly gen: Generation,
    readonly request: PreparedRequest,
    tokenizer: Tokenizer,
    config: ModelConfig,
  ) {
    const o = request.options;
    this.sampler = new Sampler(request.sampling);
    this.history = [...request.ids];
    this.stream = new TextStream(tokenizer.streamDecoder(request.ids[request.ids.length - 1]), request.stop);
    this.isStop = (t) => !o.ignoreEos && (tokenizer.stopTokens.has(t) || !!config.stop_ids?.includes(t) || !!o.stopTokens?.includes(t));
    this.done = request.maxTokens === 0;
    this.scores = o.promptLogprobs ? [{ token: request.ids[0], logprob: null }] : null;
  }

  /** Whether the prompt is scored: its chunks run with every row's logits (StepRows `logits: 'all'`). */
  get scoring(): boolean {
    return this.scores !== null;
  }

  /**
   * Scores prompt positions pos..pos+count-1 from their logit rows: `row(j)` is position pos+j's,
   * which predicts the prompt's token pos+j+1 (the last position's predicts the first generated one).
   */
  scorePrompt(row: (j: number) => Float32Array, count: number, pos: number): void {
    const s = this.scores;
    if (!s) return;
    const ids = this.request.ids;
    const top = this.request.options.topLogprobs ?? 0;
    for (let j = 0; j < count && pos + j + 1 < ids.length; j++) {
      const token = ids[pos + j + 1];
      s.push({ token, ...logprobOf(row(j), token, top) });
    }
  }

  /** The prompt has run: the clock's prefill ends, and the prompt's scores are the generation's. */
  prefilled(): void {
    this.clock.prefilled();
    if (this.scores) this.gen.promptLogprobs = this.scores;
  }

  /** Tokens generated so far. */
  get generated(): number {
    return this.gen.tokens.length;
  }

  /** The token the next step feeds (the last sampled one). */
  get last(): number {
    return this.history[this.history.length - 1];
  }

  /**
   * Takes the next token from the logits after the last step (`argmax` is the kernels' for greedy
   * decoding); returns the pieces whose text is now out (its own, and earlier ones the stream held
   * back while they could begin a stop string; none while it holds this one), empty when the
   * generation ended on it (EOS, a stop token). `stepStartedAt` times the decode step (from before
   * its forward pass).
   */
  accept(logits: Float32Array, argmax: number, stepStartedAt?: number): Piece[] {
    const first = this.generated === 0;
    const c = this.request.constraint;
    let token: number;
    if (c) {
      // Sample from a masked copy; the kernels' argmax predates the mask, so greedy is recomputed.
      let x = this.masked;
      if (x === null || x.length !== logits.length) x = this.masked = new Float32Array(logits.length);
      x.set(logits);
      c.mask(x);
      token = this.sampler.sample(x, this.history);
      // The sampler's last-candidate fallback (float rounding) may land on a zero-probability,
      // masked token; the best allowed one stands in for it.
      if (x[token] === Number.NEGATIVE_INFINITY) token = bestOf(x);
    } else token = this.sampler.sample(logits, this.history, argmax);
    this.clock.firstToken();
    if (this.isStop(token)) {
      this.gen.stopToken = token;
      this.end('eos');
      return [];
    }
    c?.accept(token);
    this.history.push(token);
    this.gen.tokens.push(token);
    const piece: Piece = { token, text: '' };
    // Under the model, before the mask: what the unconstrained model thought of the token.
    if (this.request.options.logprobs) Object.assign(piece, logprobOf(logits, token, this.request.options.topLogprobs ?? 0));
    const { text, stopped, decoded } = this.stream.push(token);
    this.gen.text += text;
    this.held.push({ piece, left: decoded });
    const pieces = this.release(text, stopped);
    if (stopped) this.end('stop');
    // Complete and nothing may follow (a schema's closing brace): no EOS step needed.
    else if (c?.done()) this.end('eos');
    else if (this.generated >= this.request.maxTokens) this.done = true;
    if (!first && stepStartedAt !== undefined) this.clock.step(performance.now() - stepStartedAt);
    return pieces;
  }

  /**
   * Gives released `text` to the held pieces in order; each whole one leaves. At a stop string
   * (`stopped`), the piece the stop begins inside leaves with its text before it, and the pieces
   * that make up the stop string are dropped.
   */
  private release(text: string, stopped: boolean): Piece[] {
    this.out += text;
    // Up to the last piece with text that is all out; pieces without text (a character's first
    // bytes, a special token) leave with the text after them, for they may begin a stop string.
    let last = -1;
    for (let i = 0, need = 0; i < this.held.length; i++) {
      need += this.held[i].left;
      if (need > this.out.length) break;
      if (this.held[i].left > 0) last = i;
    }
    const done = this.held.splice(0, last + 1).map(({ piece, left }) => {
      piece.text = this.out.slice(0, left);
      this.out = this.out.slice(left);
      return piece;
    });
    if (stopped) {
      // Text before the stop string is left: the piece it belongs to (and those before it) leave with it.
      const upto = this.out ? this.held.findIndex((h) => h.left > 0) : -1;
      if (upto >= 0) {
        const straddling = this.held.splice(0, upto + 1).map(({ piece }) => Object.assign(piece, { text: '' }));
        straddling[upto].text = this.out;
        done.push(...straddling);
      }
      this.held.length = 0;
      this.out = '';
    }
    return done;
  }

  end(reason: StopReason): void {
    this.reason = reason;
    this.done = true;
  }

  /**
   * At the end of a generation not ended by a stop string: the held pieces with the text the stream
   * still held, and what is left beyond them (the decoder's incomplete character) as a last piece
   * (token -1).
   */
  flush(): Piece[] {
    if (this.reason === 'stop') return [];
    const rest = this.stream.flush();
    this.gen.text += rest;
    const pieces = this.release(rest, false);
    // All text is out: a piece still held (none, unless the decoder's counts disagree) leaves too.
    for (const { piece } of this.held.splice(0)) {
      piece.text = this.out;
      this.out = '';
      pieces.push(piece);
    }
    if (this.out) pieces.push({ token: -1, text: this.out });
    this.out = '';
    return pieces;
  }

  /** Sets the generation's stop reason and metrics. */
  finish(kvCacheBytes: number, weightBytesPerToken: number): void {
    this.gen.stopReason = this.reason;
    this.gen.metrics = this.clock.metrics({
      promptTokens: this.request.ids.length,
      cachedTokens: this.cached,
      generatedTokens: this.generated,
      kvCacheBytes,
      weightBytesPerToken,
    });
  }
}

/** `token`'s log-probability under `logits`, and the `top` likeliest tokens' (none when top is 0). */
function logprobOf(logits: Float32Array, token: number, top: number): { logprob: number; topLogprobs?: TokenLogprob[] } {
  const lse = logSumExp(logits);
  const logprob = logits[token] - lse;
  return top > 0 ? { logprob, topLogprobs: topIndices(logits, top).map((t) => ({ token: t, logprob: logits[t] - lse })) } : { logprob };
}

/** The index of the largest value (the first of ties). */
function bestOf(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
