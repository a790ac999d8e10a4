/**
 * Programs: a fixed list of kernel invocations over fixed buffers, compiled once (a model's
 * decode step, its prefill step) and run many times, synchronously or on a worker thread.
 * Integers that change between runs — the position, the number of rows, token ids — live in
 * an Int32Array of params that the program reads when it runs. The C++ side checks every view
 * against the declared maxima when compiling and every param when running.
 */
import type { NativeProgram } from './addon.js';
import { KERNEL_CONSTANTS, type OpName } from './constants.js';
import { KernelError, asKernelError } from './errors.js';
import type { ProgramOp } from './program-types.js';

/** The native Matrix of a WeightMatrix (the addon checks its type tag; a spoof is refused there). */
function nat(m: unknown, what: string): unknown {
  if (m === null || typeof m !== 'object' || !('native' in m))
    throw new KernelError('KERNELS_BAD_ARGUMENT', `${what} must be a WeightMatrix`);
  return (m as { native: unknown }).native;
}

function kvType(t: unknown): number {
  if (t !== 'f32' && t !== 'f16') throw new KernelError('KERNELS_BAD_ARGUMENT', 'kvType must be f32 or f16');
  return KERNEL_CONSTANTS.kvTypes[t];
}

function list(a: unknown, what: string): unknown[] {
  if (!Array.isArray(a)) throw new KernelError('KERNELS_BAD_ARGUMENT', `${what} must be an array of WeightMatrix`);
  return a.map((m) => nat(m, `${what}[]`));
}

const activations = (a: unknown): number => KERNEL_CONSTANTS.activations[a === 'int8' ? 'int8' : 'f32'];

type Encoders = { [K in OpName]: (o: Extract<ProgramOp, { op: K }>) => Record<string, unknown> };

/**
 * Each op's fields as the native side reads them: the same names, with what only JavaScript has
 * turned into numbers (a WeightMatrix into its native Matrix, strings into the wire enums of
 * KERNEL_CONSTANTS) and the defaults filled in. Every value is checked natively.
 */
const ENCODERS: Encoders = {
  embed: (o) => ({ matrix: nat(o.matrix, 'embed.matrix'), out: o.out, idsSlot: o.idsSlot }),
  rmsnorm: (o) => ({ x: o.x, weight: o.weight, out: o.out, n: o.n, eps: o.eps }),
  matmul: (o) => ({
    matrix: nat(o.matrix, 'matmul.matrix'),
    x: o.x,
    out: o.out,
    activations: activations(o.activations),
    lastRowOnly: o.lastRowOnly ? 1 : 0,
  }),
  add: (o) => ({ a: o.a, b: o.b, out: o.out, n: o.n }),
  swiglu: (o) => ({ gate: o.gate, up: o.up, out: o.out, n: o.n }),
  rope: (o) => ({
    x: o.x,
    cos: o.cos,
    sin: o.sin,
    heads: o.heads,
    headDim: o.headDim,
    capacity: o.capacity,
    style: KERNEL_CONSTANTS.ropeStyles[o.style === 'adjacent' ? 'adjacent' : 'rotate_half'],
    posSlot: o.posSlot,
    seqSlot: o.seqSlot,
  }),
  store: (o) => ({
    x: o.x,
    cache: o.cache,
    n: o.n,
    kvType: kvType(o.kvType),
    capacity: o.capacity,
    slots: o.slots,
    positions: o.positions,
    posSlot: o.posSlot,
    seqSlot: o.seqSlot,
  }),
  attention: (o) => ({
    q: o.q,
    k: o.k,
    v: o.v,
    out: o.out,
    heads: o.heads,
    kvHeads: o.kvHeads,
    headDim: o.headDim,
    kvType: kvType(o.kvType),
    capacity: o.capacity,
    slots: o.slots,
    posSlot: o.posSlot,
    seqSlot: o.seqSlot,
    window: o.window ?? 0,
    positions: o.positions,
    scale: o.scale ?? (typeof o.headDim === 'number' ? 1 / Math.sqrt(o.headDim) : undefined),
    sinks: o.sinks,
  }),
  moe: (o) => {
    const s = o.scratch;
    if (s === null || typeof s !== 'object') throw new KernelError('KERNELS_BAD_ARGUMENT', 'moe.scratch must be an object');
    return {
      x: o.x,
      router: o.router,
      out: o.out,
      gate: list(o.gate, 'moe.gate'),
      up: list(o.up, 'moe.up'),
      down: list(o.down, 'moe.down'),
      gateBias: o.gateBias,
      upBias: o.upBias,
      downBias: o.downBias,
      topK: o.topK,
      limit: o.limit,
      alpha: o.alpha,
      activations: activations(o.activations),
      scratch: { x: s.x, gate: s.gate, up: s.up, y: s.y },
    };
  },
  argmax: (o) => ({ x: o.x, n: o.n, outSlot: o.outSlot }),
  gather: (o) => ({ x: o.x, out: o.out, n: o.n, rowsSlot: o.rowsSlot }),
  tap: (o) => ({ x: o.x, out: o.out, n: o.n }),
};

/** The native encoding of an op. */
export function encodeOp(o: ProgramOp): Record<string, unknown> {
  if (o === null || typeof o !== 'object' || typeof o.op !== 'string' || !Object.hasOwn(ENCODERS, o.op))
    throw new KernelError('KERNELS_BAD_ARGUMENT', `an op must be an object whose op is one of ${Object.keys(ENCODERS).join(', ')}`);
  const rows = { mSlot: 'mSlot' in o ? o.mSlot : undefined, maxRows: 'maxRows' in o ? o.maxRows : undefined };
  const encode = ENCODERS[o.op] as (o: ProgramOp) => Record<string, unknown>;
  return { kind: KERNEL_CONSTANTS.opKinds[o.op], ...rows, ...encode(o) };
}

function nativeProgram(n: NativeProgram): NativeProgram {
  if (n === null || typeof n !== 'object') throw new KernelError('KERNELS_BAD_ARGUMENT', 'not a Program');
  return n;
}

export class Program {
  /** @internal */
  readonly native: NativeProgram;
  /** @internal */
  constructor(native: NativeProgram) {
    this.native = native;
  }
  /** Number of ops. */
  get size(): number {
    try {
      return nativeProgram(this.native).size;
    } catch (e) {
      throw asKernelError(e);
    }
  }
  /** Runs every op on the calling thread (with the pool). */
  run(): void {
    try {
      nativeProgram(this.native).run();
    } catch (e) {
      throw asKernelError(e);
    }
  }
  /**
   * Runs on a libuv worker thread; the JavaScript thread stays free. Params and buffers must
   * not change until it settles. Its buffers are pinned for the program's life (a transfer
   * cannot free memory it writes; a run then rejects with KERNELS_DETACHED), and a matrix
   * disposed meanwhile is released when the run ends.
   */
  async runAsync(): Promise<void> {
    try {
      await nativeProgram(this.native).runAsync();
    } catch (e) {
      throw asKernelError(e);
    }
  }
}
