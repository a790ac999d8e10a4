/**
 * The model as the calibration run uses it, written once for the FP model and the quantized
 * candidate: the opened model's weights (optionally with some tensors replaced) compiled as a
 * forward pass that gives logits for every row of a chunk, in FP32, one sequence per chunk.
 */
import { Forward } from '../forward.js';
import type { MappedModel } from '../load.js';
import { bindWeights, type ModelWeights, type WeightOverrides } from '../weights.js';

export interface CalibrationModel {
  weights: ModelWeights;
  forward: Forward;
}

/** Binds `mapped`'s weights (with `overrides` in place of the file's) for sequences of up to `seqLen` positions; `capture` keeps every projection's input. */
export function calibrationModel(
  mapped: Pick<MappedModel, 'ctx' | 'reader' | 'mapping'>,
  seqLen: number,
  o: { capture: boolean; overrides?: WeightOverrides },
): CalibrationModel {
  const { ctx, reader, mapping } = mapped;
  const weights = bindWeights(ctx, reader, mapping, undefined, o.overrides);
  const forward = new Forward(ctx, reader.config, weights, {
    contextLength: seqLen,
    kvCache: 'f32',
    maxBatch: seqLen,
    activations: 'f32',
    calibration: { capture: o.capture },
  });
  return { weights, forward };
}
