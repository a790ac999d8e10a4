/**
 * IebinReader: opens an IEBIN model (a directory, or model.ie.json with model.ie.bin
 * beside it), validates the header and the tensor table against the bin file, and hands
 * out tensors either as zero-copy views over a buffer it is given (the runtime gives it a
 * mmap) or by reading just that tensor's range. Opening reads the header and stats the
 * bin; it never reads the weights.
 */
import { crc32 } from 'node:zlib';
import type { Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IebinError } from './errors.js';
import { RandomAccessFile, fileKind, readRegularFile, sha256File } from './file.js';
import { modelFileKind } from './sniff.js';
import { DEFAULT_IEBIN_LIMITS, parseIebinHeader, type IebinHeader, type IebinLimits, type TensorEntry } from './header.js';
import { BLOCK_FORMATS, isBlockDtype } from './blocks.js';
import { IEBIN_JSON_FILE, isFloatDtype, matrixDims, quantGeometry, type ScaleDtype } from './layout.js';

export interface TensorView {
  entry: TensorEntry;
  /** The tensor's stored bytes (its layout applied), `entry.bytes` long. */
  bytes: Uint8Array;
}

/** What a directory without model.ie.json holds that another importer reads (" (it holds …)"), or "". */
async function holdsInstead(dir: string): Promise<string> {
  const names = await readdir(dir).catch(() => [] as string[]);
  if (names.includes('config.json') && names.some((n) => n.endsWith('.safetensors')))
    return ' (it holds a Hugging Face checkpoint: config.json and safetensors)';
  const gguf = names.filter((n) => /\.gguf$/i.test(n)).sort();
  if (gguf.length > 0)
    return ` (it holds GGUF ${gguf.length === 1 ? 'file' : 'files'} ${gguf.slice(0, 3).join(', ')}${gguf.length > 3 ? ', …' : ''}: pass ${gguf.length === 1 ? 'the file' : 'one of them'} itself)`;
  return '';
}

/** A source of zero-copy views into model.ie.bin (e.g. a memory map too large for one ArrayBuffer). */
export interface BinViews {
  readonly length: number;
  view(offset: number, length: number): Uint8Array;
}

export interface IebinOpenOptions {
  limits?: Partial<IebinLimits>;
}

export interface VerifyProblem {
  code: 'IEBIN_CHECKSUM_MISMATCH' | 'IEBIN_PADDING_NOT_ZERO' | 'IEBIN_BAD_TOKENIZER' | 'IEBIN_NONFINITE';
  field: string;
  message: string;
}
export interface VerifyReport {
  ok: boolean;
  tensorsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

export class IebinReader {
  /** Set by {@link attach}; views are zero-copy over it. */
  private buffer: Uint8Array | null = null;
  private views: BinViews | null = null;
  private file: RandomAccessFile | null = null;
  private readonly byName: Map<string, TensorEntry>;

  private constructor(
    readonly header: IebinHeader,
    /** Path of model.ie.json, or a label for in-memory headers. */
    readonly jsonPath: string,
    /** Path of model.ie.bin, or null for a reader built over bytes. */
    readonly binPath: string | null,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens a model directory, or the path of its model.ie.json. */
  static async open(path: string, options: IebinOpenOptions = {}): Promise<IebinReader> {
    const limits = { ...DEFAULT_IEBIN_LIMITS, ...options.limits };
    let st: Stats;
    try {
      st = await stat(path);
    } catch {
      throw new IebinError(
        'IEBIN_NOT_FOUND',
        'does not exist; pass a model directory (with model.ie.json and model.ie.bin) or a model.ie.json path',
        { file: path },
      );
    }
    const jsonPath = st.isDirectory() ? join(path, IEBIN_JSON_FILE) : path;
    let jst: Stats;
    try {
      jst = await stat(jsonPath);
    } catch {
      throw new IebinError('IEBIN_NOT_FOUND', `has no ${IEBIN_JSON_FILE}: it is not an IEBIN model directory${await holdsInstead(path)}`, {
        file: path,
      });
    }
    // A FIFO would block the read below, a device (/dev/zero) never end: only a regular file is read.
    if (!jst.isFile()) {
      const what = `is not a regular file (${fileKind(jst)}); only a regular file is read as model.ie.json`;
      throw new IebinError('IO_ERROR', what, { file: jsonPath });
    }
    if (!st.isDirectory() && basename(path) !== IEBIN_JSON_FILE) {
      const kind = await modelFileKind(path);
      const other =
        kind === 'gguf'
          ? 'a GGUF file'
          : kind === 'safetensors'
            ? "a safetensors file (a Hugging Face checkpoint's weights: convert its directory)"
            : null;
      if (other) throw new IebinError('IEBIN_HEADER_NOT_JSON', `is ${other}, not an IEBIN model.ie.json`, { file: path });
    }
    if (jst.size > limits.maxHeaderBytes) {
      throw new IebinError('IEBIN_HEADER_TOO_LARGE', `is ${jst.size} bytes, over the ${limits.maxHeaderBytes}-byte header cap`, {
        file: jsonPath,
      });
    }
    // At most the cap (and one byte) is read, whatever the file turns into after the stat above.
    const bytes = await readRegularFile(
      jsonPath,
      limits.maxHeaderBytes,
      (code, message) => new IebinError(code, message, { file: jsonPath }),
    );
    const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
    const header = parseIebinHeader(text, jsonPath, limits);
    const dir = dirname(jsonPath);
    const binPath = join(dir, header.bin.file);
    let bst: Stats;
    try {
      bst = await stat(binPath);
    } catch {
      throw new IebinError('IEBIN_NOT_FOUND', `is missing (model.ie.json names it in bin.file)`, { file: binPath });
    }
    if (!bst.isFile())
      throw new IebinError('IO_ERROR', `is not a regular file (${fileKind(bst)}); model.ie.bin must be one`, { file: binPath });
    if (bst.size !== header.bin.bytes) {
      throw new IebinError(
        'IEBIN_BIN_SIZE_MISMATCH',
        `is ${bst.size} bytes but model.ie.json says ${header.bin.bytes}; the model is truncated or mismatched, re-export it`,
        { file: binPath, field: 'bin.bytes' },
      );
    }
    if (header.tokenizer.model === 'hf') {
      const tp = join(dir, header.tokenizer.file);
      let tst: Stats;
      try {
        tst = await stat(tp);
      } catch {
        throw new IebinError('IEBIN_BAD_TOKENIZER', 'is missing (model.ie.json references it)', { file: tp, field: 'tokenizer.file' });
      }
      if (!tst.isFile())
        throw new IebinError('IO_ERROR', `is not a regular file (${fileKind(tst)})`, { file: tp, field: 'tokenizer.file' });
      if (tst.size !== header.tokenizer.bytes)
        throw new IebinError('IEBIN_BAD_TOKENIZER', `is ${tst.size} bytes, model.ie.json says ${header.tokenizer.bytes}`, {
          file: tp,
          field: 'tokenizer.bytes',
        });
    }
    return new IebinReader(header, jsonPath, binPath);
  }

  /** A reader over in-memory bytes (tests, tools that already hold the files). */
  static fromBytes(json: string | Uint8Array, bin: Uint8Array, label = IEBIN_JSON_FILE, options: IebinOpenOptions = {}): IebinReader {
    const limits = { ...DEFAULT_IEBIN_LIMITS, ...options.limits };
    const size = typeof json === 'string' ? Buffer.byteLength(json) : json.length;
    if (size > limits.maxHeaderBytes)
      throw new IebinError('IEBIN_HEADER_TOO_LARGE', `is ${size} bytes, over the ${limits.maxHeaderBytes}-byte header cap`, {
        file: label,
      });
    const text = typeof json === 'string' ? json : new TextDecoder().decode(json);
    const header = parseIebinHeader(text, label, limits);
    const r = new IebinReader(header, label, null);
    r.attach(bin);
    return r;
  }

  get tensors(): readonly TensorEntry[] {
    return this.header.tensors;
  }

  get config() {
    return this.header.config;
  }

  get directory(): string {
    return dirname(this.jsonPath);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  tensor(name: string): TensorEntry {
    const t = this.byName.get(name);
    if (!t) throw new IebinError('IEBIN_TENSOR_NOT_FOUND', `has no tensor named ${JSON.stringify(name)}`, { file: this.jsonPath });
    return t;
  }

  /**
   * Gives the reader the whole of model.ie.bin in memory (typically a read-only mmap), as one
   * buffer or as a source of views; tensor views become zero-copy.
   */
  attach(buffer: ArrayBuffer | Uint8Array | BinViews): void {
    if (!(buffer instanceof Uint8Array) && !(buffer instanceof ArrayBuffer)) {
      if (buffer.length !== this.header.bin.bytes) {
        throw new IebinError('IEBIN_BUFFER_TOO_SMALL', `the mapping is ${buffer.length} bytes, model.ie.bin is ${this.header.bin.bytes}`, {
          file: this.binPath ?? this.jsonPath,
        });
      }
      this.views = buffer;
      return;
    }
    const u8 = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
    if (u8.length !== this.header.bin.bytes) {
      throw new IebinError('IEBIN_BUFFER_TOO_SMALL', `the buffer is ${u8.length} bytes, model.ie.bin is ${this.header.bin.bytes}`, {
        file: this.binPath ?? this.jsonPath,
      });
    }
    if (u8.byteOffset % 64 !== 0)
      throw new IebinError('IEBIN_MISALIGNED', 'the buffer must start at a 64-byte-aligned address for typed views', {
        file: this.binPath ?? this.jsonPath,
      });
    this.buffer = u8;
  }

  get attached(): boolean {
    return this.buffer !== null || this.views !== null;
  }

  /** Zero-copy view of a tensor over the attached buffer. */
  view(name: string): TensorView {
    const entry = this.tensor(name);
    if (this.views) return { entry, bytes: this.views.view(entry.offset, entry.bytes) };
    if (!this.buffer)
      throw new IebinError('IEBIN_BUFFER_TOO_SMALL', 'no buffer is attached; call attach() with the mapped model.ie.bin, or use read()', {
        file: this.jsonPath,
      });
    return { entry, bytes: this.buffer.subarray(entry.offset, entry.offset + entry.bytes) };
  }

  /** Reads one tensor's bytes from disk (or from the attached buffer, copy-free). */
  async read(name: string): Promise<TensorView> {
    if (this.attached) return this.view(name);
    const entry = this.tensor(name);
    const f = await this.binFile();
    return { entry, bytes: await f.read(entry.offset, entry.bytes) };
  }

  private async binFile(): Promise<RandomAccessFile> {
    if (!this.file) {
      const p = this.binPath as string;
      this.file = await RandomAccessFile.open(p, (code, message) => new IebinError(code, message, { file: p }));
      if (this.file.size !== this.header.bin.bytes) {
        throw new IebinError(
          'IEBIN_BIN_SIZE_MISMATCH',
          `changed size since it was opened (${this.file.size} bytes, expected ${this.header.bin.bytes})`,
          { file: p },
        );
      }
    }
    return this.file;
  }

  /**
   * Deep check: every tensor's CRC-32, that alignment padding is zero, that no float value is
   * NaN or infinite (f32/f16/bf16 tensors, the scales of i8/q4 tensors, the f16 scales of K-quant
   * and IQ4_NL blocks, MXFP4's E8M0 scales), and the sha256 of a referenced tokenizer file. Reads
   * the whole bin once, in order, in bounded chunks.
   */
  async verify(onProgress?: (done: number, total: number) => void): Promise<VerifyReport> {
    const problems: VerifyProblem[] = [];
    const total = this.header.bin.bytes;
    const chunk = 16 << 20;
    const scratch = this.attached ? null : new Uint8Array(chunk);
    const readRange = async (pos: number, len: number): Promise<Uint8Array> => {
      if (this.views) return this.views.view(pos, len);
      if (this.buffer) return this.buffer.subarray(pos, pos + len);
      const b = (scratch as Uint8Array).subarray(0, len);
      await (await this.binFile()).readInto(b, pos);
      return b;
    };
    let pos = 0;
    let done = 0;
    for (let i = 0; i < this.header.tensors.length; i++) {
      const t = this.header.tensors[i];
      if (t.offset > pos) {
        const pad = await readRange(pos, t.offset - pos);
        if (pad.some((b) => b !== 0))
          problems.push({
            code: 'IEBIN_PADDING_NOT_ZERO',
            field: `tensors[${i}]`,
            message: `padding before ${t.name} (bytes ${pos}..${t.offset}) is not zero`,
          });
      }
      let crc = 0;
      const scan = nonFiniteScanner(t);
      let bad: number | null = null;
      // Chunks hold whole blocks (and whole elements), so each value is scanned in one piece.
      const step = scan ? chunk - (chunk % scan.unit) : chunk;
      for (let at = 0; at < t.bytes; at += step) {
        const len = Math.min(step, t.bytes - at);
        const bytes = await readRange(t.offset + at, len);
        crc = crc32(bytes, crc);
        if (scan && bad === null) bad = scan.find(bytes, at);
        done += len;
        onProgress?.(done, total);
      }
      if (bad !== null)
        problems.push({
          code: 'IEBIN_NONFINITE',
          field: `tensors[${i}]`,
          message: `${t.name}: ${scan?.what} ${bad} is NaN or infinite; the model is broken (a diverged training run or a bad conversion)`,
        });
      const hex = (crc >>> 0).toString(16).padStart(8, '0');
      if (hex !== t.crc32)
        problems.push({
          code: 'IEBIN_CHECKSUM_MISMATCH',
          field: `tensors[${i}].crc32`,
          message: `${t.name}: bytes hash to ${hex}, the header says ${t.crc32}; the file is corrupt, re-export it`,
        });
      pos = t.offset + t.bytes;
    }
    const tok = this.header.tokenizer;
    if (tok.model === 'hf' && this.binPath) {
      const tp = join(this.directory, tok.file);
      const sum = await sha256File(tp);
      if (sum !== tok.sha256)
        problems.push({
          code: 'IEBIN_BAD_TOKENIZER',
          field: 'tokenizer.sha256',
          message: `${basename(tp)} hashes to ${sum}, the header says ${tok.sha256}`,
        });
    }
    return { ok: problems.length === 0, tensorsChecked: this.header.tensors.length, bytesChecked: done, problems };
  }

  async close(): Promise<void> {
    const f = this.file;
    this.file = null;
    this.buffer = null;
    this.views = null;
    if (f) await f.close();
  }
}

/** Index of the first NaN/Inf among `n` values of a float kind starting at byte `at` of `b`, or -1. */
function firstNonFinite(b: Uint8Array, at: number, n: number, kind: ScaleDtype): number {
  const size = kind === 'f32' ? 4 : 2;
  let src = b.subarray(at, at + n * size);
  if (src.byteOffset % size !== 0) src = src.slice();
  if (kind === 'f32') {
    const w = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) if ((w[i] & 0x7f800000) === 0x7f800000) return i;
    return -1;
  }
  const h = new Uint16Array(src.buffer, src.byteOffset, n);
  const mask = kind === 'f16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < n; i++) if ((h[i] & mask) === mask) return i;
  return -1;
}

/**
 * How to find NaN/Inf in a tensor's bytes, chunk by chunk: `unit` is the byte count chunks must be
 * a multiple of; `find(bytes, at)` takes the chunk starting at byte `at` of the tensor and returns
 * the index of the first bad value (element, scale or block), or null. Null for integer-only data.
 */
function nonFiniteScanner(t: TensorEntry): { unit: number; what: string; find(b: Uint8Array, at: number): number | null } | null {
  if (isFloatDtype(t.dtype)) {
    const dt = t.dtype;
    const size = dt === 'f32' ? 4 : 2;
    return {
      unit: size,
      what: 'element',
      find: (b, at) => {
        const i = firstNonFinite(b, 0, Math.floor(b.length / size), dt);
        return i < 0 ? null : at / size + i;
      },
    };
  }
  if (isBlockDtype(t.dtype)) {
    const f = BLOCK_FORMATS[t.dtype];
    // Byte offsets of each block's f16 scales (ggml's layouts); MXFP4's scale is one E8M0 byte (255 = NaN).
    const halves = t.dtype === 'q6_k' ? [208] : t.dtype === 'iq4_nl' ? [0] : t.dtype === 'mxfp4' ? [] : [0, 2];
    return {
      unit: f.bytes,
      what: 'block',
      find: (b, at) => {
        const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
        for (let p = 0; p + f.bytes <= b.length; p += f.bytes) {
          const bad = t.dtype === 'mxfp4' ? b[p] === 255 : halves.some((o) => (v.getUint16(p + o, true) & 0x7c00) === 0x7c00);
          if (bad) return (at + p) / f.bytes;
        }
        return null;
      },
    };
  }
  if (!t.quant) return null;
  const q = t.quant;
  const { rows, cols } = matrixDims(t.shape);
  const g = quantGeometry(t.dtype, rows, cols, q);
  const lo = Number(g.scalesOffset);
  const hi = lo + Number(g.scaleBytes);
  const size = q.scale_dtype === 'f32' ? 4 : 2;
  return {
    unit: 64,
    what: 'scale',
    find: (b, at) => {
      const from = Math.max(lo, at);
      const to = Math.min(hi, at + b.length);
      if (from >= to) return null;
      const i = firstNonFinite(b, from - at, (to - from) / size, q.scale_dtype);
      return i < 0 ? null : (from - lo) / size + i;
    },
  };
}
