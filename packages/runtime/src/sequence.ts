/**
 * A sequence: one KV slot of a Model's arena, and the tokens whose keys and values it holds at
 * positions 0..length-1. `prefill(ids)` runs a prompt (in chunks of the model's maxBatch; with
 * `reusePrefix`, only what differs from what the slot holds), `step(token)` decodes one token;
 * after either, `logits` and `argmax` are the last token's (until the model's next step).
 */
import { ContextOverflowError, IeRuntimeError } from './errors.js';
import type { Forward, StepRows } from './forward.js';
import { pushAll, sharedLength } from './arrays.js';

/** What a sequence needs of its model (a Model; structural so that model.ts and this file do not import each other). */
export interface SequenceModel {
  readonly config: { readonly vocab_size: number };
  readonly forward: Forward;
  run<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T>;
  runScored<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T>;
  runHidden<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T>;
  copyPrefix(from: number, to: number, length: number): Promise<void>;
}

/** Takes a scored chunk's logits: `row(j)` (a view valid only inside the call) is position pos+j's, for j < count. */
export type PromptScorer = (row: (j: number) => Float32Array, count: number, pos: number) => void;

export interface SequenceOptions {
  /** Positions this sequence may use, at most the model's context length (its slot's size). Default: all. */
  contextLength?: number;
}

export class Sequence {
  private kv: number[] = [];
  /**
   * Positions 0..written-1 have been written to this slot since it was last emptied: a ring KV
   * cache may hold any of them (past `length` after a truncate, or rows copied from a sequence that
   * had run further), so whether a prefix is still whole is judged against this, not `length`.
   */
  private written = 0;
  private freed = false;
  /** The logits and argmax after this sequence's last run, copied out before the model's next step. */
  private readonly out: Float32Array;
  private best = -1;

  /** @internal */
  constructor(
    private readonly model: SequenceModel,
    /** The KV slot this sequence owns. */
    readonly slot: number,
    readonly contextLength: number,
    private readonly onFree: (slot: number) => void,
  ) {
    this.out = new Float32Array(model.config.vocab_size);
  }

  /** The tokens whose keys and values the cache holds (a copy). */
  get tokens(): number[] {
    return [...this.kv];
  }

  get length(): number {
    return this.kv.length;
  }

  /** The logits after this sequence's last prefill or step (a view: the next run overwrites it). */
  get logits(): Float32Array {
    return this.out;
  }

  /** The largest logit's index, after this sequence's last prefill or step. */
  get argmax(): number {
    return this.best;
  }

  /**
   * Runs `tokens` at the next positions, keeping the last one's logits; with `score`, every
   * position's logits go to it first (row j is position pos+j's).
   */
  private async run(tokens: readonly number[], score?: PromptScorer): Promise<void> {
    const f = this.model.forward;
    const pos = this.kv.length;
    const keep = (row: number) => {
      this.out.set(f.logitsRow(row));
      this.best = f.argmaxOf(row);
    };
    if (score)
      await this.model.runScored(this.slot, tokens, pos, () => {
        score((j) => f.logitsRow(j), tokens.length, pos);
        keep(tokens.length - 1);
      });
    else await this.model.run(this.slot, tokens, pos, () => keep(0));
    this.appended(tokens);
  }

  /** How many leading tokens of `ids` the cache already holds; at most ids.length - 1 (the last is always run: its logits start a generation). */
  commonPrefix(ids: readonly number[]): number {
    return this.keepable(Math.min(sharedLength(this.kv, ids), ids.length - 1));
  }

  /**
   * `n` if the first n positions can still be extended, else 0: a ring KV cache (sliding-window
   * layers) has overwritten what the window behind n needs once more than ringSlack are dropped.
   */
  private keepable(n: number): number {
    return Math.max(this.written, this.kv.length) - n > this.model.forward.ringSlack ? 0 : n;
  }

  /**
   * Forgets positions from `length` on (they are overwritten by what runs next); with a ring KV
   * cache, dropping more than `forward.ringSlack` positions forgets them all (`length` reads 0).
   */
  truncate(length: number): void {
    if (!Number.isSafeInteger(length) || length < 0)
      throw new IeRuntimeError('IE_INVALID_OPTION', `truncate: length must be >= 0, got ${length}`);
    if (length < this.kv.length) this.kv.length = this.keepable(length);
    if (this.kv.length === 0) this.written = 0;
  }

  /**
   * Runs `ids` as the sequence's content: keeps the common prefix with what the cache holds when
   * `reusePrefix`, else starts over; `between` runs after each chunk (an abort check); `score`
   * gets every position's logits (in chunks of the rows the logits buffer holds). Returns the
   * tokens kept from the cache.
   */
  async prefill(
    ids: readonly number[],
    options: { reusePrefix?: boolean; between?: () => void; score?: PromptScorer } = {},
  ): Promise<number> {
    this.alive();
    ContextOverflowError.check(ids.length, this.contextLength);
    // A scored prompt runs whole: every position's logits are wanted.
    const cached = options.reusePrefix && !options.score ? this.commonPrefix(ids) : 0;
    this.truncate(cached);
    const f = this.model.forward;
    const B = options.score ? Math.min(f.options.maxBatch, f.logitRows) : f.options.maxBatch;
    for (let p = cached; p < ids.length; p += B) {
      await this.run(ids.slice(p, p + B), options.score);
      options.between?.();
    }
    return cached;
  }

  /**
   * @internal Runs `ids` from position 0 (what the slot held is dropped), handing each chunk's
   * final hidden states (rows x dim, a view valid only inside the call) to `onRows`.
   */
  async prefillHidden(ids: readonly number[], onRows: (hidden: Float32Array, rows: number) => void): Promise<void> {
    this.alive();
    ContextOverflowError.check(ids.length, this.contextLength);
    this.truncate(0);
    const B = this.model.forward.options.maxBatch;
    const f = this.model.forward;
    for (let p = 0; p < ids.length; p += B) {
      const chunk = ids.slice(p, p + B);
      await this.model.runHidden(this.slot, chunk, p, () => onRows(f.hidden, chunk.length));
      this.appended(chunk);
    }
  }

  /**
   * Takes the keys and values of `source`'s first `length` positions, copied rather than
   * prefilled (a prompt shared by several sequences: n choices, one system prompt); what this
   * sequence held is dropped. Returns the positions taken: `length`, or 0 where `source` no
   * longer holds them all (a ring KV cache that has moved on more than ringSlack past them).
   */
  async copyFrom(source: Sequence, length: number): Promise<number> {
    this.alive();
    source.alive();
    if (source.model !== this.model) throw new IeRuntimeError('IE_INVALID_OPTION', 'copyFrom: the source is a sequence of another model');
    if (!Number.isSafeInteger(length) || length < 0 || length > source.length || length > this.contextLength)
      throw new IeRuntimeError(
        'IE_INVALID_OPTION',
        `copyFrom: length must be in 0..${Math.min(source.length, this.contextLength)}, got ${length}`,
      );
    if (source.keepable(length) !== length) return 0;
    const tokens = source.kv.slice(0, length);
    const written = Math.max(source.written, source.kv.length);
    await this.model.copyPrefix(source.slot, this.slot, length);
    this.kv = tokens;
    // The copied ring rows are the source's: as far along as it had run.
    this.written = written;
    return length;
  }

  /** Decodes one token at the next position. */
  async step(token: number): Promise<void> {
    this.alive();
    if (this.kv.length >= this.contextLength)
      throw new ContextOverflowError(
        `the sequence holds ${this.kv.length} tokens; its context holds ${this.contextLength}`,
        this.kv.length + 1,
        this.contextLength,
      );
    await this.run([token]);
  }

  /** @internal The rows of a batched step that append `tokens` (checked against the context). */
  rows(tokens: readonly number[], logits: StepRows['logits']): StepRows {
    this.alive();
    if (this.kv.length + tokens.length > this.contextLength)
      throw new ContextOverflowError(
        `the sequence holds ${this.kv.length} tokens; ${tokens.length} more do not fit its ${this.contextLength}-position context`,
        this.kv.length + tokens.length,
        this.contextLength,
      );
    return { slot: this.slot, pos: this.kv.length, tokens, logits };
  }

  /** @internal Records tokens a batched step ran for this sequence. */
  appended(tokens: readonly number[]): void {
    pushAll(this.kv, tokens);
    this.written = Math.max(this.written, this.kv.length);
  }

  /** Gives the slot back to the model (its contents are kept until another sequence overwrites them). */
  dispose(): void {
    if (this.freed) return;
    this.freed = true;
    this.onFree(this.slot);
  }

  private alive(): void {
    if (this.freed) throw new IeRuntimeError('IE_DISPOSED', `sequence ${this.slot} was disposed`);
  }
}
