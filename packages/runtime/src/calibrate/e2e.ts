/**
 * Stage 5: the whole quantized model over the calibration sequences beside the FP model: per
 * position, KL(P_FP ‖ P_quant) of the next-token distributions and whether their top tokens agree.
 */
import { EndToEndMeter, type EndToEnd } from '@ie/quant';
import type { Forward } from '../forward.js';
import type { ProgressFn } from './types.js';

/**
 * Runs `quantized` over `seqs` and compares every position's logits with the FP model's: the ones
 * the calibration run kept (`fpLogits`, every position in order), or, when it kept none, a fresh
 * run of `fp` per sequence.
 */
export function measureEndToEnd(
  fp: Forward,
  quantized: Forward,
  seqs: readonly number[][],
  fpLogits: readonly Float32Array[] | null,
  progress: ProgressFn,
): EndToEnd {
  const V = fp.config.vocab_size;
  const row = (l: Float32Array, r: number) => l.subarray(r * V, (r + 1) * V);
  const meter = new EndToEndMeter();
  let at = 0;
  for (let i = 0; i < seqs.length; i++) {
    if (!fpLogits) fp.runSync(seqs[i], 0);
    quantized.runSync(seqs[i], 0);
    for (let r = 0; r < seqs[i].length; r++) meter.add(fpLogits ? fpLogits[at++] : row(fp.logits, r), row(quantized.logits, r));
    progress({ stage: 'judging', done: i + 1, total: seqs.length });
  }
  return meter.result();
}
