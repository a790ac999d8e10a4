/**
 * Engine: loads an IEBIN model (read-only mmap, zero copy), binds its weights to the kernels,
 * compiles the forward pass once, and generates: prefill in chunks (GEMM), then one token per
 * decode step (GEMV), each step a single call that runs on a worker thread while the event
 * loop stays free. One generation runs at a time per engine; further calls wait their turn.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { IebinReader, isFloatDtype, type ModelConfig } from '@ie/format';
import { KernelContext, type ContextInfo, type MappedFile } from '@ie/kernels';
import {
  HARMONY_SPECIALS,
  HarmonyReader,
  renderHarmony,
  type ChatMessage,
  type HarmonyMessage,
  type HarmonyOptions,
  type HarmonySpecial,
} from './chat/harmony.js';
import { ChatSession, type ChatSessionOptions } from './chat/session.js';
import { ChatTemplate, encodeChatPrompt } from './chat/template.js';
import { ContextOverflowError, GenerationAbortedError, IeRuntimeError, InvalidOptionError } from './errors.js';
import { Forward, type MatmulActivations } from './forward.js';
import { percentile, peakRssBytes, type GenerationMetrics } from './metrics.js';
import {
  DEFAULT_CONTEXT_CAP,
  resolveEngineOptions,
  type ActivationsMode,
  type EngineOptions,
  type ResolvedEngineOptions,
} from './options.js';
import type { PrecisionMix, WeightKind } from './precision.js';
import { Sampler, logSumExp, resolveSampling, type SamplingOptions } from './sampler.js';
import { createTokenizer, type Tokenizer } from './tokenizer/index.js';
import { bindWeights, type ModelWeights } from './weights.js';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most. Default 256. */
  maxTokens?: number;
  /** Strings that end the generation (not included in the output). */
  stop?: string[];
  signal?: AbortSignal;
  /** Report each token's log-probability under the model (before temperature and filters). */
  logprobs?: boolean;
  /** Prepend BOS to a text prompt. Default true. */
  addBos?: boolean;
  /** Keep generating through end-of-sequence tokens, up to maxTokens (benchmarks; llama.cpp's --ignore-eos). Default false. */
  ignoreEos?: boolean;
  /** Token ids that end the generation besides the tokenizer's own (EOS): harmony's `<|return|>`, `<|call|>`. */
  stopTokens?: readonly number[];
  /**
   * Keep the keys and values of the prompt's longest common prefix with what the KV cache holds
   * (the previous generation's prompt and output) and prefill only the rest; `metrics.cachedTokens`
   * says how many were kept. The result is the same as without it. Default false for generate()
   * and complete() (one-shot calls and benchmarks prefill the whole prompt), true for chat() and
   * chat sessions.
   */
  reusePrefix?: boolean;
}

export interface ChatOptions extends GenerateOptions, HarmonyOptions {
  /** Streams the answer as it is decoded, with its channel (`final`, `analysis`, `commentary`; a chat template's answer is `final`). */
  onText?: (text: string, channel: string) => void;
  /** More variables for a chat template (a template's own switches, such as `enable_thinking`). */
  templateVariables?: Readonly<Record<string, unknown>>;
}

/** A conversation as the model reads it: the rendered text and its token ids. */
export interface ChatPrompt {
  /** `harmony` for gpt-oss, `template` for the model's own chat template. */
  format: 'harmony' | 'template';
  text: string;
  ids: number[];
  /** Tokens that end the assistant's turn, besides EOS and the model's stop ids. */
  stopTokens: number[];
}

export interface ChatCompletion {
  /** The answer (harmony's final channel; the whole answer with a chat template). */
  final: string;
  /** The model's reasoning (harmony's analysis channel; '' with a chat template). */
  analysis: string;
  messages: HarmonyMessage[];
  /** `return`: the turn ended (for a chat template: at EOS or an end-of-turn token); `call`: a tool call; undefined: stopped by length, stop string or context. */
  ended: 'return' | 'call' | undefined;
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerationMetrics;
}

export interface Piece {
  token: number;
  /** Text this token completes (may be "" while a UTF-8 character is incomplete). */
  text: string;
  logprob?: number;
}

export type StopReason = 'eos' | 'stop' | 'length' | 'context';

export interface Completion {
  text: string;
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerationMetrics;
}

export interface EngineInfo extends ContextInfo {
  /** The projections' precision as bound (`mixed` when they differ: see precisionMix). */
  precision: WeightKind | 'mixed';
  /** Projection matrices per precision, e.g. { int4w: 98, int8w: 56 }. */
  precisionMix: PrecisionMix;
  filePrecision: string;
  /** What the activations mode resolved to for this model and CPU (int8 applies to int8/int4 matrices). */
  activations: MatmulActivations;
  contextLength: number;
  kvCache: string;
  weightBytesPerToken: number;
  kvCacheBytes: number;
  hugePages: boolean;
  numaBind: { applied: boolean; detail: string };
}

/** An ongoing generation: iterate it for pieces; `metrics` and `stopReason` are set when it ends. */
/** A hold on the engine: one generation or evaluation at a time. */
interface Turn {
  /** When the holder last handed a piece out and has not been pulled since; null while it works. */
  parkedSince: number | null;
  /** Set when a waiter took the engine from the idle holder. */
  preempted: boolean;
  release: () => void;
}

export class Generation implements AsyncIterable<Piece> {
  metrics: GenerationMetrics | undefined;
  stopReason: StopReason | undefined;
  /** The token that ended it (EOS or one of `stopTokens`), when stopReason is 'eos'. */
  stopToken: number | undefined;
  text = '';
  readonly tokens: number[] = [];
  private started = false;

  /** @internal */
  constructor(private readonly body: (g: Generation) => AsyncGenerator<Piece>) {}

  [Symbol.asyncIterator](): AsyncIterator<Piece> {
    if (this.started) throw new InvalidOptionError('generate', 'a generation can be iterated once');
    this.started = true;
    return this.body(this);
  }
}

/**
 * The activations mode a model runs with. `auto` takes the int8 path when the model has int8,
 * int4 or block-type (q4_k, q5_k, q6_k, iq4_nl) matrices and the CPU has SIMD int8 kernels: there the FP32 path is compute-bound (a
 * conversion and an FMA per 8 weights, with x re-read from L1 for each) while integer dot
 * products (32 weights per instruction) keep up with memory. It is llama.cpp's arithmetic for
 * Q8_0, Q4_0 and the K-quants (activations quantized per 32 elements). Float matrices always run in FP32.
 */
export function resolveActivations(mode: ActivationsMode, weights: ModelWeights, int8Kernels: string): MatmulActivations {
  if (mode !== 'auto') return mode;
  // MXFP4 experts are not among them: their products take FP32 activations, as the model defines them.
  const quantized = [...weights.matrices.values()].some((m) => !isFloatDtype(m.spec.dtype));
  return quantized && int8Kernels !== 'scalar' ? 'int8' : 'f32';
}

export class Engine {
  private queue: Promise<unknown> = Promise.resolve();
  /** The model file, held open to notice an in-place truncation (checkFile). */
  private binFd = -1;
  /** The generation or evaluation holding the engine now. */
  private holder: Turn | undefined;
  private disposed = false;
  /** The tokens whose keys and values the KV cache holds, at positions 0..length-1 (what reusePrefix matches). */
  private kvTokens: number[] = [];
  /** The model's chat template, parsed at the first chat. */
  private template: ChatTemplate | undefined;

  private constructor(
    readonly path: string,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    private readonly ctx: KernelContext,
    private readonly reader: IebinReader,
    private readonly mapping: MappedFile,
    private readonly weights: ModelWeights,
    private readonly forward: Forward,
    private readonly opts: Omit<ResolvedEngineOptions, 'activations'> & { contextLength: number; activations: MatmulActivations },
    private readonly numa: { applied: boolean; detail: string },
    /** Things the engine did that the user should know (a precision converted at load, ...). */
    readonly notices: readonly string[],
  ) {}

  /** Opens a model directory (model.ie.json + model.ie.bin) and prepares it to generate. */
  static async load(path: string, options: EngineOptions = {}): Promise<Engine> {
    const opts = resolveEngineOptions(options);
    const reader = await IebinReader.open(path);
    const c = reader.config;
    let ctx: KernelContext | undefined;
    let mapping: MappedFile | undefined;
    try {
      ctx = KernelContext.create({ threads: opts.threads, affinity: opts.affinity, numa: opts.numa, isa: opts.isa });
      mapping = ctx.mapFile(reader.binPath as string, { advice: 'willneed', hugePages: true });
      const numa = ctx.numaBind(mapping);
      reader.attach(mapping);
      if (opts.verify) {
        // What ie validate --deep checks, before anything runs: a corrupt model must not generate garbage with exit 0.
        const report = await reader.verify();
        if (!report.ok) {
          const shown = report.problems
            .slice(0, 3)
            .map((p) => `${p.message} [${p.code}]`)
            .join('; ');
          throw new IeRuntimeError(
            'IE_MODEL_CORRUPT',
            `${reader.binPath}: fails verification (${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}): ${shown}${report.problems.length > 3 ? '; …' : ''}`,
          );
        }
      }
      const weights = bindWeights(ctx, reader, mapping, opts.precision);
      const tokenizer = await createTokenizer(reader.header, reader.directory);
      const notices = [...weights.notices];
      const contextLength = opts.contextLength ?? Math.min(c.context_length, DEFAULT_CONTEXT_CAP);
      if (opts.contextLength === undefined && c.context_length > DEFAULT_CONTEXT_CAP)
        notices.push(
          `the context is ${DEFAULT_CONTEXT_CAP} positions of the model's ${c.context_length} (the KV cache is sized to it); set contextLength (--context, IE_CONTEXT) for more`,
        );
      if (contextLength > c.context_length)
        notices.push(
          `context length ${contextLength} exceeds the ${c.context_length} positions the model was trained for; quality past that is not assured`,
        );
      const activations = resolveActivations(opts.activations, weights, ctx.info().int8Activations);
      const expertActivations = opts.activations === 'int8' ? 'int8' : 'f32';
      const forward = new Forward(ctx, c, weights, {
        contextLength,
        kvCache: opts.kvCache,
        maxBatch: Math.min(opts.maxBatch, contextLength),
        activations,
        expertActivations,
      });
      const engine = new Engine(
        path,
        c,
        tokenizer,
        ctx,
        reader,
        mapping,
        weights,
        forward,
        { ...opts, contextLength, activations },
        { applied: numa.applied, detail: numa.detail },
        notices,
      );
      engine.binFd = openSync(reader.binPath as string, 'r');
      return engine;
    } catch (e) {
      mapping?.close();
      ctx?.close();
      await reader.close();
      throw e;
    }
  }

  get precision(): WeightKind | 'mixed' {
    return this.weights.precision;
  }

  get contextLength(): number {
    return this.opts.contextLength;
  }

  info(): EngineInfo {
    this.alive();
    return {
      ...this.ctx.info(),
      precision: this.weights.precision,
      precisionMix: { ...this.weights.precisionMix },
      filePrecision: this.weights.filePrecision,
      activations: this.opts.activations,
      contextLength: this.opts.contextLength,
      kvCache: this.opts.kvCache,
      weightBytesPerToken: this.weights.bytesPerToken,
      kvCacheBytes: this.forward.kvCacheBytes,
      hugePages: this.mapping.hugePages,
      numaBind: this.numa,
    };
  }

  tokenize(text: string, options: { bos?: boolean } = {}): number[] {
    this.alive();
    return this.tokenizer.encode(text, options);
  }

  detokenize(ids: readonly number[]): string {
    this.alive();
    return this.tokenizer.decode(ids);
  }

  /** Streams the continuation of `prompt` (text, or token ids used as given). */
  generate(prompt: string | readonly number[], options: GenerateOptions = {}): Generation {
    this.alive();
    const sampling = resolveSampling(options);
    const maxTokens = options.maxTokens ?? 256;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 0)
      throw new InvalidOptionError('maxTokens', `must be a non-negative integer, got ${maxTokens}`);
    const stop = options.stop ?? [];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0))
      throw new InvalidOptionError('stop', 'must be an array of non-empty strings');
    const ids = typeof prompt === 'string' ? this.tokenizer.encode(prompt, { bos: options.addBos ?? true }) : [...prompt];
    if (ids.length === 0) throw new InvalidOptionError('prompt', 'is empty: give at least one token (BOS)');
    for (const id of ids)
      if (!Number.isSafeInteger(id) || id < 0 || id >= this.config.vocab_size)
        throw new InvalidOptionError('prompt', `token id ${id} is outside 0..${this.config.vocab_size - 1}`);
    if (ids.length > this.opts.contextLength)
      throw new ContextOverflowError(
        `the prompt is ${ids.length} tokens; the context holds ${this.opts.contextLength} (set contextLength, or shorten the prompt)`,
        ids.length,
        this.opts.contextLength,
      );
    const engine = this;
    return new Generation(async function* (gen: Generation) {
      // One generation at a time: wait for the previous one, hold the engine until this one ends.
      const turn = await engine.takeTurn();
      try {
        yield* engine.run(gen, turn, ids, maxTokens, stop, sampling, options);
      } finally {
        turn.release();
      }
    });
  }

  /** Generates to the end and returns the whole text with its metrics. */
  async complete(prompt: string | readonly number[], options: GenerateOptions = {}): Promise<Completion> {
    const g = this.generate(prompt, options);
    for await (const _ of g) {
      /* drain */
    }
    return { text: g.text, tokens: g.tokens, stopReason: g.stopReason as StopReason, metrics: g.metrics as GenerationMetrics };
  }

  /**
   * A chat turn in the model's own format: harmony for gpt-oss (the answer from the final channel,
   * the reasoning from the analysis channel), the model's chat template for the others (the answer
   * streams to `onText` as `final`). A model with neither is IE_CHAT_NO_TEMPLATE: use generate()
   * with a prompt in the model's own format. The prompt's common prefix with what the KV cache
   * holds is not prefilled again (`reusePrefix`, default true here).
   */
  async chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatCompletion> {
    this.alive();
    const prompt = this.chatPrompt(messages, options);
    const genOptions: GenerateOptions = {
      ...options,
      reusePrefix: options.reusePrefix ?? true,
      stopTokens: [...(options.stopTokens ?? []), ...prompt.stopTokens],
    };
    if (prompt.format === 'template') {
      const g = this.generate(prompt.ids, genOptions);
      for await (const p of g) if (p.text) options.onText?.(p.text, 'final');
      const stopReason = g.stopReason as StopReason;
      return {
        final: g.text,
        analysis: '',
        messages: [{ channel: 'final', content: g.text }],
        ended: stopReason === 'eos' ? 'return' : undefined,
        tokens: g.tokens,
        stopReason,
        metrics: g.metrics as GenerationMetrics,
      };
    }
    const ids = this.harmonyIds();
    const decoder = this.tokenizer.streamDecoder();
    const reader = new HarmonyReader(ids, (t) => decoder.push(t), options.onText);
    const g = this.generate(prompt.ids, genOptions);
    for await (const p of g) if (p.token >= 0) reader.push(p.token);
    if (g.stopToken !== undefined) reader.push(g.stopToken);
    return {
      final: reader.final,
      analysis: reader.analysis,
      messages: reader.messages,
      ended: reader.ended,
      tokens: g.tokens,
      stopReason: g.stopReason as StopReason,
      metrics: g.metrics as GenerationMetrics,
    };
  }

  /**
   * The prompt chat() would run for `messages`: harmony for gpt-oss, else the model's chat template
   * rendered (with `add_generation_prompt`, `bos_token`, `eos_token`) and tokenized with its special
   * tokens, BOS added only where the vocabulary adds one and the text does not start with it.
   */
  chatPrompt(messages: readonly ChatMessage[], options: ChatOptions = {}): ChatPrompt {
    this.alive();
    checkMessages(messages);
    if (this.config.architecture === 'gpt-oss') {
      const ids = this.harmonyIds();
      const text = renderHarmony(messages, options);
      return {
        format: 'harmony',
        text,
        ids: this.tokenizer.encode(text, { bos: false }),
        stopTokens: [ids['<|return|>'], ids['<|call|>']],
      };
    }
    const chat = this.reader.header.chat;
    if (!chat)
      throw new IeRuntimeError(
        'IE_CHAT_NO_TEMPLATE',
        `${this.path}: the model has no chat template (model.ie.json has no chat member), so chat() cannot write its conversation: pass a prompt written in the model's own format to generate() instead, or convert the model from a Hugging Face directory whose tokenizer_config.json has a chat_template (or a GGUF file with tokenizer.chat_template)`,
      );
    this.template ??= new ChatTemplate(chat.template, `${this.path}: the model's chat template`);
    const specials = this.specialPieces();
    const bosToken = chat.bos_token ?? this.pieceOf(this.config.bos_id);
    const eosToken = chat.eos_token ?? this.pieceOf(this.config.eos_id);
    const text = this.template.render(messages, {
      bosToken,
      eosToken,
      now: options.currentDate === undefined ? undefined : parseDate(options.currentDate),
      variables: options.templateVariables,
    });
    const ids = encodeChatPrompt(this.tokenizer, text, { bosToken, specials });
    // The template's end-of-turn text (Qwen2's <|im_end|>) ends the answer when it is one token.
    const eot = eosToken === undefined ? undefined : (specials.get(eosToken) ?? this.tokenizer.tokenId?.(eosToken));
    return { format: 'template', text, ids, stopTokens: eot === undefined ? [] : [eot] };
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

  /** The text of a piece of an embedded vocabulary (`<s>`), if it has one. */
  private pieceOf(id: number): string | undefined {
    const t = this.reader.header.tokenizer;
    return 'pieces' in t ? t.pieces[id] || undefined : undefined;
  }

  private specials: Map<string, number> | undefined;
  /** Special tokens by text for vocabularies whose tokenizer does not match them in text (SentencePiece, llama2.c): control and user-defined pieces, BOS, EOS. */
  private specialPieces(): Map<string, number> {
    if (this.specials) return this.specials;
    const m = new Map<string, number>();
    const t = this.reader.header.tokenizer;
    if ('types' in t)
      for (let i = 0; i < t.types.length; i++) if ((t.types[i] === 3 || t.types[i] === 4) && t.pieces[i]) m.set(t.pieces[i], i);
    const chat = this.reader.header.chat;
    for (const [piece, id] of [
      [chat?.bos_token ?? this.pieceOf(this.config.bos_id), this.config.bos_id],
      [chat?.eos_token ?? this.pieceOf(this.config.eos_id), this.config.eos_id],
    ] as const)
      if (piece && !m.has(piece)) m.set(piece, id);
    this.specials = m;
    return m;
  }

  private harmonyIds(): Record<HarmonySpecial, number> {
    if (this.config.architecture !== 'gpt-oss')
      throw new IeRuntimeError(
        'IE_CHAT_UNSUPPORTED',
        `chat() writes the harmony format of gpt-oss models; this is a ${this.config.architecture} model, whose chat template ie cannot render yet: use generate() with a prompt in the model's own format`,
      );
    const entries = HARMONY_SPECIALS.map((s) => [s, this.tokenizer.tokenId?.(s)] as const);
    const missing = entries.filter(([, id]) => id === undefined).map(([s]) => s);
    if (missing.length)
      throw new IeRuntimeError(
        'IE_CHAT_UNSUPPORTED',
        `the model's vocabulary lacks harmony's special tokens ${missing.join(' ')}: it cannot chat in the harmony format (use generate() with token ids or text)`,
      );
    return Object.fromEntries(entries) as Record<HarmonySpecial, number>;
  }

  /** Logits after each token of `ids` (a fresh sequence; one decode step per position). */
  async evaluate(ids: readonly number[]): Promise<Float32Array[]> {
    this.alive();
    if (ids.length > this.opts.contextLength)
      throw new ContextOverflowError(
        `${ids.length} tokens do not fit the ${this.opts.contextLength}-position context`,
        ids.length,
        this.opts.contextLength,
      );
    const out: Float32Array[] = [];
    const turn = await this.takeTurn();
    try {
      this.kvTokens = [];
      for (let i = 0; i < ids.length; i++) {
        this.checkFile();
        await this.forward.run([ids[i]], i);
        this.kvTokens.push(ids[i]);
        out.push(this.forward.logits.slice());
      }
    } finally {
      turn.release();
    }
    return out;
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
      await this.waitFor(previous, this.opts.idleTimeoutMs);
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

  private async *run(
    gen: Generation,
    turn: Turn,
    ids: number[],
    maxTokens: number,
    stop: string[],
    sampling: ReturnType<typeof resolveSampling>,
    options: GenerateOptions,
  ): AsyncGenerator<Piece> {
    const signal = options.signal;
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
    const f = this.forward;
    const T = this.opts.contextLength;
    const B = f.options.maxBatch;
    const sampler = new Sampler(sampling);
    const t0 = performance.now();
    check();
    // The prompt's common prefix with the cache is kept; its last token is always run (its logits start the generation).
    let cached = 0;
    if (options.reusePrefix) {
      const kv = this.kvTokens;
      const most = Math.min(kv.length, ids.length - 1);
      while (cached < most && kv[cached] === ids[cached]) cached++;
    }
    // Positions from `cached` on are overwritten below: until then they are no longer what the cache holds.
    this.kvTokens.length = cached;
    // Prefill, in chunks of at most maxBatch tokens.
    for (let p = cached; p < ids.length; p += B) {
      this.checkFile();
      const chunk = ids.slice(p, p + B);
      await f.run(chunk, p);
      this.kvTokens.push(...chunk);
      check();
    }
    const tPrefill = performance.now();
    const history = [...ids];
    const decoder = this.tokenizer.streamDecoder(ids[ids.length - 1]);
    const latencies: number[] = [];
    let decodeMs = 0;
    let pos = ids.length;
    let pending = '';
    let tFirst = 0;
    let reason: StopReason = 'length';
    const maxStop = stop.reduce((m, s) => Math.max(m, s.length), 0);
    try {
      for (let n = 0; n < maxTokens; n++) {
        // A step is timed from here to the yield: the consumer's time between pieces is not the engine's.
        const tStep = performance.now();
        if (n > 0) {
          // The last sampled token goes into the cache at position pos - 1.
          if (pos - 1 >= T) {
            reason = 'context';
            break;
          }
          this.checkFile();
          await f.run([history[history.length - 1]], pos - 1);
          this.kvTokens.push(history[history.length - 1]);
          check();
        }
        const logits = f.logits;
        const token = sampler.sample(logits, history, f.argmax);
        if (n === 0) tFirst = performance.now();
        if (
          !options.ignoreEos &&
          (this.tokenizer.stopTokens.has(token) || this.config.stop_ids?.includes(token) || options.stopTokens?.includes(token))
        ) {
          reason = 'eos';
          gen.stopToken = token;
          break;
        }
        history.push(token);
        gen.tokens.push(token);
        pos++;
        const piece: Piece = { token, text: '' };
        if (options.logprobs) piece.logprob = logits[token] - logSumExp(logits);
        pending += decoder.push(token);
        let stopped = false;
        if (stop.length) {
          const hay = gen.text.slice(-maxStop) + pending;
          const at = Math.min(...stop.map((s) => hay.indexOf(s)).filter((i) => i >= 0));
          if (Number.isFinite(at)) {
            piece.text = pending.slice(0, Math.max(0, at - (hay.length - pending.length)));
            pending = '';
            reason = 'stop';
            stopped = true;
          } else {
            // Hold back a tail that could still grow into a stop string.
            let hold = 0;
            for (const s of stop)
              for (let k = Math.min(s.length - 1, pending.length); k > hold; k--)
                if (s.startsWith(pending.slice(pending.length - k))) hold = k;
            piece.text = pending.slice(0, pending.length - hold);
            pending = pending.slice(pending.length - hold);
          }
        } else {
          piece.text = pending;
          pending = '';
        }
        gen.text += piece.text;
        if (n > 0) {
          const ms = performance.now() - tStep;
          latencies.push(ms);
          decodeMs += ms;
        }
        yield* handOut(piece);
        if (stopped) break;
      }
      if (reason !== 'stop') {
        const rest = pending + decoder.flush();
        if (rest) {
          gen.text += rest;
          yield* handOut({ token: -1, text: rest });
        }
      }
    } finally {
      gen.stopReason = reason;
      const generated = gen.tokens.length;
      const decodeTps = latencies.length > 0 && decodeMs > 0 ? latencies.length / (decodeMs / 1000) : 0;
      gen.metrics = {
        promptTokens: ids.length,
        cachedTokens: cached,
        generatedTokens: generated,
        ttftMs: tFirst ? tFirst - t0 : Number.NaN,
        prefillMs: tPrefill - t0,
        prefillTokensPerSec: (ids.length - cached) / ((tPrefill - t0) / 1000),
        decodeMs,
        decodeTokensPerSec: decodeTps,
        latencyP50Ms: percentile(latencies, 50),
        latencyP95Ms: percentile(latencies, 95),
        peakRssBytes: peakRssBytes(),
        kvCacheBytes: f.kvCacheBytes,
        weightBytesPerToken: this.weights.bytesPerToken,
        effectiveGBs: (this.weights.bytesPerToken * decodeTps) / 1e9,
      };
    }
  }

  private touchAt = 0;
  /**
   * The benchmark's work-touch (IE_BYTES_PER_TOKEN / IE_STRIDE_BYTES): reads `bytes` bytes of the
   * mapped model, one byte every `stride`, continuing where the previous touch stopped. Returns
   * the milliseconds it took and the bytes that moved from memory (whole cache lines), which
   * callers report apart from the model's own figures.
   */
  touchModel(bytes: number, stride: number): { ms: number; bytesRead: number } {
    this.alive();
    const r = this.ctx.touch(this.mapping, bytes, stride, this.touchAt);
    this.touchAt = r.next;
    return { ms: r.seconds * 1000, bytesRead: r.bytesRead };
  }

  /**
   * The weights are mapped, not copied: a model file truncated in place (what `cp new.bin
   * model.ie.bin` does first) would fault the next read of a mapped page (SIGBUS). One fstat per
   * step turns that into an error; a truncation racing a step can still fault (docs/security.md).
   * A file replaced by rename is harmless: the mapping keeps the old one.
   */
  private checkFile(): void {
    const size = fstatSync(this.binFd).size;
    if (size !== this.reader.header.bin.bytes) {
      throw new IeRuntimeError(
        'IE_MODEL_CHANGED',
        `${this.reader.binPath} is now ${size} bytes, not the ${this.reader.header.bin.bytes} it had when loaded: it was changed in place; load the model again (replace model files by renaming, as ie's exporters do)`,
      );
    }
  }

  private alive(): void {
    if (this.disposed) throw new IeRuntimeError('IE_DISPOSED', 'the engine was disposed; load the model again');
  }

  /** Frees the pool, the weights and the map (after a generation in flight finishes). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    // Waits for a running step, not for a consumer that stopped pulling (its next pull fails).
    await this.waitFor(this.queue, 0);
    // Release converted weights now rather than at garbage collection.
    for (const m of this.weights.matrices.values()) m.dispose();
    this.ctx.close();
    this.mapping.close();
    closeSync(this.binFd);
    await this.reader.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Messages come from callers (HTTP bodies): each must be a role and a string content. */
function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new InvalidOptionError('messages', 'must be a non-empty array of {role, content}');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new InvalidOptionError(`messages[${i}]`, 'must be an object {role, content}');
    if (typeof m.role !== 'string' || m.role.length === 0 || m.role.length > 64)
      throw new InvalidOptionError(`messages[${i}].role`, 'must be a non-empty string (system, user, assistant, ...)');
    if (typeof m.content !== 'string') throw new InvalidOptionError(`messages[${i}].content`, 'must be a string');
  });
}

/** `currentDate` (YYYY-MM-DD) as a local date for a template's strftime_now and date_string. */
function parseDate(s: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  const d = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : undefined;
  if (!d || d.getMonth() !== Number(m?.[2]) - 1)
    throw new InvalidOptionError('currentDate', `must be a date YYYY-MM-DD, got ${JSON.stringify(s)}`);
  return d;
}
