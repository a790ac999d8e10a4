/**
 * The numbers the TypeScript side and the C++ side must agree on (native/layout/layout.h).
 * constants.test.ts compares them with what the built addon reports.
 */
export const KERNEL_CONSTANTS = {
  alignment: 64,
  q4SymmetricZero: 8,
  groupSizes: [32, 64, 128],
  weightTypes: { f32: 0, f16: 1, bf16: 2, i8: 3, q4: 4, q4_k: 5, q5_k: 6, q6_k: 7, iq4_nl: 8, mxfp4: 9 },
  scaleTypes: { f16: 0, bf16: 1, f32: 2 },
  kvTypes: { f32: 0, f16: 1 },
  /** A program op's `op` on the wire (native/program/ops.h's OpKind). */
  opKinds: {
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
    tap: 11,
  },
  /** How activations meet quantized weights (native/matmul/matmul.h's Activations). */
  activations: { f32: 0, int8: 1 },
  /** RoPE's pairing of a head's elements (native/cpu/kernel_table.h's RopeStyle). */
  ropeStyles: { adjacent: 0, rotate_half: 1 },
  blockQ4_0Bytes: 18,
  blockQ8_0Bytes: 34,
  /** The block types' elements and bytes per block (llama.cpp's blocks, byte for byte). */
  blockFormats: {
    q4_k: { elems: 256, bytes: 144 },
    q5_k: { elems: 256, bytes: 176 },
    q6_k: { elems: 256, bytes: 210 },
    iq4_nl: { elems: 32, bytes: 18 },
    mxfp4: { elems: 32, bytes: 17 },
  },
} as const;

export type WeightDtype = keyof typeof KERNEL_CONSTANTS.weightTypes;
export type BlockWeightDtype = keyof typeof KERNEL_CONSTANTS.blockFormats;
export type ScaleDtype = keyof typeof KERNEL_CONSTANTS.scaleTypes;
export type KvDtype = keyof typeof KERNEL_CONSTANTS.kvTypes;
export type OpName = keyof typeof KERNEL_CONSTANTS.opKinds;
export type ActivationDtype = keyof typeof KERNEL_CONSTANTS.activations;
export type RopeStyle = keyof typeof KERNEL_CONSTANTS.ropeStyles;
