/**
 * Programs: a fixed list of kernel invocations over fixed buffers, compiled once (a model's
 * decode step, its prefill step) and run many times, synchronously or on a worker thread.
 * Integers that change between runs — the position, the number of rows, token ids — live in
 * an Int32Array of params that the program reads when it runs. The C++ side checks every view
 * against the declared maxima when compiling and every param when running.
 */
import type { NativeProgram } from './addon.js';
import type { WeightMatrix } from './context.js';
import { KERNEL_CONSTANTS } from './constants.js';
import { KernelError, asKernelError } from './errors.js';

/** Rows of a buffer: `[buffer index, element offset, elements between rows]` (stride 0: one row shared by all). */
export type View = readonly [buffer: number, offset: number, stride: number];

export interface Rows {
  /** Param slot holding the number of rows (tokens) of this run; default 1. */
  mSlot?: number;
  /** This op's largest row count, when below the program's maxRows (its views then need only that many rows). */
  maxRows?: number;
}

/**
 * Where RoPE, the KV store and attention find each row's place: `posSlot`, one start position for
 * rows at consecutive positions of one sequence; or `seqSlot`, a (KV slot, position) pair per row
 * at params[seqSlot + 2i] and params[seqSlot + 2i + 1] (rows of several sequences in one run).
 * With seqSlot, a cache is an arena of `slots` slots of `capacity` positions each: slot s's
 * position t is cache row s * capacity + t.
 */
export type Place = { posSlot: number; seqSlot?: undefined } | { seqSlot: number; posSlot?: undefined };
export type ProgramOp =
  | ({ op: 'embed'; matrix: WeightMatrix; out: View; idsSlot: number } & Rows)
  | ({ op: 'rmsnorm'; x: View; weight: View; out: View; n: number; eps: number } & Rows)
  | ({ op: 'matmul'; matrix: WeightMatrix; x: View; out: View; activations?: 'f32' | 'int8'; lastRowOnly?: boolean } & Rows)
  | ({ op: 'add'; a: View; b: View; out: View; n: number } & Rows)
  | ({ op: 'swiglu'; gate: View; up: View; out: View; n: number } & Rows)
  | ({
      op: 'rope';
      x: View;
      cos: View;
      sin: View;
      heads: number;
      headDim: number;
      style: 'adjacent' | 'rotate_half';
      capacity: number;
    } & Place &
      Rows)
  | ({ op: 'store'; x: View; cache: View; n: number; kvType: 'f32' | 'f16'; capacity: number; slots?: number } & Place & Rows)
  | ({
      op: 'attention';
      q: View;
      k: View;
      v: View;
      out: View;
      heads: number;
      kvHeads: number;
      headDim: number;
      kvType: 'f32' | 'f16';
      capacity: number;
      /** KV slots in the arena (seqSlot only); default 1. */
      slots?: number;
      window?: number;
      scale?: number;
      sinks?: View;
    } & Place &
      Rows)
  | ({ op: 'moe' } & MoeOp & Rows)
  /** The index of each row's largest element, into params[outSlot + i] (one row without mSlot). */
  | ({ op: 'argmax'; x: View; n: number; outSlot: number } & Rows)
  /** Row i of `out` = row params[rowsSlot + i] of `x` (the rows whose logits a step needs). */
  | ({ op: 'gather'; x: View; out: View; n: number; rowsSlot: number } & Rows);

/**
 * A mixture-of-experts FFN (gpt-oss): per row, the top `topK` of the router's logits (ties to the
 * lowest expert), softmax over the chosen; each chosen expert e computes
 * `down_e(swiglu_clamped(gate_e x + gb_e, up_e x + ub_e)) + db_e` and `out` gains its weighted
 * sum. Only chosen experts' matrices are read; the rows choosing an expert are gathered and
 * multiplied at once (prefill reads each expert once per chunk). `clamped SwiGLU`: g = min(g,
 * limit), u = clamp(u, -limit, limit), g * sigmoid(alpha g) * (u + 1).
 */
export interface MoeOp {
  /** Rows of the FFN's input (width: the matrices' K). */
  x: View;
  /** Rows of router logits (bias included), `experts` wide. */
  router: View;
  /** Rows the weighted expert outputs are added to. */
  out: View;
  gate: WeightMatrix[];
  up: WeightMatrix[];
  down: WeightMatrix[];
  /** Per-expert biases: expert e's row e of these views. */
  gateBias: View;
  upBias: View;
  downBias: View;
  topK: number;
  limit: number;
  alpha: number;
  activations?: 'f32' | 'int8';
  /** Scratch rows (maxRows each): gathered inputs, gate and up outputs, expert outputs. */
  scratch: { x: View; gate: View; up: View; y: View };
}

export interface ProgramSpec {
  buffers: Array<Float32Array | Uint16Array>;
  params: Int32Array;
  /** Largest number of rows any run will use. */
  maxRows: number;
  ops: ProgramOp[];
}

const KINDS = {
  embed: 0,
  rmsnorm: 1,
  matmul: 2,
  add: 3,
  rope: 4,
  store: 5,
  attention: 6,
  swiglu: 7,
  argmax: 8,
  moe: 9,
  gather: 10,
} as const;

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
  return a;
}

/** The native encoding of an op. */
export function encodeOp(o: ProgramOp): Record<string, unknown> {
  if (o === null || typeof o !== 'object' || typeof o.op !== 'string' || !Object.hasOwn(KINDS, o.op))
    throw new KernelError('KERNELS_BAD_ARGUMENT', `an op must be an object whose op is one of ${Object.keys(KINDS).join(', ')}`);
  const base = { kind: KINDS[o.op], mSlot: 'mSlot' in o ? o.mSlot : undefined, maxRows: 'maxRows' in o ? o.maxRows : undefined };
  switch (o.op) {
    case 'embed':
      return { ...base, matrix: nat(o.matrix, `${o.op}.matrix`), out: o.out, idsSlot: o.idsSlot };
    case 'rmsnorm':
      return { ...base, a: o.x, b: o.weight, out: o.out, n: o.n, eps: o.eps };
    case 'matmul':
      return {
        ...base,
        matrix: nat(o.matrix, `${o.op}.matrix`),
        a: o.x,
        out: o.out,
        activations: o.activations === 'int8' ? 1 : 0,
        lastRowOnly: o.lastRowOnly ? 1 : 0,
      };
    case 'add':
      return { ...base, a: o.a, b: o.b, out: o.out, n: o.n };
    case 'swiglu':
      return { ...base, a: o.gate, b: o.up, out: o.out, n: o.n };
    case 'rope':
      return {
        ...base,
        out: o.x,
        a: o.cos,
        b: o.sin,
        heads: o.heads,
        headDim: o.headDim,
        style: o.style === 'adjacent' ? 0 : 1,
        capacity: o.capacity,
        posSlot: o.posSlot,
        seqSlot: o.seqSlot,
      };
    case 'store':
      return {
        ...base,
        a: o.x,
        out: o.cache,
        n: o.n,
        kvType: kvType(o.kvType),
        capacity: o.capacity,
        slots: o.slots,
        posSlot: o.posSlot,
        seqSlot: o.seqSlot,
      };
    case 'attention':
      return {
        ...base,
        a: o.q,
        b: o.k,
        c: o.v,
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
        scale: o.scale ?? (typeof o.headDim === 'number' ? 1 / Math.sqrt(o.headDim) : undefined),
        sinks: o.sinks,
      };
    case 'moe':
      if (o.scratch === null || typeof o.scratch !== 'object')
        throw new KernelError('KERNELS_BAD_ARGUMENT', 'moe.scratch must be an object');
      return {
        ...base,
        a: o.x,
        b: o.router,
        out: o.out,
        gates: list(o.gate, 'moe.gate').map((m) => nat(m, 'moe.gate[]')),
        ups: list(o.up, 'moe.up').map((m) => nat(m, 'moe.up[]')),
        downs: list(o.down, 'moe.down').map((m) => nat(m, 'moe.down[]')),
        gateBias: o.gateBias,
        upBias: o.upBias,
        downBias: o.downBias,
        topK: o.topK,
        limit: o.limit,
        alpha: o.alpha,
        activations: o.activations === 'int8' ? 1 : 0,
        xs: o.scratch.x,
        gs: o.scratch.gate,
        us: o.scratch.up,
        ys: o.scratch.y,
      };
    case 'argmax':
      return { ...base, a: o.x, n: o.n, outSlot: o.outSlot };
    case 'gather':
      return { ...base, a: o.x, out: o.out, n: o.n, idsSlot: o.rowsSlot };
  }
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
