/**
 * IebinWriter: streams tensors into model.ie.bin one at a time (memory stays bounded by
 * what the caller hands it), computes each tensor's CRC-32 on the way, and commits with
 * fsync + rename: model.ie.bin and model.ie.json are written under hidden `.partial`
 * names and renamed into place only when everything is written and the header validates.
 * A failed or interrupted export leaves an existing model untouched.
 */
import { crc32 } from 'node:zlib';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { unlinkSync, createReadStream } from 'node:fs';
import { join } from 'node:path';
import { IebinError } from './errors.js';
import { validateIebinHeader, type IebinHeader, type Provenance, type TensorEntry, type TokenizerSpec } from './header.js';
import { IEBIN_ALIGNMENT, IEBIN_BIN_FILE, IEBIN_JSON_FILE, ROW_MAJOR, alignUp, quantGeometry, tensorByteSize, matrixDims, type Dtype, type QuantSpec, type TensorLayout } from './layout.js';
import type { ModelConfig } from './llama.js';

export type QuantParams = Pick<QuantSpec, 'scheme' | 'granularity' | 'group_size' | 'scale_dtype'>;

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
  layout?: TensorLayout;
  quant?: QuantParams | null;
}

/** The tokenizer to store: an embedded spec, or a Hugging Face tokenizer.json to copy beside the model. */
export type TokenizerInput = Exclude<TokenizerSpec, { model: 'hf' }> | { model: 'hf'; source: string };

export interface IebinWriterOptions {
  config: ModelConfig;
  tokenizer: TokenizerInput;
  provenance: Provenance;
  quantization?: Record<string, unknown> | null;
}

export type TensorData = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

const HF_TOKENIZER_FILE = 'tokenizer.json';
const ZEROS = new Uint8Array(IEBIN_ALIGNMENT);
let partialCounter = 0;

function partialName(final: string): string {
  return `.${final}.partial-${process.pid}-${partialCounter++}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `.partial` files left in `dir` by writers whose process no longer exists (e.g. killed with SIGKILL). */
export async function removeStalePartials(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^\.(?:model\.ie\.(?:json|bin)|tokenizer\.json)\.partial-(\d+)-\d+$/.exec(n);
    if (m && !pidAlive(Number(m[1]))) {
      await unlink(join(dir, n)).catch(() => undefined);
      removed.push(n);
    }
  }
  return removed;
}

export class IebinWriter {
  private readonly tensors: TensorEntry[] = [];
  private position = 0;
  private state: 'open' | 'finished' | 'aborted' = 'open';
  private readonly partials: string[] = [];

  private constructor(
    readonly outDir: string,
    private readonly options: IebinWriterOptions,
    private readonly bin: FileHandle,
    private readonly binPartial: string,
    private readonly tokenizer: TokenizerSpec,
    private readonly tokenizerPartial: string | null,
  ) {
    this.partials.push(binPartial);
    if (tokenizerPartial) this.partials.push(tokenizerPartial);
  }

  static async create(outDir: string, options: IebinWriterOptions): Promise<IebinWriter> {
    await mkdir(outDir, { recursive: true });
    await removeStalePartials(outDir);
    let tokenizer: TokenizerSpec;
    let tokPartial: string | null = null;
    if (options.tokenizer.model === 'hf') {
      tokPartial = join(outDir, partialName(HF_TOKENIZER_FILE));
      const copied = await copyHashed(options.tokenizer.source, tokPartial);
      tokenizer = { model: 'hf', file: HF_TOKENIZER_FILE, bytes: copied.bytes, sha256: copied.sha256 };
    } else {
      tokenizer = options.tokenizer;
    }
    const binPartial = join(outDir, partialName(IEBIN_BIN_FILE));
    const fh = await open(binPartial, 'wx');
    return new IebinWriter(outDir, options, fh, binPartial, tokenizer, tokPartial);
  }

  get writtenTensors(): readonly TensorEntry[] {
    return this.tensors;
  }

  /** Appends one tensor. `data` is its stored bytes (layout applied), whole or in chunks. */
  async addTensor(spec: TensorSpec, data: TensorData): Promise<TensorEntry> {
    if (this.state !== 'open') throw new IebinError('IEBIN_WRITER_STATE', `cannot add ${spec.name}: the writer is ${this.state}`);
    const layout = spec.layout ?? ROW_MAJOR;
    let quant: QuantSpec | null = null;
    if (spec.dtype === 'i8' || spec.dtype === 'q4') {
      if (!spec.quant) throw new IebinError('IEBIN_BAD_QUANT', `${spec.name}: ${spec.dtype} needs quantization parameters`);
      const { rows, cols } = matrixDims(spec.shape);
      const g = quantGeometry(spec.dtype, rows, cols, spec.quant);
      quant = { ...spec.quant, scales_offset: Number(g.scalesOffset), zeros_offset: g.zerosOffset === null ? null : Number(g.zerosOffset) };
    }
    const bytes = Number(tensorByteSize(spec.dtype, spec.shape, quant));
    const offset = Number(alignUp(BigInt(this.position)));
    try {
      if (offset > this.position) await this.write(ZEROS.subarray(0, offset - this.position));
      let crc = 0;
      let got = 0;
      const chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array> = data instanceof Uint8Array ? [data] : data;
      for await (const c of chunks) {
        got += c.length;
        if (got > bytes) throw new IebinError('IEBIN_SIZE_MISMATCH', `${spec.name}: got more than the ${bytes} bytes that ${spec.dtype} ${JSON.stringify(spec.shape)} takes`);
        crc = crc32(c, crc);
        await this.write(c);
      }
      if (got !== bytes) throw new IebinError('IEBIN_SIZE_MISMATCH', `${spec.name}: got ${got} bytes, ${spec.dtype} ${JSON.stringify(spec.shape)} takes ${bytes}`);
      const entry: TensorEntry = { name: spec.name, dtype: spec.dtype, shape: [...spec.shape], offset, bytes, layout: { ...layout }, quant, crc32: (crc >>> 0).toString(16).padStart(8, '0') };
      this.tensors.push(entry);
      return entry;
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  private async write(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await this.bin.write(b, done, b.length - done, null);
      done += bytesWritten;
    }
    this.position += b.length;
  }

  /** Validates the complete header, fsyncs, and renames the files into place. */
  async finish(): Promise<IebinHeader> {
    if (this.state !== 'open') throw new IebinError('IEBIN_WRITER_STATE', `cannot finish: the writer is ${this.state}`);
    const header: IebinHeader = {
      format: 'iebin',
      version: 1,
      config: this.options.config,
      tokenizer: this.tokenizer,
      provenance: this.options.provenance,
      bin: { file: IEBIN_BIN_FILE, bytes: this.position, alignment: IEBIN_ALIGNMENT },
      tensors: this.tensors,
      quantization: this.options.quantization ?? null,
    };
    const jsonPartial = join(this.outDir, partialName(IEBIN_JSON_FILE));
    this.partials.push(jsonPartial);
    try {
      // Validate exactly what a reader will see, and write it in the validator's key order.
      const text = formatHeaderJson(validateIebinHeader(JSON.parse(formatHeaderJson(header)), join(this.outDir, IEBIN_JSON_FILE)));
      await this.bin.sync();
      await this.bin.close();
      const jf = await open(jsonPartial, 'wx');
      await jf.writeFile(text);
      await jf.sync();
      await jf.close();
      if (this.tokenizerPartial) await rename(this.tokenizerPartial, join(this.outDir, HF_TOKENIZER_FILE));
      await rename(this.binPartial, join(this.outDir, IEBIN_BIN_FILE));
      // model.ie.json is the commit point: it is renamed last.
      await rename(jsonPartial, join(this.outDir, IEBIN_JSON_FILE));
      const d = await open(this.outDir, 'r');
      await d.sync().catch(() => undefined);
      await d.close();
    } catch (e) {
      await this.abort();
      if (e instanceof IebinError) throw e;
      throw new IebinError('IEBIN_WRITE_FAILED', `writing the model failed (${(e as Error).message}); any previous model there is untouched`, { file: this.outDir, cause: e });
    }
    this.state = 'finished';
    return header;
  }

  /** Stops and removes the partial files. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.bin.close().catch(() => undefined);
    for (const p of this.partials) await unlink(p).catch(() => undefined);
  }

  /** Synchronous abort, for signal and exit handlers. */
  abortSync(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    // Closing is asynchronous; the files are unlinked synchronously below, which is what matters.
    this.bin.close().catch(() => undefined);
    for (const p of this.partials) {
      try {
        unlinkSync(p);
      } catch {
        /* already gone */
      }
    }
  }
}

async function copyHashed(src: string, dst: string): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  const out = await open(dst, 'wx');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20 })) {
      const b = chunk as Buffer;
      h.update(b);
      bytes += b.length;
      await out.write(b);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return { bytes, sha256: h.digest('hex') };
}

/** model.ie.json text: one line per section and per tensor, deterministic. */
export function formatHeaderJson(h: IebinHeader): string {
  const lines = [
    '{',
    `  "format": ${JSON.stringify(h.format)},`,
    `  "version": ${h.version},`,
    `  "config": ${JSON.stringify(h.config)},`,
    `  "provenance": ${JSON.stringify(h.provenance)},`,
    `  "bin": ${JSON.stringify(h.bin)},`,
    `  "quantization": ${JSON.stringify(h.quantization)},`,
    `  "tokenizer": ${JSON.stringify(h.tokenizer)},`,
    '  "tensors": [',
    h.tensors.map((t) => `    ${JSON.stringify(t)}`).join(',\n'),
    '  ]',
    '}',
    '',
  ];
  return lines.join('\n');
}
