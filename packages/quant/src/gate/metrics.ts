/**
 * The calibration gate's arithmetic, in float64: per tensor, how close W·x stays (cosine
 * similarity and SNR of the quantized outputs against the FP32 ones over the calibration
 * activations); end to end, how close the next-token distributions stay (KL divergence and
 * top-1 agreement); and the verdict against the thresholds.
 */
import type { GateThresholds } from '../manifest/schema.js';

export interface OutputQuality {
  cosine: number;
  snr_db: number;
}

/** Cosine similarity and SNR (dB) of `test` against `ref`, over all elements. */
export function outputQuality(ref: Float32Array, test: Float32Array): OutputQuality {
  if (ref.length !== test.length) throw new RangeError(`lengths differ: ${ref.length} vs ${test.length}`);
  let dot = 0;
  let rr = 0;
  let tt = 0;
  let ee = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i];
    const t = test[i];
    dot += r * t;
    rr += r * r;
    tt += t * t;
    ee += (r - t) * (r - t);
  }
  const cosine = rr === 0 || tt === 0 ? (rr === tt ? 1 : 0) : dot / Math.sqrt(rr * tt);
  const snr_db = ee === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(rr / ee);
  return { cosine, snr_db };
}

function logSoftmax(logits: Float32Array): Float64Array {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > m) m = logits[i];
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i] - m);
  const lse = m + Math.log(s);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

function argmax(v: Float32Array): number {
  let b = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
  return b;
}

/** KL(P_ref ‖ P_test) of the softmax distributions of two logit vectors, in nats. */
export function klDivergence(refLogits: Float32Array, testLogits: Float32Array): number {
  const lp = logSoftmax(refLogits);
  const lq = logSoftmax(testLogits);
  let kl = 0;
  for (let i = 0; i < lp.length; i++) {
    const p = Math.exp(lp[i]);
    if (p !== 0) kl += p * (lp[i] - lq[i]);
  }
  // Rounding can leave a tiny negative; NaN (non-finite logits) stays NaN through Math.max.
  return Math.max(0, kl);
}

export interface EndToEnd {
  kl_mean: number;
  kl_max: number;
  top1: number;
  positions: number;
}

/** Accumulates per-position KL and top-1 agreement. */
export class EndToEndMeter {
  private sum = 0;
  private max = 0;
  private agree = 0;
  private n = 0;

  add(refLogits: Float32Array, testLogits: Float32Array): void {
    const kl = klDivergence(refLogits, testLogits);
    this.sum += kl;
    this.max = Math.max(this.max, kl);
    if (argmax(refLogits) === argmax(testLogits)) this.agree++;
    this.n++;
  }

  result(): EndToEnd {
    return { kl_mean: this.n ? this.sum / this.n : 0, kl_max: this.max, top1: this.n ? this.agree / this.n : 1, positions: this.n };
  }
}

/** Whether one tensor's quality meets the per-tensor thresholds. */
export function tensorPasses(q: OutputQuality, t: GateThresholds): boolean {
  return q.cosine >= t.min_cosine && q.snr_db >= t.min_snr_db;
}

/** Everything that misses a threshold, as sentences; empty when the gate passes. */
export function gateFailures(
  tensors: ReadonlyArray<{ name: string; quality: OutputQuality | null }>,
  e2e: EndToEnd | null,
  t: GateThresholds,
): string[] {
  const out: string[] = [];
  // Written as !(x >= t) so that NaN (a broken model) fails every threshold.
  for (const x of tensors) {
    if (!x.quality) continue;
    if (!(x.quality.cosine >= t.min_cosine)) out.push(`${x.name}: cosine ${x.quality.cosine.toFixed(5)} < min_cosine ${t.min_cosine}`);
    if (!(x.quality.snr_db >= t.min_snr_db)) out.push(`${x.name}: SNR ${x.quality.snr_db.toFixed(2)} dB < min_snr_db ${t.min_snr_db}`);
  }
  if (e2e) {
    if (!(e2e.kl_mean <= t.max_kl)) out.push(`end to end: mean KL ${e2e.kl_mean.toFixed(5)} > max_kl ${t.max_kl}`);
    if (!(e2e.top1 >= t.min_top1)) out.push(`end to end: top-1 agreement ${e2e.top1.toFixed(4)} < min_top1 ${t.min_top1}`);
  }
  return out;
}
