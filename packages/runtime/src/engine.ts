/**
 * Engine: the one-call API over a Model and one Sequence — `Engine.load(dir)`, then
 * `engine.generate(prompt)` streams pieces, `engine.chat(messages)` answers in the model's chat
 * format. One generation runs at a time per engine (it owns one KV slot); further calls wait
 * their turn, and a generation whose consumer stops pulling loses the engine to a waiter after
 * `idleTimeoutMs`. Many sequences at once: BatchScheduler over a Model (engine.model).
 */
import type { ModelConfig } from '@ie/format';
import type { ChatMessage } from './chat/harmony.js';
import { ChatSession, type ChatSessionOptions } from './chat/session.js';
import { ContextOverflowError, GenerationAbortedError, IeRuntimeError, InvalidOptionError } from './errors.js';
import type { Forward } from './forward.js';
import { embedPrepared, prepareEmbed, type EmbedInput, type EmbedOptions } from './embed.js';
import { Decoding } from './generation/decoding.js';
import { Generation } from './generation/generation.js';
import { prepareRequest, type PreparedRequest } from './generation/request.js';
import type { ChatCompletion, ChatOptions, ChatPrompt, Completion, GenerateOptions, Piece } from './generation/types.js';
import { Model, type EngineInfo, type ModelOptions } from './model.js';
import { resolveEngineOptions, type EngineOptions } from './options.js';
import type { WeightKind } from './precision.js';
import { perplexity, type PerplexityOptions, type PerplexityResult } from './perplexity.js';
import type { PromptScorer, Sequence } from './sequence.js';
import type { Tokenizer } from './tokenizer/index.js';

export { Generation } from './generation/generation.js';
export type {
  ChatCompletion,
  ChatOptions,
  ChatPrompt,
  Completion,
  GenerateOptions,
  Piece,
  PromptLogprob,
  StopReason,
  TokenLogprob,
} from './generation/types.js';
export { resolveActivations, type EngineInfo } from './model.js';

/** A hold on the engine: one generation or evaluation at a time. */
interface Turn {
  /** When the holder last handed a piece out and has not been pulled since; null while it works. */
  parkedSince: number | null;
  /** Set when a waiter took the engine from the idle holder. */
  preempted: boolean;
  release: () => void;
}

export class Engine {
  private queue: Promise<unknown> = Promise.resolve();
  /** The generation or evaluation holding the engine now. */
  private holder: Turn | undefined;
  private disposed = false;
  /** The engine's KV slot, taken at its first generation. */
  private seq: Sequence | undefined;
  /** @internal The model's forward pass (tests watch its runs). */
  private readonly forward: Forward;

  private constructor(
    /** The loaded model, shared: a BatchScheduler may run other sequences of it. */
    readonly model: Model,
    private readonly idleTimeoutMs: number,
  ) {
    this.forward = model.forward;
  }

  /** Opens a model directory (model.ie.json + model.ie.bin) and prepares it to generate. */
  static async load(path: string, options: EngineOptions & Pick<ModelOptions, 'sequences'> = {}): Promise<Engine> {
    const { idleTimeoutMs } = resolveEngineOptions(options);
    return new Engine(await Model.open(path, options), idleTimeoutMs);
  }

  get path(): string {
    return this.model.path;
  }
  get config(): ModelConfig {
    return this.model.config;
  }
  get tokenizer(): Tokenizer {
    return this.model.tokenizer;
  }
  /** Things the engine did that the user should know (a precision converted at load, ...). */
  get notices(): readonly string[] {
    return this.model.notices;
  }
  get precision(): WeightKind | 'mixed' {
    return this.model.precision;
  }
  get contextLength(): number {
    return this.model.contextLength;
  }

  info(): EngineInfo {
    this.alive();
    return this.model.info();
  }

  tokenize(text: string, options: { bos?: boolean } = {}): number[] {
    this.alive();
    return this.model.tokenize(text, options);
  }

  detokenize(ids: readonly number[]): string {
    this.alive();
    checkIds(ids, this.config.vocab_size, 'ids');
    return this.model.detokenize(ids);
  }

  /** Streams the continuation of `prompt` (text, or token ids used as given). */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    this.alive();
    const request = prepareRequest(prompt, options, this.tokenizer, this.config, this.contextLength);
    const engine = this;
    return new Generation(async function* (gen: Generation) {
      // One generation at a time: wait for the previous one, hold the engine until this one ends.
      const turn = await engine.takeTurn();
      try {
        yield* engine.run(gen, turn, request);
      } finally {
        turn.release();
      }
    });
  }

  /** Generates to the end and returns the whole text with its metrics. */
  async complete(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<Completion> {
    return this.generate(prompt, options).complete();
  }

  /**
   * A chat turn in the model's own format: harmony for gpt-oss (the answer from the final channel,
   * the reasoning from the analysis channel), the model's chat template for the others (the answer
   * streams to `onText` as `final`). A model with neither is IE_CHAT_NO_TEMPLATE: use generate()
   * with a prompt in the model's own format. The prompt's common prefix with what the KV cache
   * holds is not prefilled again (`reusePrefix`, default true here). `conversation` is the messages,
   * or the ChatPrompt chatPrompt() returned for them: run as it is, not rendered or encoded again.
   */
  async chat(conversation: readonly ChatMessage[] | ChatPrompt, options: ChatOptions = {}): Promise<ChatCompletion> {
    this.alive();
    return this.model.chatPrompter.complete((ids, o) => this.generate(ids, o), conversation, options);
  }

  /** The prompt chat() would run for `messages` (see Model.chatPrompt). */
  chatPrompt(messages: readonly ChatMessage[], options: ChatOptions = {}): ChatPrompt {
    this.alive();
    return this.model.chatPrompt(messages, options);
  }

  /**
   * A multi-turn conversation (node-llama-cpp's LlamaChatSession): `session.prompt(text)` adds the
   * user's message, answers it with chat() and keeps both in the history. Between turns only the
   * new tokens are prefilled: the previous prompt and answer are still in the KV cache (when
   * another generation ran on the engine in between, what it overwrote is prefilled again).
   */
  chatSession(options: ChatSessionOptions = {}): ChatSession {
    this.alive();
    return new ChatSession(this, options);
  }

  /** Logits after each token of `ids` (a fresh sequence; one decode step per position). */
  async evaluate(ids: readonly number[]): Promise<Float32Array[]> {
    this.alive();
    checkIds(ids, this.config.vocab_size, 'ids');
    ContextOverflowError.check(ids.length, this.contextLength);
    const out: Float32Array[] = [];
    const turn = await this.takeTurn();
    try {
      const seq = this.sequence();
      seq.truncate(0);
      for (const id of ids) {
        await seq.step(id);
        out.push(seq.logits.slice());
      }
    } finally {
      turn.release();
    }
    return out;
  }

  /**
   * @internal Runs `ids` from position 0 on the engine's sequence in its turn, handing every
   * position's logits to `score` chunk by chunk (`row(j)`: position pos + j's, a view valid only
   * inside the call). Perplexity reads whole distributions through it.
   */
  async scorePositions(ids: readonly number[], score: PromptScorer, signal?: AbortSignal): Promise<void> {
    this.alive();
    checkIds(ids, this.config.vocab_size, 'ids');
    ContextOverflowError.check(ids.length, this.contextLength);
    const turn = await this.takeTurn();
    try {
      const between = () => {
        this.alive();
        if (signal?.aborted) throw new GenerationAbortedError(signal.reason);
      };
      between();
      await this.sequence().prefill(ids, { score, between });
    } finally {
      turn.release();
    }
  }

  /**
   * The model's perplexity on `text` (a string, tokenized as the vocabulary does, BOS where it adds
   * one; or token ids), measured as llama.cpp's llama-perplexity does: chunks of `chunkSize`
   * (default 512) tokens, each starting at BOS where the vocabulary has one, the second half of
   * each scored (see perplexity.ts). Each chunk runs in its turn like a generation.
   */
  perplexity(text: string | readonly number[], options: PerplexityOptions = {}): Promise<PerplexityResult> {
    this.alive();
    return perplexity(this, text, options);
  }

  /**
   * Embeddings: the final hidden state (the final norm's output) of each input's tokens, pooled
   * (mean, last or first token) and L2-normalized unless `normalize: false`. Each input runs alone
   * on the engine's sequence from position 0, in its turn like a generation (the next generation
   * prefills its prompt again).
   */
  async embed(inputs: EmbedInput, options: EmbedOptions = {}): Promise<Float32Array[]> {
    this.alive();
    const prepared = prepareEmbed(this.model, inputs, options);
    const turn = await this.takeTurn();
    try {
      this.alive();
      return await embedPrepared(this.sequence(), prepared);
    } finally {
      turn.release();
    }
  }

  private sequence(): Sequence {
    this.seq ??= this.model.sequence();
    return this.seq;
  }

  /** Queues for the engine; the turn is held until released (or taken from an idle holder). */
  private async takeTurn(): Promise<Turn> {
    let resolve = () => {};
    const done = new Promise<void>((r) => (resolve = r));
    const turn: Turn = {
      parkedSince: null,
      preempted: false,
      release: () => {
        if (this.holder === turn) this.holder = undefined;
        resolve();
      },
    };
    const previous = this.queue;
    this.queue = previous.then(() => done);
    try {
      await this.waitFor(previous, this.idleTimeoutMs);
    } catch (e) {
      resolve();
      throw e;
    }
    this.holder = turn;
    return turn;
  }

  /**
   * Waits for `previous` to settle. A holder parked at a yield (its consumer not pulling) for
   * `idleMs` loses the engine: a dropped iterator never holds it for good.
   */
  private async waitFor(previous: Promise<unknown>, idleMs: number): Promise<void> {
    let settled = false;
    const watched = previous.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    while (!settled) {
      const h = this.holder;
      if (h && h.parkedSince !== null && performance.now() - h.parkedSince >= idleMs) {
        h.preempted = true;
        h.release();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([watched, new Promise<void>((r) => (timer = setTimeout(r, Math.max(1, Math.min(100, idleMs)))))]);
      clearTimeout(timer);
    }
  }

  /** The generation loop: prefill, then per token a decode step and a piece handed out. */
  private async *run(gen: Generation, turn: Turn, request: PreparedRequest): AsyncGenerator<Piece> {
    const signal = request.options.signal;
    const check = () => {
      this.alive();
      if (signal?.aborted) throw new GenerationAbortedError(signal.reason);
    };
    // Hands the piece out; while the consumer holds it, another caller may take an idle engine.
    const handOut = function* (piece: Piece): Generator<Piece> {
      turn.parkedSince = performance.now();
      yield piece;
      turn.parkedSince = null;
      check();
      if (turn.preempted)
        throw new GenerationAbortedError('the generation was not pulled while another call waited for the engine (idleTimeoutMs)');
    };
    const d = new Decoding(gen, request, this.tokenizer, this.config);
    check();
    const seq = this.sequence();
    try {
      d.cached = await seq.prefill(request.ids, {
        reusePrefix: request.reusePrefix,
        between: check,
        score: d.scoring ? (row, count, pos) => d.scorePrompt(row, count, pos) : undefined,
      });
      d.prefilled();
      while (!d.done) {
        // A step is timed from here to the piece: the consumer's time between pieces is not the engine's.
        const t = performance.now();
        if (d.generated > 0) {
          if (seq.length >= seq.contextLength) {
            d.end('context');
            break;
          }
          await seq.step(d.last);
          check();
        }
        for (const piece of d.accept(seq.logits, seq.argmax, t)) yield* handOut(piece);
      }
      for (const piece of d.flush()) yield* handOut(piece);
    } finally {
      d.finish(this.model.kvCacheBytesPerSequence, this.model.weightBytesPerToken);
    }
  }

  /** See Model.touchModel. */
  touchModel(bytes: number, stride: number): { ms: number; bytesRead: number } {
    this.alive();
    return this.model.touchModel(bytes, stride);
  }

  private alive(): void {
    if (this.disposed || this.model.isDisposed) throw new IeRuntimeError('IE_DISPOSED', 'the engine was disposed; load the model again');
  }

  /** Frees the pool, the weights and the map (after a generation in flight finishes). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // Waits for a running step, not for a consumer that stopped pulling (its next pull fails).
    await this.waitFor(this.queue, 0);
    await this.model.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Token ids as the engine takes them: an array of integers below the vocabulary size. */
function checkIds(ids: unknown, vocab: number, name: string): void {
  if (!Array.isArray(ids) && !ArrayBuffer.isView(ids))
    throw new InvalidOptionError(name, `must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`);
  for (const id of ids as ArrayLike<number> & Iterable<number>)
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocab) throw new InvalidOptionError(name, `token id ${id} is outside 0..${vocab - 1}`);
}
