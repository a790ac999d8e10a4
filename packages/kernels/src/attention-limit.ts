import { loadAddon } from './addon.js';
import { KernelError, show, wrapNative } from './errors.js';

/** The shape of one attention op, as `attentionMaxPositions` sizes it. */
export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
  /** The sliding window (0: every position). */
  window: number;
  /** The most query rows one run carries (a program's maxRows). */
  queries: number;
}

/**
 * The longest context (positions) whose attention scratch fits a thread's limit (1 GiB) for
 * this shape: `compile()` refuses an attention op over more positions with
 * KERNELS_BAD_ARGUMENT, so a caller that sizes a context checks it first and can name the
 * largest that works. 2^31 - 1 where the window bounds the span.
 */
export function attentionMaxPositions(shape: AttentionShape): number {
  for (const [key, min] of [
    ['heads', 1],
    ['kvHeads', 1],
    ['headDim', 1],
    ['window', 0],
    ['queries', 1],
  ] as const) {
    const v = shape[key];
    if (!Number.isSafeInteger(v) || v < min || v > 2 ** 31 - 1)
      throw new KernelError(
        'KERNELS_BAD_ARGUMENT',
        `attentionMaxPositions: ${key} must be an integer from ${min} to 2^31 - 1, got ${show(v)}`,
      );
  }
  const { heads, kvHeads, headDim, window, queries } = shape;
  return wrapNative(() => loadAddon().attentionMaxPositions(heads, kvHeads, headDim, window, queries));
}
