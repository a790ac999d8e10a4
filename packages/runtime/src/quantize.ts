/**
 * `ie quantize`: a policy becomes an expanded manifest, measured on the real model. The stages,
 * each in calibrate/: the policy planned against the model (plan.ts); the calibration text cut
 * into sequences (sequences.ts); the FP model (as stored) run over them while every projection's
 * input is captured (capture.ts); activation-aware scales searched per input site (awq.ts); each
 * tensor packed per its plan and judged by cosine and SNR of W·x (judge.ts); the whole quantized
 * model run over the same text and its next-token distributions compared with the FP model's
 * (e2e.ts); the verdict and the manifest (manifest.ts). The arithmetic lives in @ie/quant; the
 * stages drive it because they need the engine. Deterministic: the same model, policy, text and
 * ISA give byte-identical manifests.
 */
import type { ContextOptions } from '@ie/kernels';
import { ClipSearchPool, type EndToEnd, type ExpandedManifest, type LoadedManifest } from '@ie/quant';
import { searchScales } from './calibrate/awq.js';
import { calibrationModel } from './calibrate/bind.js';
import { GATE_ROWS, LOGITS_BUDGET_BYTES, captureActivations, logitsFit } from './calibrate/capture.js';
import { measureEndToEnd } from './calibrate/e2e.js';
import { packAndJudge } from './calibrate/judge.js';
import { buildManifest } from './calibrate/manifest.js';
import { planModel, policyOf } from './calibrate/plan.js';
import { calibrationSequences } from './calibrate/sequences.js';
import type { QuantizeProgress } from './calibrate/types.js';
import { openMapped } from './load.js';

export { AWQ_ALPHAS, SEARCH_ROWS } from './calibrate/awq.js';
export { GATE_ROWS, LOGITS_BUDGET_BYTES } from './calibrate/capture.js';

export interface QuantizeModelOptions {
  policy: LoadedManifest;
  /** The calibration text and the name to record for it. */
  calibration: { text: string; file: string };
  context?: ContextOptions;
  /** Keep the FP logits for the end-to-end comparison up to this many bytes (default 256 MiB); past it the FP model runs a second time instead. */
  logitsBudgetBytes?: number;
  onProgress?: (p: QuantizeProgress) => void;
}

export interface QuantizeResult {
  manifest: ExpandedManifest;
  /** The manifest as written: canonical JSON, two-space indent, trailing newline. */
  json: string;
  accepted: boolean;
  failures: string[];
  endToEnd: EndToEnd;
  /** Bytes of weights a decoded token streams, FP model vs quantized. */
  bytesPerToken: { before: number; after: number };
  calibrationTokens: number;
}

/** Quantizes a model per policy and judges it; see the file comment. */
export async function quantizeModel(modelDir: string, o: QuantizeModelOptions): Promise<QuantizeResult> {
  const policy = policyOf(o.policy);
  const mapped = await openMapped(modelDir, { context: o.context });
  const pool = new ClipSearchPool({ threads: o.context?.threads });
  const progress = o.onProgress ?? (() => {});
  try {
    const { reader, ctx } = mapped;
    const c = reader.config;
    const model = planModel(policy, reader, o.policy.file);
    const cal = await calibrationSequences(reader, policy, o.calibration);
    const fp = calibrationModel(mapped, cal.seqLen, { capture: true });
    const keepLogits = logitsFit(cal.tokens, c.vocab_size, o.logitsBudgetBytes ?? LOGITS_BUDGET_BYTES);
    const { sites, gateN, fpLogits } = captureActivations(fp.forward, cal.seqs, { gateRows: GATE_ROWS, keepLogits, progress });
    const measured = { ctx, reader, fp: fp.weights.matrices, sites, gateN, pool, progress };
    const search = await searchScales({ ...measured, planOf: model.planOf });
    const judged = await packAndJudge({ ...measured, plans: model.plans, search });
    const q = calibrationModel(mapped, cal.seqLen, { capture: false, overrides: judged.overrides });
    let endToEnd: EndToEnd;
    try {
      endToEnd = measureEndToEnd(fp.forward, q.forward, cal.seqs, fpLogits, progress);
    } finally {
      for (const m of q.weights.matrices.values()) m.dispose();
    }
    const { manifest, json, failures } = buildManifest({
      policy: { loaded: o.policy, manifest: policy },
      config: c,
      tensors: reader.tensors,
      model,
      planOf: judged.planOf,
      quality: judged.quality,
      alphas: search.alphas,
      scales: search.scales,
      endToEnd,
      calibration: { ...o.calibration, sequences: cal.seqs.length, tokens: cal.tokens },
    });
    const bytesPerToken = { before: fp.weights.bytesPerToken, after: q.weights.bytesPerToken };
    return { manifest, json, accepted: failures.length === 0, failures, endToEnd, bytesPerToken, calibrationTokens: cal.tokens };
  } finally {
    await pool.close();
    await mapped.close();
  }
}
