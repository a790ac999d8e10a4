import { afterAll, describe, expect, it } from 'vitest';
import { encodeF16, decodeF16 } from '@ie/format';
import { firstDifference, seededFloats } from '@ie/testing';
import { KernelContext } from './index.js';

const probe = KernelContext.create({ threads: 1 });
const ISAS = probe.info().supportedIsas as Array<'scalar' | 'avx2' | 'avxvnni' | 'avx512'>;
probe.close();
const contexts: KernelContext[] = [];
afterAll(() => contexts.forEach((c) => c.close()));

const close = (got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string) => {
  for (let i = 0; i < want.length; i++) {
    const tol = rel * Math.max(1, Math.abs(want[i]));
    if (!(Math.abs(got[i] - want[i]) <= tol)) throw new Error(`${what}[${i}]: ${got[i]} vs ${want[i]} (tolerance ${tol})`);
  }
};

describe.each(ISAS)('decode ops on %s', (isa) => {
  const c = KernelContext.create({ isa, threads: 2 });
  contexts.push(c);
  const sizes = [1, 7, 16, 17, 64, 173, 1000];

  it('rmsnorm', () => {
    for (const n of sizes) {
      const x = seededFloats(n, n, 3);
      const w = seededFloats(n, n + 1, 1);
      const out = new Float32Array(n);
      c.rmsnorm(x, w, 1e-5, out);
      let ss = 0;
      for (const v of x) ss += v * v;
      const inv = 1 / Math.sqrt(ss / n + 1e-5);
      close(
        out,
        Array.from(x, (v, i) => w[i] * v * inv),
        2e-6,
        `rmsnorm n=${n}`,
      );
    }
  });

  it('softmax (in place) sums to 1 and matches float64', () => {
    for (const n of sizes) {
      const x = seededFloats(n, n * 3, 20);
      const want = Float64Array.from(x);
      const mx = Math.max(...want);
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(want[i] - mx);
      const y = x.slice();
      c.softmax(y);
      close(
        y,
        Array.from(want, (v) => Math.exp(v - mx) / s),
        2e-6,
        `softmax n=${n}`,
      );
    }
    const extreme = new Float32Array([-1e30, 80, 80, -Infinity]);
    c.softmax(extreme);
    expect(Array.from(extreme)).toEqual([0, 0.5, 0.5, 0]);
  });

  it('swiglu, add, scale, dot', () => {
    for (const n of sizes) {
      const g = seededFloats(n, n + 5, 8);
      const u = seededFloats(n, n + 6, 2);
      const out = new Float32Array(n);
      c.swiglu(g, u, out);
      close(
        out,
        Array.from(g, (v, i) => (v / (1 + Math.exp(-v))) * u[i]),
        2e-6,
        `swiglu n=${n}`,
      );
      c.add(g, u, out);
      close(
        out,
        Array.from(g, (v, i) => v + u[i]),
        1e-7,
        'add',
      );
      const s = g.slice();
      c.scale(s, 0.37);
      close(
        s,
        Array.from(g, (v) => v * 0.37),
        1e-7,
        'scale',
      );
      let d = 0;
      let mag = 0;
      for (let i = 0; i < n; i++) {
        d += g[i] * u[i];
        mag += Math.abs(g[i] * u[i]);
      }
      expect(Math.abs(c.dot(g, u) - d)).toBeLessThanOrEqual(1e-6 * mag);
    }
  });

  it('argmax returns the first index of the maximum', () => {
    for (const n of sizes) {
      const x = seededFloats(n, n + 9);
      const best = x.indexOf(Math.max(...x));
      expect(c.argmax(x)).toBe(best);
    }
    expect(c.argmax(new Float32Array([1, 5, 5, 2, 5]))).toBe(1);
    const big = new Float32Array(1000).fill(-1);
    big[999] = 3;
    big[500] = 3;
    expect(c.argmax(big)).toBe(500);
  });

  it('rope in both styles', () => {
    const heads = 3;
    const hd = 10;
    const x = seededFloats(heads * hd, 4);
    const ang = Array.from({ length: hd / 2 }, (_, i) => 7 * 10000 ** (-(2 * i) / hd));
    const cos = Float32Array.from(ang, Math.cos);
    const sin = Float32Array.from(ang, Math.sin);
    for (const style of ['adjacent', 'rotate_half'] as const) {
      const y = x.slice();
      c.rope(y, heads, hd, cos, sin, style);
      const want = Array.from(x);
      for (let h = 0; h < heads; h++)
        for (let i = 0; i < hd / 2; i++) {
          const [a, b] = style === 'adjacent' ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + hd / 2];
          want[a] = x[a] * cos[i] - x[b] * sin[i];
          want[b] = x[a] * sin[i] + x[b] * cos[i];
        }
      close(y, want, 1e-6, style);
    }
  });

  it("f32 <-> f16 conversions are bit-identical to @ie/format's codec", () => {
    const x = seededFloats(1001, 1, 70000);
    x[3] = Number.NaN;
    x[4] = Number.POSITIVE_INFINITY;
    x[5] = 1e-7;
    const h = new Uint16Array(x.length);
    c.f32ToF16(x, h);
    const want = encodeF16(x);
    want[3] = h[3]; // any NaN encoding
    expect(firstDifference(h, want)).toBeNull();
    expect(Number.isNaN(decodeF16(h)[3])).toBe(true);
    const back = new Float32Array(x.length);
    c.f16ToF32(h, back);
    const wantBack = decodeF16(h);
    expect(
      firstDifference(
        back.map((v, i) => (i === 3 ? 0 : v)),
        wantBack.map((v, i) => (i === 3 ? 0 : v)),
      ),
    ).toBeNull();
  });
});

/** float64 attention of query i (position pos0 + i) for every head. */
function refAttention(
  q: Float32Array,
  k: Float64Array,
  v: Float64Array,
  H: number,
  KV: number,
  hd: number,
  pos0: number,
  nq: number,
  window: number,
  sinks?: Float32Array,
): Float64Array {
  const out = new Float64Array(nq * H * hd);
  for (let i = 0; i < nq; i++)
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / (H / KV));
      const pos = pos0 + i;
      const t0 = window ? Math.max(0, pos - window + 1) : 0;
      const s: number[] = [];
      for (let t = t0; t <= pos; t++) {
        let d = 0;
        for (let j = 0; j < hd; j++) d += q[(i * H + h) * hd + j] * k[(t * KV + kvh) * hd + j];
        s.push(d / Math.sqrt(hd));
      }
      const mx = Math.max(...s, sinks ? sinks[h] : -Infinity);
      const e = s.map((x) => Math.exp(x - mx));
      const sum = e.reduce((a, b) => a + b, 0) + (sinks ? Math.exp(sinks[h] - mx) : 0);
      for (let t = t0; t <= pos; t++)
        for (let j = 0; j < hd; j++) out[(i * H + h) * hd + j] += (e[t - t0] / sum) * v[(t * KV + kvh) * hd + j];
    }
  return out;
}

describe.each(ISAS)('attention on %s', (isa) => {
  const c = KernelContext.create({ isa, threads: 2 });
  const serial = KernelContext.create({ isa, threads: 1 });
  contexts.push(c, serial);
  it.each([
    ['decode, GQA 8/2', 8, 2, 16, 40, 1, 0],
    ['decode, MHA, odd head dim', 3, 3, 10, 5, 1, 0],
    ['prefill block of 7 queries, causal', 4, 2, 12, 0, 7, 0],
    ['prefill continuing at 9, window 5', 4, 1, 8, 9, 6, 5],
    ['many positions (pool engaged)', 16, 4, 64, 300, 1, 0],
    ['prefill of 40 queries, GQA 32/4, head dim 64', 32, 4, 64, 0, 40, 0],
    ['prefill of 20 queries after 300, window 100', 8, 2, 24, 300, 20, 100],
    ['prefill of 21 queries after 290 (positions past one K block)', 4, 2, 16, 290, 21, 0],
    // Decode runs a KV head's query heads together, 8 at a time: groups of 16, 3 and 2, head
    // dims past one 8-vector tile and with a partial vector, a long cache.
    ['decode, GQA 16/1, head dim 72', 16, 1, 72, 32, 1, 0],
    ['decode, GQA 6/2, head dim 100, window 7', 6, 2, 100, 40, 1, 7],
    ['decode of 2 queries, GQA 4/2', 4, 2, 16, 43, 2, 0],
    ['decode, GQA 32/4, head dim 64, 700 positions', 32, 4, 64, 699, 1, 0],
    ['decode, GQA 4/2, head dim 264 (an f16 block wider than the staging buffer)', 4, 2, 264, 37, 1, 0],
  ])('%s', (_n, H, KV, hd, pos0, nq, window) => {
    const positions = pos0 + nq;
    const q = seededFloats(nq * H * hd, 1, 2);
    const kf = seededFloats(positions * KV * hd, 2, 2);
    const vf = seededFloats(positions * KV * hd, 3, 2);
    for (const f16 of [false, true]) {
      const k = f16 ? encodeF16(kf) : kf;
      const v = f16 ? encodeF16(vf) : vf;
      const kd = Float64Array.from(f16 ? decodeF16(k as Uint16Array) : kf);
      const vd = Float64Array.from(f16 ? decodeF16(v as Uint16Array) : vf);
      const out = new Float32Array(nq * H * hd);
      c.attention({ q, k, v, out, nHeads: H, nKvHeads: KV, headDim: hd, pos0, nQueries: nq, window });
      close(out, refAttention(q, kd, vd, H, KV, hd, pos0, nq, window), 5e-6, `${f16 ? 'f16' : 'f32'} cache`);
      // With attention sinks (gpt-oss): seeded logits around the scores' scale, some dominating.
      const sinks = seededFloats(H, 4, 3);
      const withSinks = new Float32Array(out.length);
      c.attention({ q, k, v, out: withSinks, nHeads: H, nKvHeads: KV, headDim: hd, pos0, nQueries: nq, window, sinks });
      close(withSinks, refAttention(q, kd, vd, H, KV, hd, pos0, nq, window, sinks), 5e-6, `${f16 ? 'f16' : 'f32'} cache, sinks`);
      expect(firstDifference(withSinks, out), 'sinks change the output').not.toBeNull();
      // Work is split by (KV head, query block), never by thread count: identical bits on 1 and 3 threads.
      const one = new Float32Array(out.length);
      serial.attention({ q, k, v, out: one, nHeads: H, nKvHeads: KV, headDim: hd, pos0, nQueries: nq, window });
      expect(firstDifference(one, out), `${f16 ? 'f16' : 'f32'} cache, 1 vs 2 threads`).toBeNull();
    }
  });
});
