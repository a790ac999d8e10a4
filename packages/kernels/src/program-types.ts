/**
 * The types of a program's spec (see program.ts): its buffers and params, and its ops, each
 * with its fields named as the native side names them (native/program/ops.h).
 */
import type { ActivationDtype, KvDtype, RopeStyle } from './constants.js';
import type { WeightMatrix } from './handles.js';

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
 * position t is cache row kvCacheRow(s, t, capacity). A store/attention pair over a sliding
 * window may give `positions` above `capacity` (the positions a slot runs through): the cache is
 * then a ring, position t in row t mod capacity, and `capacity` must be at least window + the
 * op's rows - 1 (a chunk's writes never reach a position its first query still sees).
 */
export type Place = { posSlot: number; seqSlot?: undefined } | { seqSlot: number; posSlot?: undefined };
export type ProgramOp =
  | ({ op: 'embed'; matrix: WeightMatrix; out: View; idsSlot: number } & Rows)
  | ({ op: 'rmsnorm'; x: View; weight: View; out: View; n: number; eps: number } & Rows)
  | ({ op: 'matmul'; matrix: WeightMatrix; x: View; out: View; activations?: ActivationDtype; lastRowOnly?: boolean } & Rows)
  | ({ op: 'add'; a: View; b: View; out: View; n: number } & Rows)
  | ({ op: 'swiglu'; gate: View; up: View; out: View; n: number } & Rows)
  | ({
      op: 'rope';
      x: View;
      cos: View;
      sin: View;
      heads: number;
      headDim: number;
      style: RopeStyle;
      capacity: number;
    } & Place &
      Rows)
  | ({ op: 'store'; x: View; cache: View; n: number; kvType: KvDtype; capacity: number; slots?: number; positions?: number } & Place & Rows)
  | ({
      op: 'attention';
      q: View;
      k: View;
      v: View;
      out: View;
      heads: number;
      kvHeads: number;
      headDim: number;
      kvType: KvDtype;
      capacity: number;
      /** KV slots in the arena (seqSlot only); default 1. */
      slots?: number;
      window?: number;
      /** Positions a slot runs through when the cache is a ring (see Place); default capacity. */
      positions?: number;
      scale?: number;
      sinks?: View;
    } & Place &
      Rows)
  | ({ op: 'moe' } & MoeOp & Rows)
  /** The index of each row's largest element, into params[outSlot + i] (one row without mSlot). */
  | ({ op: 'argmax'; x: View; n: number; outSlot: number } & Rows)
  /** Row i of `out` = row params[rowsSlot + i] of `x` (the rows whose logits a step needs). */
  | ({ op: 'gather'; x: View; out: View; n: number; rowsSlot: number } & Rows)
  /** Row i of `out` = the first n elements of row i of `x`: a copy taken mid-program (calibration captures a projection's input). */
  | ({ op: 'tap'; x: View; out: View; n: number } & Rows);

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
  activations?: ActivationDtype;
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

/** KV cache row of (slot, position) in an arena of slots of `capacity` positions each (one cache: slot 0); native/program/ops.h has the same. */
export function kvCacheRow(slot: number, position: number, capacity: number): number {
  return slot * capacity + (position % capacity);
}
