/**
 * Model: an IEBIN model loaded once — the mapped file, the bound weights, the tokenizer, the
 * kernel context and the compiled forward pass over a KV arena of `sequences` slots — shared and
 * immutable. `model.sequence()` takes a slot; steps run one at a time (the program has one set of
 * buffers), each on a worker thread, and a step may carry rows of many sequences (`run`/`step`).
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { isFloatDtype, type IebinReader, type ModelConfig } from '@ie/format';
import type { ContextInfo } from '@ie/kernels';
import type { ChatMessage } from './chat/harmony.js';
import { ChatPrompter } from './chat/prompt.js';
import { embedPrepared, prepareEmbed, type EmbedInput, type EmbedOptions } from './embed.js';
import { IeRuntimeError, InvalidOptionError } from './errors.js';
import { Forward, type MatmulActivations, type StepRows } from './forward.js';
import type { ChatOptions, ChatPrompt } from './generation/types.js';
import { openMapped, type MappedModel } from './load.js';
import {
  DEFAULT_CONTEXT_CAP,
  checkOptionsObject,
  resolveEngineOptions,
  type ActivationsMode,
  type RecordsLayoutMode,
  type EngineOptions,
  type ResolvedEngineOptions,
} from './options.js';
import type { PrecisionMix, WeightKind } from './precision.js';
import { Sequence, type SequenceOptions } from './sequence.js';
import { createTokenizer, type Tokenizer } from './tokenizer/index.js';
import { bindWeights, interleaveRecords, type ModelWeights, reorderLongRows } from './weights.js';

export interface ModelOptions extends EngineOptions {
  /** KV slots: sequences that may hold a cache at once (each `contextLength` positions). Default 1. */
  sequences?: number;
}

export interface EngineInfo extends ContextInfo {
  /** The projections' precision as bound (`mixed` when they differ: see precisionMix). */
  precision: WeightKind | 'mixed';
  /** Projection matrices per precision, e.g. { int4w: 98, int8w: 56 }. */
  precisionMix: PrecisionMix;
  filePrecision: string;
  /** What the activations mode resolved to for this model and CPU (int8 applies to int8/int4 matrices). */
  activations: MatmulActivations;
  /** How many symmetric q4 matrices run in 16-row records (EngineOptions.q4Layout); 0: all as stored. */
  q4Rows16Matrices: number;
  /** How many IQ4_NL matrices run in 16-row records (EngineOptions.q4Layout); 0: all as stored. */
  iq4NlRows16Matrices: number;
  /** How many Q4_K matrices run in 16-row records (EngineOptions.q4Layout); 0: all as stored. */
  q4kRows16Matrices: number;
  /** How many Q5_K matrices run in 16-row records (EngineOptions.q4Layout); 0: all as stored. */
  q5kRows16Matrices: number;
  /** How many Q6_K matrices run in 16-row records (EngineOptions.q4Layout); 0: all as stored. */
  q6kRows16Matrices: number;
  /** How many i8 matrices run in 16-row records (EngineOptions.i8Layout); 0: all as stored. */
  i8Rows16Matrices: number;
  /** How many matrices were reordered into K-panels at load (EngineOptions.blockK); 0: all as stored. */
  blockedKMatrices: number;
  contextLength: number;
  kvCache: string;
  weightBytesPerToken: number;
  kvCacheBytes: number;
  hugePages: boolean;
  /** Whether the weights were copied into memory or are mapped from the file, and why (EngineOptions.weightMemory). */
  weightMemory: { mode: 'copy' | 'mmap'; detail: string };
  numaBind: { applied: boolean; detail: string };
}

interface ModelSettings {
  contextLength: number;
  kvCache: ResolvedEngineOptions['kvCache'];
  maxBatch: number;
  activations: MatmulActivations;
  expertActivations: MatmulActivations;
  sequences: number;
  q4Rows16: number;
  iq4NlRows16: number;
  q4kRows16: number;
  q5kRows16: number;
  q6kRows16: number;
  i8Rows16: number;
  blockedK: number;
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

/**
 * Whether `auto` reorders q4, IQ4_NL, Q4_K, Q5_K, Q6_K or i8 matrices into 16-row records (KernelContext.info().q4Rows16 /
 * iq4NlRows16 / q4kRows16 / q5kRows16 / q6kRows16 / i8Rows16): where the kernels are no slower for one sequence (q4 on
 * AVX-512 VNNI; q4, IQ4_NL and the K-quants on Zen 3), and where they are faster for several but not for one (q4 on the other AVX2
 * and AVX-VNNI cores, i8 on AVX-512 VNNI and AVX2) once the
 * model holds more than two sequences (ie serve --parallel 2 or more, which keeps one sequence
 * beside its parallel ones; a BatchScheduler of three slots or more).
 */
export function recordsPay(worth: 'always' | 'batched' | 'none', sequences: number): boolean {
  return worth === 'always' || (worth === 'batched' && sequences > 2);
}

export class Model {
  /** @internal The compiled forward pass (its params, logits and program). */
  readonly forward: Forward;
  readonly config: ModelConfig;
  private readonly free: number[];
  private readonly chat: ChatPrompter;
  /** The step running now (steps run one at a time). */
  private running: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private touchAt = 0;

  private constructor(
    readonly path: string,
    private readonly mapped: MappedModel,
    private readonly weights: ModelWeights,
    readonly tokenizer: Tokenizer,
    private readonly opts: ModelSettings,
    /** Things loading did that the user should know (a precision converted, the context capped, ...). */
    readonly notices: readonly string[],
    /** The model file, held open to notice an in-place truncation (checkFile). */
    private readonly binFd: number,
  ) {
    this.config = mapped.reader.config;
    this.forward = new Forward(mapped.ctx, this.config, weights, {
      contextLength: opts.contextLength,
      kvCache: opts.kvCache,
      maxBatch: Math.min(opts.maxBatch, opts.contextLength),
      activations: opts.activations,
      expertActivations: opts.expertActivations,
      slots: opts.sequences,
    });
    this.free = Array.from({ length: opts.sequences }, (_, i) => i);
    this.chat = new ChatPrompter(path, this.config, mapped.reader.header, tokenizer, opts.contextLength);
  }

  /** Opens a model directory (model.ie.json + model.ie.bin): maps, binds and compiles it once. */
  static async open(path: string, options: ModelOptions = {}): Promise<Model> {
    const opts = resolveEngineOptions(options);
    const sequences = options.sequences ?? 1;
    if (!Number.isSafeInteger(sequences) || sequences < 1 || sequences > 4096)
      throw new IeRuntimeError('IE_INVALID_OPTION', `sequences: must be an integer in 1..4096, got ${String(sequences)}`);
    if (options.onConvertProgress !== undefined && typeof options.onConvertProgress !== 'function')
      throw new InvalidOptionError('onConvertProgress', `must be a function, got ${typeof options.onConvertProgress}`);
    const mapped = await openMapped(path, {
      context: { threads: opts.threads, affinity: opts.affinity, numa: opts.numa, isa: opts.isa },
      hugePages: true,
      weightMemory: opts.weightMemory,
      verify: opts.verify,
      cacheDir: options.cacheDir,
      onConvertProgress: options.onConvertProgress,
    });
    let fd = -1;
    try {
      const { reader, ctx, mapping } = mapped;
      const c = reader.config;
      const weights = bindWeights(ctx, reader, mapping, opts.precision);
      const tokenizer = await createTokenizer(reader.header, reader.directory);
      const notices = [...mapped.notices, ...weights.notices];
      const contextLength = opts.contextLength ?? Math.min(c.context_length, DEFAULT_CONTEXT_CAP);
      if (opts.contextLength === undefined && c.context_length > DEFAULT_CONTEXT_CAP)
        notices.push(
          `the context is ${DEFAULT_CONTEXT_CAP} positions of the model's ${c.context_length} (the KV cache is sized to it); set contextLength (--context, IE_CONTEXT) for more`,
        );
      if (contextLength > c.context_length)
        notices.push(
          `context length ${contextLength} exceeds the ${c.context_length} positions the model was trained for; quality past that is not assured`,
        );
      const info = ctx.info();
      const activations = resolveActivations(opts.activations, weights, info.int8Activations);
      const records = (mode: RecordsLayoutMode, worth: 'always' | 'batched' | 'none') =>
        mode === 'rows16' || (mode === 'auto' && activations === 'int8' && recordsPay(worth, sequences));
      const q4Rows16 = records(opts.q4Layout, info.q4Rows16) ? interleaveRecords(weights, c, 'q4') : 0;
      const iq4NlRows16 = records(opts.q4Layout, info.iq4NlRows16) ? interleaveRecords(weights, c, 'iq4_nl') : 0;
      const q4kRows16 = records(opts.q4Layout, info.q4kRows16) ? interleaveRecords(weights, c, 'q4_k') : 0;
      const q5kRows16 = records(opts.q4Layout, info.q5kRows16) ? interleaveRecords(weights, c, 'q5_k') : 0;
      const q6kRows16 = records(opts.q4Layout, info.q6kRows16) ? interleaveRecords(weights, c, 'q6_k') : 0;
      const i8Rows16 = records(opts.i8Layout, info.i8Rows16) ? interleaveRecords(weights, c, 'i8') : 0;
      const blockedK = reorderLongRows(weights, c, opts.blockK, activations === 'int8' ? info.int8Activations : undefined);
      const settings: ModelSettings = {
        contextLength,
        kvCache: opts.kvCache,
        maxBatch: opts.maxBatch,
        activations,
        expertActivations: opts.activations === 'int8' ? 'int8' : 'f32',
        sequences,
        q4Rows16,
        iq4NlRows16,
        q4kRows16,
        q5kRows16,
        q6kRows16,
        i8Rows16,
        blockedK,
      };
      fd = openSync(reader.binPath as string, 'r');
      return new Model(path, mapped, weights, tokenizer, settings, notices, fd);
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      await mapped.close();
      throw e;
    }
  }

  get precision(): WeightKind | 'mixed' {
    return this.weights.precision;
  }

  /** Positions per KV slot. */
  get contextLength(): number {
    return this.opts.contextLength;
  }

  /** KV slots in all, and those no sequence holds. */
  get slots(): number {
    return this.opts.sequences;
  }

  get freeSlots(): number {
    return this.free.length;
  }

  /** Largest number of rows (tokens of all sequences) one step carries. */
  get maxBatch(): number {
    return this.forward.maxRows;
  }

  get weightBytesPerToken(): number {
    return this.weights.bytesPerToken;
  }

  /** Bytes of one slot's KV cache. */
  get kvCacheBytesPerSequence(): number {
    return this.forward.kvCacheBytes / this.opts.sequences;
  }

  info(): EngineInfo {
    this.alive();
    return {
      ...this.mapped.ctx.info(),
      precision: this.weights.precision,
      precisionMix: { ...this.weights.precisionMix },
      filePrecision: this.weights.filePrecision,
      activations: this.opts.activations,
      q4Rows16Matrices: this.opts.q4Rows16,
      iq4NlRows16Matrices: this.opts.iq4NlRows16,
      q4kRows16Matrices: this.opts.q4kRows16,
      q5kRows16Matrices: this.opts.q5kRows16,
      q6kRows16Matrices: this.opts.q6kRows16,
      i8Rows16Matrices: this.opts.i8Rows16,
      blockedKMatrices: this.opts.blockedK,
      contextLength: this.opts.contextLength,
      kvCache: this.opts.kvCache,
      weightBytesPerToken: this.weights.bytesPerToken,
      kvCacheBytes: this.forward.kvCacheBytes,
      hugePages: this.mapped.mapping.hugePages,
      weightMemory: { ...this.mapped.weightMemory },
      numaBind: this.mapped.numa,
    };
  }

  /** A sequence on a free KV slot (IE_NO_FREE_SLOT when every slot is held). */
  sequence(options: SequenceOptions = {}): Sequence {
    this.alive();
    checkOptionsObject(options);
    const n = options.contextLength ?? this.opts.contextLength;
    if (!Number.isSafeInteger(n) || n < 1 || n > this.opts.contextLength)
      throw new IeRuntimeError(
        'IE_INVALID_OPTION',
        `contextLength: must be an integer in 1..${this.opts.contextLength} (the model's slots), got ${String(n)}`,
      );
    const slot = this.free.shift();
    if (slot === undefined)
      throw new IeRuntimeError(
        'IE_NO_FREE_SLOT',
        `all ${this.opts.sequences} KV slot(s) are held; dispose a sequence, or open the model with more sequences`,
      );
    return new Sequence(this, slot, n, (s) => {
      if (!this.free.includes(s)) this.free.push(s);
    });
  }

  /** The prompt chat() runs for `messages` (harmony for gpt-oss, else the model's chat template). */
  chatPrompt(messages: readonly ChatMessage[], options: ChatOptions = {}): ChatPrompt {
    this.alive();
    return this.chat.prompt(messages, options);
  }

  /** @internal The chat driver (prompt and reading of the answer) for Engine and BatchScheduler. */
  get chatPrompter(): ChatPrompter {
    return this.chat;
  }

  /**
   * @internal Runs one sequence's tokens at positions pos.. of its slot, then `read` (logits row 0
   * is the last token's) before any other step may start.
   */
  run<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T> {
    return this.exclusive(() => this.forward.run(tokens, pos, slot), read);
  }

  /**
   * @internal Runs one sequence's tokens with every row's logits (a scored prompt chunk: logits
   * row j is token j's; at most forward.logitRows tokens), then `read` before any other step may start.
   */
  runScored<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T> {
    return this.exclusive(() => this.forward.step([{ slot, pos, tokens, logits: 'all' }]), read);
  }

  /**
   * @internal Runs one sequence's tokens with every row's final hidden state kept, then `read`
   * (forward.hidden's first tokens.length rows) before any other step may start.
   */
  runHidden<T>(slot: number, tokens: readonly number[], pos: number, read: () => T): Promise<T> {
    return this.exclusive(() => this.forward.step([{ slot, pos, tokens, logits: false }], { hidden: true }), read);
  }

  /**
   * The final hidden state of each input, pooled (see embed.ts). Each runs on a free KV slot of
   * its own, taken for the call (IE_NO_FREE_SLOT when every slot is held).
   */
  async embed(inputs: EmbedInput, options: EmbedOptions = {}): Promise<Float32Array[]> {
    this.alive();
    const prepared = prepareEmbed(this, inputs, options);
    const seq = this.sequence();
    try {
      return await embedPrepared(seq, prepared);
    } finally {
      seq.dispose();
    }
  }

  /** @internal Copies slot `from`'s keys and values of positions 0..length-1 into slot `to`, in turn with the steps. */
  copyPrefix(from: number, to: number, length: number): Promise<void> {
    return this.exclusive(async () => this.forward.copyPrefix(from, to, length));
  }

  /** @internal Runs one step over rows of several sequences, then `read` (logits row j: the j-th entry wanting logits). */
  step<T = void>(entries: readonly StepRows[], read?: () => T): Promise<T> {
    return this.exclusive(() => this.forward.step(entries), read);
  }

  /** One step at a time: the program has one set of buffers, read before the next step writes them. */
  private exclusive<T>(f: () => Promise<void>, read?: () => T): Promise<T> {
    const run = this.running.then(async () => {
      this.alive();
      this.checkFile();
      await f();
      return read?.() as T;
    });
    this.running = run.catch(() => undefined);
    return run;
  }

  tokenize(text: string, options: { bos?: boolean } = {}): number[] {
    this.alive();
    return this.tokenizer.encode(text, options);
  }

  detokenize(ids: readonly number[]): string {
    this.alive();
    return this.tokenizer.decode(ids);
  }

  /**
   * The benchmark's work-touch (IE_BYTES_PER_TOKEN / IE_STRIDE_BYTES): reads `bytes` bytes of the
   * mapped model, one byte every `stride`, continuing where the previous touch stopped. Returns
   * the milliseconds it took and the bytes that moved from memory (whole cache lines), which
   * callers report apart from the model's own figures.
   */
  touchModel(bytes: number, stride: number): { ms: number; bytesRead: number } {
    this.alive();
    // It reads the mapped file as a step does: a file truncated in place is an error, not a SIGBUS.
    this.checkFile();
    const r = this.mapped.ctx.touch(this.mapped.mapping, bytes, stride, this.touchAt);
    this.touchAt = r.next;
    return { ms: r.seconds * 1000, bytesRead: r.bytesRead };
  }

  /**
   * The weights are mapped, not copied: a model file truncated in place (what `cp new.bin
   * model.ie.bin` does first) would fault the next read of a mapped page (SIGBUS). One fstat per
   * step turns that into an error; a truncation racing a step can still fault (docs/security.md).
   * A file replaced by rename is harmless: the mapping keeps the old one.
   */
  checkFile(): void {
    const size = fstatSync(this.binFd).size;
    const reader: IebinReader = this.mapped.reader;
    if (size !== reader.header.bin.bytes) {
      throw new IeRuntimeError(
        'IE_MODEL_CHANGED',
        `${reader.binPath} is now ${size} bytes, not the ${reader.header.bin.bytes} it had when loaded: it was changed in place; load the model again (replace model files by renaming, as ie's exporters do)`,
      );
    }
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private alive(): void {
    if (this.disposed) throw new IeRuntimeError('IE_DISPOSED', 'the model was disposed; load it again');
  }

  /** Frees the pool, the weights and the map, after the step in flight. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.running;
    // Release converted weights now rather than at garbage collection.
    for (const m of this.weights.matrices.values()) m.dispose();
    closeSync(this.binFd);
    await this.mapped.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}
