/**
 * The handles a KernelContext gives out: a weight matrix bound to its bytes, a file mapping.
 * Their own module so that the program's op types (program-types.ts) can name WeightMatrix
 * without importing the context that compiles them.
 */
import type { NativeMapping, NativeMatrix } from './addon.js';
import { KernelError, wrapNative } from './errors.js';
import type { MatrixSpec } from './matrix-spec.js';

/** The native object behind a wrapper, or KERNELS_BAD_ARGUMENT for an object that only has a wrapper's prototype. */
export function nativeOf<T>(n: T, what: string): T {
  if (n === null || typeof n !== 'object') throw new KernelError('KERNELS_BAD_ARGUMENT', `not a ${what}`);
  return n;
}

/** A weight matrix bound to its bytes; create it with {@link KernelContext.matrix}. */
export class WeightMatrix {
  /** @internal */
  readonly native: NativeMatrix;

  /** @internal */
  private interleaved = false;

  /** @internal */
  private panels: number;

  /** @internal */
  constructor(
    native: NativeMatrix,
    readonly spec: MatrixSpec,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.native = native;
    this.panels = spec.layout?.block_k ?? 0;
  }

  /** The width of the K-panels the bytes are in now (the spec's `block_k`, or {@link reorderBlockedK}'s); 0 when rows are whole. */
  get blockK(): number {
    return this.panels;
  }

  /** How the kernels read the bytes now: as the spec says (`row_major`), or in 16-row records after {@link interleaveRows16}. */
  get layout(): 'row_major' | 'rows16' {
    return this.interleaved ? 'rows16' : 'row_major';
  }

  /**
   * Reorders the matrix's bytes in place into 16-row records (docs/architecture.md, *q4 in 16-row
   * records*, *IQ4_NL in 16-row records*, *Q4_K and Q6_K in 16-row records*, *Q5_K in 16-row records*, *i8 in 16-row records*), which the
   * int8-activation kernels read at up to twice the rate of rows (`KernelContext.info().q4Rows16`,
   * `iq4NlRows16`, `q4kRows16`, `q5kRows16`, `q6kRows16` and `i8Rows16` say when they pay on this CPU; without SIMD kernels the
   * records run the scalar reference). For a symmetric, grouped q4 matrix, an iq4_nl, q4_k, q5_k or q6_k one, or
   * an i8 one (rows of whole 32-column blocks) with a multiple of 16 rows, not K-blocked (`rows16Unfit` says why not, else
   * KERNELS_BAD_MATRIX). The bytes are rewritten: nothing else may read them as the spec's rows
   * afterwards (a matrix over a mapping writes its private pages, never the file).
   */
  interleaveRows16(): void {
    wrapNative(() => nativeOf(this.native, 'WeightMatrix').interleaveRows16());
    this.interleaved = true;
  }

  /**
   * Reorders the matrix's bytes in place into K-panels of `blockK` columns: the layout of an IEBIN
   * tensor with `block_k` = blockK (docs/iebin.md, *Blocked-K*). Each panel streams with its slice
   * of x resident in L1, where a long row's x is not (`preferredBlockK` gives the width that pays).
   * For a row-major f32/f16/bf16/i8/q4 matrix, not K-blocked, blockK a positive multiple of 64 and of
   * the group size (`blockedKUnfit` says why not, else KERNELS_BAD_MATRIX). Results change only in
   * the order of the float additions. The bytes are rewritten: nothing else may read them as the
   * spec's rows afterwards (a matrix over a mapping writes its private pages, never the file).
   */
  reorderBlockedK(blockK: number): void {
    wrapNative(() => nativeOf(this.native, 'WeightMatrix').reorderBlockedK(blockK));
    this.panels = blockK;
  }

  /**
   * Releases the weights' buffer (or mapping) now rather than at garbage collection; later use
   * throws KERNELS_CLOSED. While an async operation (gemmAsync, Program.runAsync) uses the
   * matrix, the bytes are released when that operation ends.
   */
  dispose(): void {
    wrapNative(() => nativeOf(this.native, 'WeightMatrix').dispose());
  }
}

/**
 * An mmap of a file region; `bytes` and {@link view} are zero-copy views. The file is never
 * written: the mapping is private (copy-on-write), so a write through a view changes this
 * process's copy of that page only (and whatever matrix reads it), never the file, and cannot
 * fault. Treat the views as read-only.
 */
export class MappedFile {
  /** @internal */
  readonly native: NativeMapping;
  /** Bytes of this memory that are the file's own pages in place of a copy (`KernelContext.loadFile`'s `mapped` option); 0 otherwise. */
  fileBackedBytes = 0;

  /** @internal */
  constructor(native: NativeMapping) {
    this.native = native;
  }
  /** The whole mapping as one ArrayBuffer (KERNELS_MAP_TOO_LARGE past 4 GiB: use {@link view}). */
  get buffer(): ArrayBuffer {
    const b = wrapNative(() => nativeOf(this.native, 'MappedFile').buffer);
    if (!b) throw new KernelError('KERNELS_CLOSED', 'the mapping is closed');
    return b;
  }
  /** The whole mapping as a Uint8Array (see {@link buffer}); writes stay private to this process. */
  get bytes(): Uint8Array {
    return new Uint8Array(this.buffer);
  }
  /** Bytes mapped. */
  get length(): number {
    return wrapNative(() => nativeOf(this.native, 'MappedFile').length);
  }
  /** A zero-copy view of [offset, offset + length) of the mapping (at most 4 GiB - 1). */
  view(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
      throw new KernelError('KERNELS_BAD_ARGUMENT', 'offset and length must be non-negative integers');
    return new Uint8Array(wrapNative(() => nativeOf(this.native, 'MappedFile').view(offset, length)));
  }
  get hugePages(): boolean {
    return wrapNative(() => nativeOf(this.native, 'MappedFile').hugePages);
  }
  get hugePagesDetail(): string {
    return wrapNative(() => nativeOf(this.native, 'MappedFile').hugePagesDetail);
  }
  /** Detaches `buffer` and every view at once; the memory is unmapped when no matrix, program or running operation uses it any more. */
  close(): void {
    wrapNative(() => nativeOf(this.native, 'MappedFile').close());
  }
}
