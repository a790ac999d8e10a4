/**
 * KernelContext: one thread pool and one dispatch table (chosen once from CPUID), and every
 * kernel as a method. All arguments are checked here — types, lengths, shapes, alignment —
 * so no call with wrong sizes reaches C++; the addon checks again and throws, never crashes.
 */
import { statSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { loadAddon, type NativeContext, type NativeInfo } from './addon.js';
import { KERNEL_CONSTANTS, type KvDtype, type RopeStyle } from './constants.js';
import { KernelError, asKernelError, show, wrapNative } from './errors.js';
import { MappedFile, WeightMatrix, nativeOf } from './handles.js';
import { matrixGeometry, nativeDescriptor, snapshotMatrixSpec, type MatrixSpec } from './matrix-spec.js';
import { checkContextOptions, type ContextOptions, type Isa } from './options.js';
import { Program, encodeOp } from './program.js';
import type { ProgramSpec } from './program-types.js';

export interface ContextInfo extends NativeInfo {
  isa: Isa;
}

export interface GemvOptions {
  /** `f32` (default): dequantization fused into FP32 FMAs. `int8`: quantized activations, integer dot products (quantized and block-type weights). */
  activations?: 'f32' | 'int8';
}

function f32(v: unknown, name: string, min: number): Float32Array {
  if (!(v instanceof Float32Array)) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be a Float32Array`);
  if (v.length < min) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} has ${v.length} elements, needs ${min}`);
  return v;
}

function u16(v: unknown, name: string, min: number): Uint16Array {
  if (!(v instanceof Uint16Array)) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be a Uint16Array`);
  if (v.length < min) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} has ${v.length} elements, needs ${min}`);
  return v;
}

// Duck-typed (a second copy of this module, e.g. dist/ and src/ both loaded, makes instanceof
// lie): what matters is the native object, whose type tag the addon checks.
const wraps = (m: unknown): boolean =>
  typeof m === 'object' &&
  m !== null &&
  typeof (m as { native?: unknown }).native === 'object' &&
  (m as { native?: unknown }).native !== null;

function matrixArg(m: unknown, name = 'matrix'): WeightMatrix {
  if (!wraps(m)) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be a WeightMatrix (from KernelContext.matrix)`);
  return m as WeightMatrix;
}

function mappingArg(m: unknown, name = 'mapping'): MappedFile {
  if (!wraps(m)) throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be a MappedFile (from KernelContext.mapFile)`);
  return m as MappedFile;
}

function objectArg<T>(o: T, name: string): T {
  if (o === null || typeof o !== 'object') throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be an object`);
  return o;
}

function count(n: number | undefined, dflt: number, name = 'n'): number {
  const v = n ?? dflt;
  if (!Number.isSafeInteger(v) || v < 1 || v > 2 ** 30)
    throw new KernelError('KERNELS_BAD_ARGUMENT', `${name} must be a positive integer, got ${show(v)}`);
  return v;
}

/** What {@link KernelContext.readBandwidth} measured. */
export interface ReadBandwidth {
  /** The fastest pass over the buffer, all pool threads reading. */
  seconds: number;
  /** Bytes read per second in that pass, in GB/s (1e9). */
  gbs: number;
  /** The reader that achieved it, e.g. "1 stream/thread". */
  variant: string;
}

export interface MapOptions {
  offset?: number;
  length?: number;
  advice?: 'normal' | 'sequential' | 'random' | 'willneed';
  hugePages?: boolean;
  /** Fault every page in now (MAP_POPULATE). */
  populate?: boolean;
}

export interface LoadFileOptions {
  offset?: number;
  length?: number;
  /** Ask for 2 MiB transparent huge pages (madvise(MADV_HUGEPAGE) before the first touch). Default true. */
  hugePages?: boolean;
  /**
   * Ranges of the region (offsets from `offset`) to leave mapped from the file instead of copying:
   * tables of which each step reads a row or two (an untied token embedding), which a copy would
   * hold in memory whole. The 2 MiB-aligned interior of each range of at least 2 MiB takes the
   * file's pages in place (private, as {@link KernelContext.mapFile} maps them); the rest is copied.
   * The bytes read the same either way. Where the file cannot be mapped there, the range is copied.
   */
  mapped?: ReadonlyArray<{ offset: number; length: number }>;
}

/** The 2 MiB unit of loadFile's copy (a transparent huge page): ranges left mapped are whole units. */
const HUGE_PAGE = 2 * 1024 * 1024;

/** The whole 2 MiB units inside each range, sorted and merged, where the file offset allows (a page multiple). */
function mappedUnits(ranges: ReadonlyArray<{ offset: number; length: number }>, len: number, fileOffset: number): Array<[number, number]> {
  if (!Array.isArray(ranges)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'mapped must be an array of { offset, length }');
  if (fileOffset % 4096 !== 0) return [];
  const units: Array<[number, number]> = [];
  for (const r of ranges) {
    if (
      typeof r !== 'object' ||
      r === null ||
      !Number.isSafeInteger(r.offset) ||
      !Number.isSafeInteger(r.length) ||
      r.offset < 0 ||
      r.length < 0 ||
      r.offset + r.length > len
    )
      throw new KernelError(
        'KERNELS_BAD_ARGUMENT',
        `mapped: each range must be { offset, length } of non-negative integers inside the ${len}-byte region`,
      );
    const a = Math.ceil(r.offset / HUGE_PAGE) * HUGE_PAGE;
    const b = Math.floor((r.offset + r.length) / HUGE_PAGE) * HUGE_PAGE;
    if (b > a) units.push([a, b]);
  }
  units.sort((x, y) => x[0] - y[0]);
  const merged: Array<[number, number]> = [];
  for (const u of units) {
    const last = merged[merged.length - 1];
    if (last && u[0] <= last[1]) last[1] = Math.max(last[1], u[1]);
    else merged.push([u[0], u[1]]);
  }
  return merged;
}

export interface AttentionArgs {
  /** nQueries x nHeads x headDim queries (RoPE applied). */
  q: Float32Array;
  /** Caches: position t, KV head h at [t * kvStride + h * headDim]; Float32Array for f32, Uint16Array (f16 bits) for f16. */
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array;
  out: Float32Array;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** Position of the first query; query i attends to positions [0, pos0 + i]. */
  pos0: number;
  nQueries?: number;
  kvStride?: number;
  /** Sliding window (attend to the last `window` positions); 0 = none. */
  window?: number;
  /** Attention sinks (gpt-oss): one learned logit per head, in each softmax's denominator only. */
  sinks?: Float32Array;
  /** Score scale, default 1/sqrt(headDim). */
  scale?: number;
}

export class KernelContext {
  private closed = false;
  private constructor(
    private readonly native: NativeContext,
    readonly options: ContextOptions,
  ) {}

  /** A context with these options as given (the environment's defaults are the caller's: @ie/runtime's resolveEngineOptions). */
  static create(options: ContextOptions = {}): KernelContext {
    const resolved = checkContextOptions(options);
    const addon = loadAddon();
    const native = wrapNative(
      () => new addon.Context({ threads: resolved.threads, affinity: resolved.affinity, numa: resolved.numa, isa: resolved.isa }),
    );
    return new KernelContext(native, resolved);
  }

  private get n(): NativeContext {
    if (this.closed) throw new KernelError('KERNELS_CLOSED', 'the kernel context is closed');
    return this.native;
  }

  /** The ISA variant in use, the pool, affinity and NUMA state, and the CPU's features. */
  info(): ContextInfo {
    return wrapNative(() => this.n.info()) as ContextInfo;
  }

  /** Binds a matrix to its bytes (zero-copy). Pass the mapping when `data` is a view of one, so it stays mapped while the matrix lives. */
  matrix(given: MatrixSpec, data: Uint8Array, mapping?: MappedFile): WeightMatrix {
    if (mapping !== undefined) mappingArg(mapping);
    const spec = snapshotMatrixSpec(given);
    const g = matrixGeometry(spec);
    if (!(data instanceof Uint8Array)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'matrix data must be a Uint8Array');
    if (BigInt(data.length) !== g.bytes)
      throw new KernelError(
        'KERNELS_BAD_MATRIX',
        `matrix data is ${data.length} bytes, a ${spec.dtype} ${JSON.stringify(spec.shape)} matrix takes ${g.bytes}`,
      );
    const elem = spec.dtype === 'f32' ? 4 : spec.dtype === 'f16' || spec.dtype === 'bf16' ? 2 : 1;
    if (data.byteOffset % elem !== 0)
      throw new KernelError(
        'KERNELS_MISALIGNED',
        `${spec.dtype} matrix data must start at a multiple of ${elem} bytes (offset ${data.byteOffset})`,
      );
    const desc = nativeDescriptor(spec, g);
    const m = wrapNative(() => this.n.matrix(desc, data, mapping?.native));
    return new WeightMatrix(m, spec, g.rows, g.cols);
  }

  /**
   * y = W x (y has `rows` elements, x `cols`). `activations: 'int8'` selects the int8-activation
   * mode for i8/q4 and block-type (q4_k, q5_k, q6_k, iq4_nl) weights: x is quantized per 32 elements and integer dot products run (VNNI
   * where the CPU has it) — faster, with activation rounding error; f32/f16/bf16 weights ignore it.
   */
  gemv(m: WeightMatrix, x: Float32Array, y: Float32Array, options: GemvOptions = {}): void {
    matrixArg(m);
    objectArg(options, 'options');
    f32(x, 'x', m.cols);
    f32(y, 'y', m.rows);
    const a = options.activations ?? 'f32';
    if (a !== 'f32' && a !== 'int8') throw new KernelError('KERNELS_BAD_ARGUMENT', `activations must be f32 or int8, got ${show(a)}`);
    wrapNative(() => this.n.gemv(m.native, x, y, KERNEL_CONSTANTS.activations[a]));
  }

  /** Y = X W^T for M tokens: X is M x cols, Y is M x rows, both row-major. */
  gemm(m: WeightMatrix, X: Float32Array, M: number, Y: Float32Array): void {
    matrixArg(m);
    count(M, M, 'M');
    f32(X, 'X', M * m.cols);
    f32(Y, 'Y', M * m.rows);
    wrapNative(() => this.n.gemm(m.native, X, M, Y));
  }

  /**
   * {@link gemm} off the event loop (a libuv worker thread). The matrix, X and Y are held until
   * it settles: `m.dispose()` meanwhile takes effect when it ends, and X's and Y's memory stays
   * allocated if they are transferred (the promise then rejects with KERNELS_DETACHED, since Y's
   * new owner got the result). Resizable and shared buffers are refused.
   */
  async gemmAsync(m: WeightMatrix, X: Float32Array, M: number, Y: Float32Array): Promise<void> {
    matrixArg(m);
    count(M, M, 'M');
    f32(X, 'X', M * m.cols);
    f32(Y, 'Y', M * m.rows);
    try {
      await this.n.gemmAsync(m.native, X, M, Y);
    } catch (e) {
      throw asKernelError(e);
    }
  }

  /** Row r of W, dequantized to f32 (an embedding lookup). */
  row(m: WeightMatrix, r: number, out: Float32Array): void {
    matrixArg(m);
    if (!Number.isSafeInteger(r) || r < 0 || r >= m.rows)
      throw new KernelError('KERNELS_BAD_ARGUMENT', `row ${show(r)} is outside 0..${m.rows - 1}`);
    f32(out, 'out', m.cols);
    wrapNative(() => this.n.row(m.native, r, out));
  }

  rmsnorm(x: Float32Array, weight: Float32Array, eps: number, out: Float32Array): void {
    const n = count(f32(weight, 'weight', 1).length, 1);
    f32(x, 'x', n);
    f32(out, 'out', n);
    if (typeof eps !== 'number' || !(eps > 0 && eps < 1))
      throw new KernelError('KERNELS_BAD_ARGUMENT', `eps must be in (0, 1), got ${show(eps)}`);
    wrapNative(() => this.n.rmsnorm(x, weight, eps, out, n));
  }

  /** In place over x[0..n). */
  softmax(x: Float32Array, n?: number): void {
    const len = count(n, f32(x, 'x', 1).length);
    f32(x, 'x', len);
    wrapNative(() => this.n.softmax(x, len));
  }

  /** Rotates nHeads heads of headDim in x by the given cos/sin (headDim/2 each) in the model's RoPE style. */
  rope(x: Float32Array, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array, style: RopeStyle): void {
    count(nHeads, nHeads, 'nHeads');
    if (!Number.isSafeInteger(headDim) || headDim < 2 || headDim > 2 ** 16 || headDim % 2)
      throw new KernelError('KERNELS_BAD_ARGUMENT', `headDim must be an even positive integer, got ${show(headDim)}`);
    f32(x, 'x', nHeads * headDim);
    f32(cos, 'cos', headDim / 2);
    f32(sin, 'sin', headDim / 2);
    if (style !== 'adjacent' && style !== 'rotate_half')
      throw new KernelError('KERNELS_BAD_ARGUMENT', `style must be adjacent or rotate_half`);
    wrapNative(() => this.n.rope(x, nHeads, headDim, cos, sin, KERNEL_CONSTANTS.ropeStyles[style]));
  }

  /** out = silu(gate) * up. */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n?: number): void {
    const len = count(n, f32(gate, 'gate', 1).length);
    f32(gate, 'gate', len);
    f32(up, 'up', len);
    f32(out, 'out', len);
    wrapNative(() => this.n.swiglu(gate, up, out, len));
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, n?: number): void {
    const len = count(n, f32(a, 'a', 1).length);
    f32(a, 'a', len);
    f32(b, 'b', len);
    f32(out, 'out', len);
    wrapNative(() => this.n.add(a, b, out, len));
  }

  scale(x: Float32Array, s: number, n?: number): void {
    const len = count(n, f32(x, 'x', 1).length);
    f32(x, 'x', len);
    if (!Number.isFinite(s)) throw new KernelError('KERNELS_BAD_ARGUMENT', `s must be finite, got ${show(s)}`);
    wrapNative(() => this.n.scale(x, s, len));
  }

  /** Index of the largest of x[0..n) (the first, on ties). */
  argmax(x: Float32Array, n?: number): number {
    const len = count(n, f32(x, 'x', 1).length);
    f32(x, 'x', len);
    return wrapNative(() => this.n.argmax(x, len));
  }

  dot(a: Float32Array, b: Float32Array, n?: number): number {
    const len = count(n, f32(a, 'a', 1).length);
    f32(a, 'a', len);
    f32(b, 'b', len);
    return wrapNative(() => this.n.dot(a, b, len));
  }

  f32ToF16(x: Float32Array, out: Uint16Array, n?: number): void {
    const len = count(n, f32(x, 'x', 1).length);
    f32(x, 'x', len);
    u16(out, 'out', len);
    wrapNative(() => this.n.f32ToF16(x, out, len));
  }

  f16ToF32(x: Uint16Array, out: Float32Array, n?: number): void {
    const len = count(n, u16(x, 'x', 1).length);
    u16(x, 'x', len);
    f32(out, 'out', len);
    wrapNative(() => this.n.f16ToF32(x, out, len));
  }

  /** Attention of nQueries consecutive queries over the KV cache (grouped-query heads, optional sliding window). */
  attention(a: AttentionArgs): void {
    objectArg(a, 'attention args');
    const nq = count(a.nQueries, 1, 'nQueries');
    const H = count(a.nHeads, a.nHeads, 'nHeads');
    const KV = count(a.nKvHeads, a.nKvHeads, 'nKvHeads');
    const hd = count(a.headDim, a.headDim, 'headDim');
    if (H % KV !== 0) throw new KernelError('KERNELS_BAD_ARGUMENT', `nHeads (${H}) must be a multiple of nKvHeads (${KV})`);
    if (!Number.isSafeInteger(a.pos0) || a.pos0 < 0)
      throw new KernelError('KERNELS_BAD_ARGUMENT', `pos0 must be a non-negative integer, got ${show(a.pos0)}`);
    const stride = a.kvStride ?? KV * hd;
    if (!Number.isSafeInteger(stride) || stride < KV * hd)
      throw new KernelError('KERNELS_BAD_ARGUMENT', `kvStride must be at least nKvHeads * headDim = ${KV * hd}`);
    const kvType: KvDtype = a.k instanceof Uint16Array ? 'f16' : 'f32';
    if (kvType === 'f16' ? !(a.v instanceof Uint16Array) : !(a.k instanceof Float32Array && a.v instanceof Float32Array))
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'k and v must both be Float32Array (f32 cache) or both Uint16Array (f16 cache)');
    const cacheLen = (a.pos0 + nq - 1) * stride + KV * hd;
    if (a.k.length < cacheLen || a.v.length < cacheLen)
      throw new KernelError('KERNELS_BAD_ARGUMENT', `the KV cache must hold ${a.pos0 + nq} positions (${cacheLen} elements)`);
    f32(a.q, 'q', nq * H * hd);
    f32(a.out, 'out', nq * H * hd);
    const window = a.window ?? 0;
    if (!Number.isSafeInteger(window) || window < 0) throw new KernelError('KERNELS_BAD_ARGUMENT', `window must be a non-negative integer`);
    const scale = a.scale ?? 1 / Math.sqrt(hd);
    if (typeof scale !== 'number') throw new KernelError('KERNELS_BAD_ARGUMENT', 'scale must be a number');
    if (a.sinks !== undefined) f32(a.sinks, 'sinks', H);
    wrapNative(() =>
      this.n.attention({
        q: a.q,
        k: a.k,
        v: a.v,
        out: a.out,
        nHeads: H,
        nKvHeads: KV,
        headDim: hd,
        nQueries: nq,
        pos0: a.pos0,
        kvStride: stride,
        window,
        scale,
        kvType: KERNEL_CONSTANTS.kvTypes[kvType],
        sinks: a.sinks,
      }),
    );
  }

  /** Maps a file region read-only (zero-copy), with madvise hints. */
  mapFile(path: string, options: MapOptions = {}): MappedFile {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0'))
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'path must be a non-empty string');
    objectArg(options, 'options');
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new KernelError('KERNELS_BAD_ARGUMENT', `offset must be a non-negative integer`);
    const length = options.length;
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 1))
      throw new KernelError('KERNELS_BAD_ARGUMENT', `length must be a positive integer`);
    const len = length ?? sizeOf(path) - offset;
    if (len < 1) throw new KernelError('KERNELS_MAP_FAILED', `${path}: nothing to map at offset ${offset}`);
    const advice = options.advice ?? 'normal';
    if (typeof advice !== 'string') throw new KernelError('KERNELS_BAD_OPTION', 'advice must be normal, sequential, random or willneed');
    return new MappedFile(
      wrapNative(() => this.n.mapFile(path, offset, len, advice, options.hugePages === true, options.populate === true)),
    );
  }

  /**
   * Reads a file region into anonymous memory (2 MiB-aligned; in transparent huge pages unless
   * `hugePages: false`) and returns it as a MappedFile: what llama.cpp's `--no-mmap` does. Costs a
   * copy at load and the memory of the region; spares later passes over it the 4 KiB page walks of
   * a file mapping where the file system gives the page cache no large folios, and, on some virtual
   * machines, periodic stalls on page-cache memory (docs/performance.md, *Weights in huge pages*).
   * The context's NUMA policy is applied before the first page is touched.
   * Reads run on libuv's threads, several at once; the event loop keeps turning.
   */
  async loadFile(path: string, options: LoadFileOptions = {}): Promise<MappedFile> {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0'))
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'path must be a non-empty string');
    objectArg(options, 'options');
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new KernelError('KERNELS_BAD_ARGUMENT', 'offset must be a non-negative integer');
    if (options.length !== undefined && (!Number.isSafeInteger(options.length) || options.length < 1))
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'length must be a positive integer');
    if (options.hugePages !== undefined && typeof options.hugePages !== 'boolean')
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'hugePages must be true or false');
    const size = sizeOf(path);
    const len = options.length ?? size - offset;
    if (len < 1 || offset + len > size)
      throw new KernelError('KERNELS_MAP_FAILED', `${path}: range [${offset}, +${len}) is outside the ${size}-byte file`);
    const units = options.mapped === undefined ? [] : mappedUnits(options.mapped, len, offset);
    const memory = this.allocate(len, { hugePages: options.hugePages });
    try {
      this.numaBind(memory);
      // The file's pages in place first (before anything touches that memory), then the rest read.
      const copied: Array<[number, number]> = [];
      let from = 0;
      for (const [a, b] of units) {
        try {
          nativeOf(memory.native, 'MappedFile').mapFileOver(path, offset + a, a, b - a);
        } catch {
          continue; // left to the copy
        }
        if (a > from) copied.push([from, a]);
        from = b;
        memory.fileBackedBytes += b - a;
      }
      if (from < len) copied.push([from, len]);
      const file = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
        throw new KernelError('KERNELS_MAP_FAILED', `${path}: cannot open (${e.code ?? e.message})`);
      });
      try {
        for (const [a, b] of copied) await readInto(file, path, memory, offset + a, b - a, a);
      } finally {
        await file.close();
      }
      return memory;
    } catch (e) {
      memory.close();
      throw e;
    }
  }

  /**
   * `length` bytes of zeroed anonymous memory, 2 MiB-aligned, in transparent huge pages unless
   * `hugePages: false`, as a MappedFile (its views, close). What loadFile reads into; the
   * benchmarks' read-bandwidth probe runs over it, so that it streams pages like the weights'.
   */
  allocate(length: number, options: { hugePages?: boolean } = {}): MappedFile {
    if (!Number.isSafeInteger(length) || length < 1) throw new KernelError('KERNELS_BAD_ARGUMENT', 'length must be a positive integer');
    objectArg(options, 'options');
    if (options.hugePages !== undefined && typeof options.hugePages !== 'boolean')
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'hugePages must be true or false');
    return new MappedFile(wrapNative(() => this.n.allocateMemory(length, options.hugePages ?? true)));
  }

  /** Applies the context's NUMA policy to a mapping; on one node it reports why nothing changes. */
  numaBind(mapping: MappedFile): { nodes: number; policy: string; applied: boolean; detail: string } {
    mappingArg(mapping);
    return wrapNative(() => this.n.numaBind(mapping.native));
  }

  /**
   * The machine's read bandwidth: streams `bytes` with every pool thread in several reader
   * variants (1 to 8 interleaved streams per thread, with and without non-temporal prefetch),
   * `passes` times each, and reports the fastest pass. Fill the buffer with distinct random data
   * first: pages of identical content may be merged by the host and read from cache.
   */
  readBandwidth(bytes: Uint8Array, passes = 1): ReadBandwidth {
    if (!(bytes instanceof Uint8Array)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'bytes must be a Uint8Array');
    const r = wrapNative(() => this.n.readBandwidth(bytes, count(passes, passes, 'passes')));
    return { seconds: r.seconds, gbs: r.bytes / r.seconds / 1e9, variant: r.variant };
  }

  /**
   * The FMA peak of the pool's cores in GFLOP/s, measured (not looked up): independent fused
   * multiply-adds at the ISA's vector width on every pool thread for about `seconds`. The
   * ceiling GEMM figures are judged against; 0 for the scalar ISA.
   */
  fmaPeak(seconds = 0.2): number {
    if (typeof seconds !== 'number' || !(seconds > 0 && seconds <= 10))
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'seconds must be a number in (0, 10]');
    return wrapNative(() => this.n.fmaPeak(seconds));
  }

  /** Compiles a program (a fixed list of kernel invocations); see {@link ProgramSpec}. */
  compile(spec: ProgramSpec): Program {
    objectArg(spec, 'spec');
    if (!Array.isArray(spec.buffers)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'buffers must be an array of typed arrays');
    if (!Array.isArray(spec.ops)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'ops must be an array');
    if (!(spec.params instanceof Int32Array)) throw new KernelError('KERNELS_BAD_ARGUMENT', 'params must be an Int32Array');
    count(spec.maxRows, spec.maxRows, 'maxRows');
    const native = wrapNative(() =>
      this.n.compile({ buffers: spec.buffers, params: spec.params, maxRows: spec.maxRows, ops: spec.ops.map(encodeOp) }),
    );
    return new Program(native);
  }

  /**
   * Reads one byte every `stride` over `bytes` bytes of a mapping, starting at `start` and
   * wrapping around (the benchmark's work-touch). Returns the seconds taken, where the next touch
   * starts, and the bytes that actually moved from memory: the distinct 64-byte cache lines the
   * reads landed in, times 64 (at a stride of 256 that is a quarter of the span).
   */
  touch(mapping: MappedFile, bytes: number, stride: number, start = 0): { seconds: number; next: number; bytesRead: number } {
    mappingArg(mapping);
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new KernelError('KERNELS_BAD_ARGUMENT', `bytes must be a non-negative integer`);
    count(stride, stride, 'stride');
    if (!Number.isSafeInteger(start) || start < 0) throw new KernelError('KERNELS_BAD_ARGUMENT', `start must be a non-negative integer`);
    const r = wrapNative(() => this.n.touch(mapping.native, bytes, stride, start));
    return { seconds: r.seconds, next: r.next, bytesRead: r.lines * 64 };
  }

  /** Stops the pool (after any async call in flight). Further calls throw KERNELS_CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    wrapNative(() => this.native.close());
  }
}

/** Reads [offset, offset + len) of the file into `memory` from its byte `at0` on, in 64 MiB pieces with four in flight. */
async function readInto(file: FileHandle, path: string, memory: MappedFile, offset: number, len: number, at0: number): Promise<void> {
  const piece = 64 * 1024 * 1024;
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < len && !failed) {
      const at = next;
      const n = Math.min(piece, len - at);
      next += n;
      const view = memory.view(at0 + at, n);
      for (let done = 0; done < n; ) {
        let got: number;
        try {
          ({ bytesRead: got } = await file.read(view, done, n - done, offset + at + done));
        } catch (e) {
          throw new KernelError(
            'KERNELS_MAP_FAILED',
            `${path}: read failed at byte ${offset + at + done} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
          );
        }
        if (got === 0)
          throw new KernelError(
            'KERNELS_MAP_FAILED',
            `${path}: the file ended at byte ${offset + at + done} while being read (was it truncated?)`,
          );
        done += got;
      }
    }
  };
  // Every read settles before the caller may free the memory they write into.
  const results = await Promise.allSettled(
    Array.from({ length: 4 }, () =>
      worker().catch((e: unknown) => {
        failed = true;
        throw e;
      }),
    ),
  );
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) throw (failure as PromiseRejectedResult).reason;
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch (e) {
    throw new KernelError('KERNELS_MAP_FAILED', `${path}: cannot stat (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
