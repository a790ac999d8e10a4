/**
 * What every importer produces: a model config, a tokenizer and a list of tensors under
 * their canonical names, each already in an IEBIN encoding (row-major) and read lazily.
 */
import type { ChatTemplateSpec } from './chat-template.js';
import type { Provenance } from './header.js';
import type { Dtype } from './layout.js';
import type { ModelConfig } from './llama.js';
import type { QuantParams, TokenizerInput } from './writer.js';

export interface SourceTensor {
  /** Canonical name (`blk.0.attn_q.weight`). */
  name: string;
  dtype: Dtype;
  shape: number[];
  quant: QuantParams | null;
  /** Row-major IEBIN bytes of this tensor. */
  read(): Promise<Uint8Array>;
}

export interface ModelSource {
  format: Provenance['source_format'];
  config: ModelConfig;
  tokenizer: TokenizerInput;
  /** Files the model was read from (hashed into the provenance when exported). */
  files: string[];
  /** In canonical order. */
  tensors: SourceTensor[];
  /** Facts about the import worth recording (e.g. a tensor that was dropped). */
  notes: string[];
  /** The model's own chat template and its special-token strings, when the source has one. */
  chat?: ChatTemplateSpec;
  /** For synthetic models: how to regenerate them. */
  synth?: { preset: string; seed: number };
  close(): Promise<void>;
}

/** A `read` that can also hand out the same bytes in order, in pieces (synthetic tensors stream in bounded memory). */
export type StreamingRead = (() => Promise<Uint8Array>) & { chunks(): AsyncIterable<Uint8Array> };

/**
 * A tensor read that streams: `chunks` yields the tensor's bytes in order; `read` joins them.
 * The stream rides on the read function itself, so a wrapper that replaces `read` (with
 * quantized bytes, say) drops it too and never pairs new bytes with an old stream.
 */
export function streamingRead(bytes: number, chunks: () => AsyncIterable<Uint8Array>): StreamingRead {
  const read = async () => {
    const out = new Uint8Array(bytes);
    let at = 0;
    for await (const c of chunks()) {
      if (at + c.length > bytes) throw new RangeError(`a tensor stream yielded more than its ${bytes} bytes`);
      out.set(c, at);
      at += c.length;
    }
    if (at !== bytes) throw new RangeError(`a tensor stream yielded ${at} of its ${bytes} bytes`);
    return out;
  };
  return Object.assign(read, { chunks });
}

/** A tensor's bytes in order: in pieces when its read streams ({@link streamingRead}), else whole. */
export async function* readChunks(t: Pick<SourceTensor, 'read'>): AsyncIterable<Uint8Array> {
  const r = t.read as Partial<StreamingRead>;
  if (typeof r.chunks === 'function') yield* r.chunks();
  else yield await t.read();
}

/** Whether `t`'s read streams. */
export function readStreams(t: Pick<SourceTensor, 'read'>): boolean {
  return typeof (t.read as Partial<StreamingRead>).chunks === 'function';
}

/** Takes exact byte counts from a stream of chunks of any sizes. */
export class ByteTaker {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Uint8Array = new Uint8Array(0);
  private at = 0;
  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }
  /** The next `n` bytes (a view into the chunk when one holds them all); throws if the stream ends first. */
  async take(n: number): Promise<Uint8Array> {
    if (this.buf.length - this.at >= n) {
      this.at += n;
      return this.buf.subarray(this.at - n, this.at);
    }
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.at === this.buf.length) {
        const r = await this.it.next();
        if (r.done) throw new RangeError(`a tensor stream ended ${n - got} bytes short`);
        this.buf = r.value;
        this.at = 0;
        continue;
      }
      const k = Math.min(n - got, this.buf.length - this.at);
      out.set(this.buf.subarray(this.at, this.at + k), got);
      got += k;
      this.at += k;
    }
    return out;
  }
}
