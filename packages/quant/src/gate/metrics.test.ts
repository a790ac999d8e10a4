import { seededFloats } from '@ie/testing';
import { describe, expect, it } from 'vitest';
import { EndToEndMeter, gateFailures, klDivergence, outputQuality, tensorPasses } from './metrics.js';

describe('per-tensor quality', () => {
  it('matches a float64 computation at an odd length', () => {
    const ref = seededFloats(1001, 1, 2);
    const noise = seededFloats(1001, 2, 0.1);
    const test = ref.map((r, i) => r + noise[i]);
    let dot = 0;
    let rr = 0;
    let tt = 0;
    let ee = 0;
    for (let i = 0; i < ref.length; i++) {
      dot += ref[i] * test[i];
      rr += ref[i] ** 2;
      tt += test[i] ** 2;
      ee += (ref[i] - test[i]) ** 2;
    }
    const q = outputQuality(ref, test);
    expect(q.cosine).toBeCloseTo(dot / Math.sqrt(rr * tt), 12);
    expect(q.snr_db).toBeCloseTo(10 * Math.log10(rr / ee), 10);
    expect(q.snr_db).toBeGreaterThan(20);
    expect(q.snr_db).toBeLessThan(40);
  });

  it('identical outputs are cosine 1 and infinite SNR; opposite ones cosine -1', () => {
    const a = seededFloats(17, 3, 1);
    expect(outputQuality(a, a)).toEqual({ cosine: 1, snr_db: Number.POSITIVE_INFINITY });
    expect(
      outputQuality(
        a,
        a.map((x) => -x),
      ).cosine,
    ).toBeCloseTo(-1, 12);
    expect(tensorPasses({ cosine: 0.99, snr_db: 20 }, { min_cosine: 0.98, min_snr_db: 15, max_kl: 1, min_top1: 0 })).toBe(true);
    expect(tensorPasses({ cosine: 0.99, snr_db: 14 }, { min_cosine: 0.98, min_snr_db: 15, max_kl: 1, min_top1: 0 })).toBe(false);
  });
});

describe('end to end', () => {
  it('KL of softmax distributions, in nats, shift-invariant', () => {
    const p = new Float32Array([0, Math.log(3)]); // softmax: 0.25, 0.75
    const q = new Float32Array([5, 5]); // uniform
    expect(klDivergence(p, q)).toBeCloseTo(0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 6);
    expect(klDivergence(p, p)).toBe(0);
    const l = seededFloats(301, 4, 3);
    const m = seededFloats(301, 5, 3);
    expect(klDivergence(l, m)).toBeCloseTo(
      klDivergence(
        l.map((x) => x + 7),
        m.map((x) => x - 2),
      ),
      5,
    );
  });

  it('the meter averages KL and counts top-1 agreement', () => {
    const meter = new EndToEndMeter();
    const a = new Float32Array([1, 2, 3]);
    meter.add(a, a);
    meter.add(a, new Float32Array([3, 2, 1]));
    const r = meter.result();
    expect(r.positions).toBe(2);
    expect(r.top1).toBe(0.5);
    expect(r.kl_mean).toBeCloseTo(klDivergence(a, new Float32Array([3, 2, 1])) / 2, 12);
    expect(r.kl_max).toBeCloseTo(klDivergence(a, new Float32Array([3, 2, 1])), 12);
  });

  it('NaN fails every threshold (a broken model is never accepted)', () => {
    const t = { min_cosine: 0.99, min_snr_db: 20, max_kl: 0.05, min_top1: 0.9 };
    const nan = new Float32Array([Number.NaN, 1]);
    expect(klDivergence(nan, new Float32Array([0, 1]))).toBeNaN();
    expect(tensorPasses({ cosine: Number.NaN, snr_db: 30 }, t)).toBe(false);
    expect(
      gateFailures(
        [{ name: 'w', quality: { cosine: Number.NaN, snr_db: Number.NaN } }],
        { kl_mean: Number.NaN, kl_max: Number.NaN, top1: 1, positions: 1 },
        t,
      ),
    ).toHaveLength(3);
  });

  it('gateFailures names each missed threshold', () => {
    const t = { min_cosine: 0.99, min_snr_db: 20, max_kl: 0.05, min_top1: 0.9 };
    expect(
      gateFailures([{ name: 'w', quality: { cosine: 0.995, snr_db: 25 } }], { kl_mean: 0.01, kl_max: 1, top1: 0.95, positions: 10 }, t),
    ).toEqual([]);
    expect(
      gateFailures(
        [
          { name: 'w', quality: { cosine: 0.98, snr_db: 19 } },
          { name: 'n', quality: null },
        ],
        { kl_mean: 0.1, kl_max: 1, top1: 0.5, positions: 10 },
        t,
      ),
    ).toEqual([
      'w: cosine 0.98000 < min_cosine 0.99',
      'w: SNR 19.00 dB < min_snr_db 20',
      'end to end: mean KL 0.10000 > max_kl 0.05',
      'end to end: top-1 agreement 0.5000 < min_top1 0.9',
    ]);
  });
});
