import { constants } from 'node:buffer';
import { loadAddon } from './addon.js';
import { KernelError, show, wrapNative } from './errors.js';

/**
 * A zero-filled `Uint8Array` of `byteLength` bytes whose first byte sits on a 64-byte boundary,
 * for weights made in memory (a matrix converted or quantized at load, a benchmark's random
 * matrices). A JavaScript `ArrayBuffer` starts 16 bytes into a cache line, so every full-vector
 * load of a matrix held in one splits two lines and the GEMVs stream up to a third slower than
 * from a mapped model file, whose tensors are 64-byte aligned. The memory is freed when the
 * array is garbage-collected.
 */
export function alignedBytes(byteLength: number): Uint8Array {
  if (!Number.isSafeInteger(byteLength) || byteLength < 0 || byteLength > constants.MAX_LENGTH)
    throw new KernelError(
      'KERNELS_BAD_ARGUMENT',
      `alignedBytes: byteLength must be an integer from 0 to ${constants.MAX_LENGTH}, got ${show(byteLength)}`,
    );
  return wrapNative(() => loadAddon().alignedBytes(byteLength));
}
