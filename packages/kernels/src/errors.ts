/** Errors from @ie/kernels carry a stable `code`; the message says what to do next. */
export const KERNEL_ERROR_CODES = {
  KERNELS_NOT_BUILT: 'the native addon has not been built',
  KERNELS_STALE_BUILD: 'the native addon is older than its sources',
  KERNELS_LOAD_FAILED: 'the native addon could not be loaded',
  KERNELS_UNSUPPORTED_PLATFORM: 'the kernels do not run on this platform',
  KERNELS_BAD_OPTION: 'a context option (threads, affinity, numa, isa) is invalid',
  KERNELS_BAD_ARGUMENT: 'an argument has the wrong type, length or value',
  KERNELS_BAD_MATRIX: 'a matrix descriptor does not describe its bytes',
  KERNELS_MISALIGNED: 'data is not aligned as the kernels need',
  KERNELS_CLOSED: 'the context or mapping was closed',
  KERNELS_DETACHED: 'a buffer was detached while in use',
  KERNELS_MAP_FAILED: 'a file could not be memory-mapped or read into memory',
  KERNELS_OUT_OF_MEMORY: 'memory could not be allocated',
  KERNELS_BUSY: 'the program is already running',
  KERNELS_MAP_TOO_LARGE: 'a mapping is too large for a single JavaScript view',
} as const;
export type KernelErrorCode = keyof typeof KERNEL_ERROR_CODES;

export class KernelError extends Error {
  override readonly name = 'KernelError';
  constructor(
    readonly code: KernelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Native errors carry a `code` property; wrap them so callers see one error class. */
export function wrapNative<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw asKernelError(e);
  }
}

export function asKernelError(e: unknown): unknown {
  if (e instanceof KernelError) return e;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === 'string' && code in KERNEL_ERROR_CODES)
    return new KernelError(code as KernelErrorCode, (e as Error).message, { cause: e });
  return e;
}

/** A value for an error message; never throws (no toString or valueOf of the caller's objects runs). */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}...` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'undefined') return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null) return 'null';
  try {
    return `a ${Object.prototype.toString.call(v).slice(8, -1)}`;
  } catch {
    return `a ${typeof v}`;
  }
}
