#!/usr/bin/env node
// Kernel benchmark: this machine's read bandwidth (a streaming-read probe over 2 GiB), then each
// precision's GEMV over the matrices of a TinyLlama-1.1B decode step, rotating through >= 2 GiB
// of distinct weights so every byte comes from DRAM, at 1 and 2 threads; and GEMM GFLOP/s for a
// 128-token prefill. Prints a table and writes the figures as JSON to reports/.
//
//   pnpm bench:kernels                     (from benchmarks/ or the repository root)
//   THREADS=1,2,4 GIB=4 PASSES=5 pnpm bench:kernels
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelContext } from '@ie/kernels';

const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const GIB = Number(process.env.GIB ?? 2);
const PASSES = Number(process.env.PASSES ?? 3);
const here = dirname(fileURLToPath(import.meta.url));

// The matrices one TinyLlama-1.1B layer streams per token (q, k, v, o, gate, up, down), and the classifier.
const LAYER = [['attn_q', 2048, 2048], ['attn_k', 256, 2048], ['attn_v', 256, 2048], ['attn_output', 2048, 2048], ['ffn_gate', 5632, 2048], ['ffn_up', 5632, 2048], ['ffn_down', 2048, 5632]];
const CLASSIFIER = ['output', 32000, 2048];

const PRECISIONS = [
  { name: 'fp32', dtype: 'f32' },
  { name: 'fp16', dtype: 'f16' },
  { name: 'bf16', dtype: 'bf16' },
  { name: 'int8w', dtype: 'i8', quant: { scheme: 'symmetric', granularity: 'per_row', scale_dtype: 'f16' } },
  { name: 'int4w', dtype: 'q4', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' } },
  { name: 'int8w+int8act', dtype: 'i8', quant: { scheme: 'symmetric', granularity: 'per_row', scale_dtype: 'f16' }, activations: 'int8' },
  { name: 'int4w+int8act', dtype: 'q4', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' }, activations: 'int8' },
];

const align64 = (n) => Math.ceil(n / 64) * 64;

/** Spec and byte size of one matrix in a precision. */
function layout(p, rows, cols) {
  if (!p.quant) return { spec: { dtype: p.dtype, shape: [rows, cols] }, bytes: rows * cols * (p.dtype === 'f32' ? 4 : 2) };
  const perRow = p.quant.granularity === 'per_row';
  const G = perRow ? cols : p.quant.group_size;
  const gpr = perRow ? 1 : Math.ceil(cols / G);
  const qbytes = p.dtype === 'q4' ? rows * gpr * (G / 2) : perRow ? rows * cols : rows * gpr * G;
  const so = align64(qbytes);
  return { spec: { dtype: p.dtype, shape: [rows, cols], quant: { ...p.quant, group_size: G, scales_offset: so, zeros_offset: null } }, bytes: so + rows * gpr * 2, qbytes, so, nscales: rows * gpr };
}

// 1 MiB of random words, reused to fill buffers fast. Float words keep their exponent in a
// normal range (no denormals, NaN or Inf that would change the speed).
const seed = new Uint8Array(1 << 20);
randomFillSync(seed);
const seedF32 = new Uint32Array(seed.buffer).map((u) => (u & 0x807fffff) | 0x3c000000);
const seedHalf = new Uint16Array(seed.buffer).map((u) => (u & 0x83ff) | 0x2000);
const seedBf16 = new Uint16Array(seed.buffer).map((u) => (u & 0x807f) | 0x3c00);

function fill(dst, src) {
  const s = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let o = 0; o < dst.length; o += s.length) dst.set(s.subarray(0, Math.min(s.length, dst.length - o)), o);
}

function makeMatrix(ctx, p, rows, cols) {
  const l = layout(p, rows, cols);
  const b = new Uint8Array(l.bytes);
  if (p.dtype === 'f32') fill(b, seedF32);
  else if (p.dtype === 'f16') fill(b, seedHalf);
  else if (p.dtype === 'bf16') fill(b, seedBf16);
  else {
    fill(b.subarray(0, l.qbytes), seed);
    new Uint16Array(b.buffer, l.so, l.nscales).fill(0x2000);
  }
  return { matrix: ctx.matrix(l.spec, b), bytes: l.bytes, rows, cols };
}

function probe(ctx, buf) {
  let best = Infinity;
  for (let i = 0; i < PASSES; i++) best = Math.min(best, ctx.readBandwidth(buf, 1).seconds);
  return buf.length / best / 1e9;
}

const results = [];
const gemm = [];
let info;
const probeBuf = new Uint8Array(2 * 2 ** 30);
fill(probeBuf, seed);

for (const threads of THREADS) {
  const ctx = KernelContext.create({ threads });
  info = ctx.info();
  for (const p of PRECISIONS) {
    // Distinct copies of the layer until the working set exceeds GIB, plus one classifier.
    const set = [];
    let total = 0;
    const cls = makeMatrix(ctx, p, CLASSIFIER[1], CLASSIFIER[2]);
    set.push({ name: CLASSIFIER[0], ...cls });
    total += cls.bytes;
    while (total < GIB * 2 ** 30) {
      for (const [name, r, c] of LAYER) {
        const m = makeMatrix(ctx, p, r, c);
        set.push({ name, ...m });
        total += m.bytes;
      }
    }
    const x = new Float32Array(5632).fill(0.5);
    const y = new Float32Array(32000);
    const opts = { activations: p.activations ?? 'f32' };
    for (const m of set) ctx.gemv(m.matrix, x.subarray(0, m.cols), y, opts); // warm: page in, wake the pool
    // Bandwidth is measured right before the kernel runs: this machine's varies over time.
    const bw = probe(ctx, probeBuf);
    const perShape = new Map();
    let best = Infinity;
    for (let pass = 0; pass < PASSES; pass++) {
      const t0 = performance.now();
      for (const m of set) {
        const s = performance.now();
        ctx.gemv(m.matrix, x.subarray(0, m.cols), y, opts);
        const e = performance.now() - s;
        const key = `${m.rows}x${m.cols}`;
        const acc = perShape.get(key) ?? { bytes: 0, ms: 0, passes: new Map() };
        acc.passes.set(pass, (acc.passes.get(pass) ?? 0) + e);
        acc.bytes = pass === 0 ? acc.bytes + m.bytes : acc.bytes;
        perShape.set(key, acc);
      }
      best = Math.min(best, performance.now() - t0);
    }
    const bw2 = probe(ctx, probeBuf);
    const probeGBs = Math.max(bw, bw2);
    const gbs = total / (best / 1000) / 1e9;
    const shapes = {};
    for (const [k, v] of perShape) shapes[k] = +(v.bytes / (Math.min(...v.passes.values()) / 1000) / 1e9).toFixed(2);
    const row = { precision: p.name, threads, isa: info.isa, int8Kernels: p.activations === 'int8' ? info.int8Activations : undefined, workingSetGiB: +(total / 2 ** 30).toFixed(2), readBandwidthGBs: +probeGBs.toFixed(2), gemvGBs: +gbs.toFixed(2), ratio: +(gbs / probeGBs).toFixed(3), weightsPerSecG: +((gbs * 1e9) / (total / set.reduce((a, m) => a + m.rows * m.cols, 0)) / 1e9).toFixed(2), shapes };
    results.push(row);
    console.log(JSON.stringify(row));
    for (const m of set) m.matrix.dispose();
    set.length = 0;
    globalThis.gc?.();
  }
  // GEMM: 128 tokens through the three distinct shapes (weights cached; this is compute).
  for (const p of PRECISIONS.filter((q) => !q.activations)) {
    const M = 128;
    for (const [name, r, c] of [LAYER[0], LAYER[4], LAYER[6]]) {
      const m = makeMatrix(ctx, p, r, c);
      const X = new Float32Array(M * c).fill(0.25);
      const Y = new Float32Array(M * r);
      ctx.gemm(m.matrix, X, M, Y);
      let best = Infinity;
      for (let i = 0; i < PASSES; i++) {
        const t0 = performance.now();
        ctx.gemm(m.matrix, X, M, Y);
        best = Math.min(best, performance.now() - t0);
      }
      m.matrix.dispose();
      const g = { precision: p.name, threads, shape: `${r}x${c}`, tokens: M, gflops: +((2 * M * r * c) / (best / 1000) / 1e9).toFixed(1), ms: +best.toFixed(2) };
      gemm.push(g);
      console.log(JSON.stringify({ gemm: g }));
    }
  }
  ctx.close();
}

// The table.
const pct = (v) => `${(100 * v).toFixed(0)}%`;
console.log(`\nGEMV, TinyLlama-1.1B decode-step matrices, ${GIB} GiB rotating working set, best of ${PASSES} passes; CPU ${info.cpu}, ISA ${info.isa}, int8-activation kernels ${info.int8Activations}`);
console.log('| precision | threads | read bandwidth GB/s | GEMV GB/s | ratio | G weights/s | 2048x2048 | 256x2048 | 5632x2048 | 2048x5632 | 32000x2048 |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const s = r.shapes;
  console.log(`| ${r.precision} | ${r.threads} | ${r.readBandwidthGBs} | ${r.gemvGBs} | ${pct(r.ratio)} | ${r.weightsPerSecG} | ${s['2048x2048']} | ${s['256x2048']} | ${s['5632x2048']} | ${s['2048x5632']} | ${s['32000x2048']} |`);
}
console.log(`\nGEMM, ${gemm[0]?.tokens ?? 128} tokens (GFLOP/s)`);
console.log('| precision | threads | 2048x2048 | 5632x2048 | 2048x5632 |');
console.log('| --- | --- | --- | --- | --- |');
for (const p of PRECISIONS.filter((q) => !q.activations))
  for (const t of THREADS) {
    const g = (shape) => gemm.find((x) => x.precision === p.name && x.threads === t && x.shape === shape)?.gflops;
    console.log(`| ${p.name} | ${t} | ${g('2048x2048')} | ${g('5632x2048')} | ${g('2048x5632')} |`);
  }
mkdirSync(join(here, 'reports'), { recursive: true });
const file = join(here, 'reports', `kernels-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(file, JSON.stringify({ cpu: info.cpu, isa: info.isa, int8Kernels: info.int8Activations, gib: GIB, passes: PASSES, gemv: results, gemm }, null, 2));
console.log(`\nwrote ${file}`);
