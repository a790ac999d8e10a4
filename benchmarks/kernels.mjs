#!/usr/bin/env node
// Kernel benchmark. GEMV: each weight type's GB/s over the matrices of a TinyLlama-1.1B decode
// step, rotating through >= GIB GiB of distinct weights so every byte comes from DRAM, against
// the read bandwidth probed right before and after (the best of several readers) at 1 and 2
// threads. GEMM: a 128-token prefill's GFLOP/s against the FMA peak measured in the same run.
// Prints tables and writes the figures as JSON to reports/.
//
//   pnpm bench:kernels                     (from benchmarks/ or the repository root)
//   THREADS=1,2,4 GIB=4 PASSES=5 ONLY=q4_0,q4_0+int8 pnpm bench:kernels
//   RESIDENT=1 ONLY=q4_0+int8 THREADS=1 pnpm bench:kernels   (one cache-resident layer: compute rate)
//   BLOCK_K=0 pnpm bench:kernels           (long rows as stored, not in the runtime's K-panels)
import { randomFillSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelContext, preferredBlockK } from '@ie/kernels';
import { resolveContextOptions } from '@ie/runtime';
import { HUGE_PAGES, benchBytes, randomBuffer } from './lib.mjs';

const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const GIB = Number(process.env.GIB ?? 2);
const PASSES = Number(process.env.PASSES ?? 3);
const ONLY = process.env.ONLY?.split(',');
// RESIDENT=1: one layer's matrices and no classifier, so a quantized layer (~12 MB at 4 bits) stays in
// L3 and the GEMV figures are the kernels' compute rate rather than the bus's.
const RESIDENT = process.env.RESIDENT === '1';
// ROWS=8: also time each matrix against ROWS activation rows at once (the decode rows of ROWS
// sequences in one step, as `ie serve --parallel` runs them) and report GFLOP/s and the speed-up
// over ROWS single-row GEMVs.
const ROWS = Number(process.env.ROWS ?? 1);
// K-panels as the runtime makes them at load (EngineOptions.blockK): auto (its default), 0 (rows as
// stored) or a panel width.
const BLOCK_K = process.env.BLOCK_K ?? 'auto';
const here = dirname(fileURLToPath(import.meta.url));

// The matrices one TinyLlama-1.1B layer streams per token (q, k, v, o, gate, up, down), and the classifier.
const LAYER = [
  ['attn_q', 2048, 2048],
  ['attn_k', 256, 2048],
  ['attn_v', 256, 2048],
  ['attn_output', 2048, 2048],
  ['ffn_gate', 5632, 2048],
  ['ffn_up', 5632, 2048],
  ['ffn_down', 2048, 5632],
];
const CLASSIFIER = ['output', 32000, 2048];

const i8row = { dtype: 'i8', quant: { scheme: 'symmetric', granularity: 'per_row', scale_dtype: 'f16' } };
const i8g32 = { dtype: 'i8', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 32, scale_dtype: 'f16' } };
const q4g64 = { dtype: 'q4', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 64, scale_dtype: 'f16' } };
const q4g32 = { dtype: 'q4', quant: { scheme: 'symmetric', granularity: 'per_group', group_size: 32, scale_dtype: 'f16' } };
// Block dtypes: elements and bytes per block, and where each block's f16 super-scales sit.
const BLOCKS = {
  q4_k: { elems: 256, bytes: 144, f16: [0, 2] },
  q5_k: { elems: 256, bytes: 176, f16: [0, 2] },
  q6_k: { elems: 256, bytes: 210, f16: [208] },
  iq4_nl: { elems: 32, bytes: 18, f16: [0] },
  mxfp4: { elems: 32, bytes: 17, e8m0: 0 },
};
// int8w / int4w are ie's default quantization policies; q8_0 / q4_0 are GGUF's Q8_0 / Q4_0 as imported.
const PRECISIONS = [
  { name: 'fp32', dtype: 'f32' },
  { name: 'fp16', dtype: 'f16' },
  { name: 'bf16', dtype: 'bf16' },
  { name: 'int8w', ...i8row },
  { name: 'q8_0', ...i8g32 },
  { name: 'int4w', ...q4g64 },
  { name: 'q4_0', ...q4g32 },
  { name: 'int8w+int8', ...i8row, activations: 'int8' },
  { name: 'q8_0+int8', ...i8g32, activations: 'int8' },
  { name: 'int4w+int8', ...q4g64, activations: 'int8' },
  { name: 'q4_0+int8', ...q4g32, activations: 'int8' },
  // The same q4 and i8 matrices reordered into 16-row records at load (WeightMatrix.interleaveRows16),
  // as the runtime does in the int8 mode on CPUs with AVX-512 VNNI (IE_Q4_LAYOUT, IE_I8_LAYOUT).
  { name: 'int4w+int8 rows16', ...q4g64, activations: 'int8', rows16: true },
  { name: 'q4_0+int8 rows16', ...q4g32, activations: 'int8', rows16: true },
  { name: 'int8w+int8 rows16', ...i8row, activations: 'int8', rows16: true },
  { name: 'q8_0+int8 rows16', ...i8g32, activations: 'int8', rows16: true },
  // GGUF's K-quants and IQ4_NL, imported as block dtypes (llama.cpp's blocks byte for byte).
  // gpt-oss's MXFP4 experts (FP32 activations are the model's own semantics).
  ...['q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'mxfp4'].flatMap((d) => [
    { name: d, dtype: d, block: BLOCKS[d] },
    { name: `${d}+int8`, dtype: d, block: BLOCKS[d], activations: 'int8' },
  ]),
  // IQ4_NL, Q4_K and Q6_K reordered into 16-row records at load, as the runtime does in the int8 mode
  // where KernelContext.info().iq4NlRows16 / q4kRows16 / q6kRows16 say they pay (IE_Q4_LAYOUT).
  { name: 'iq4_nl+int8 rows16', dtype: 'iq4_nl', block: BLOCKS.iq4_nl, activations: 'int8', rows16: true },
  { name: 'q4_k+int8 rows16', dtype: 'q4_k', block: BLOCKS.q4_k, activations: 'int8', rows16: true },
  { name: 'q6_k+int8 rows16', dtype: 'q6_k', block: BLOCKS.q6_k, activations: 'int8', rows16: true },
  { name: 'q5_k+int8 rows16', dtype: 'q5_k', block: BLOCKS.q5_k, activations: 'int8', rows16: true },
].filter((p) => !ONLY || ONLY.includes(p.name));

const align64 = (n) => Math.ceil(n / 64) * 64;

/** Spec and byte size of one matrix in a precision. */
function layout(p, rows, cols) {
  if (p.block) return { spec: { dtype: p.dtype, shape: [rows, cols] }, bytes: ((rows * cols) / p.block.elems) * p.block.bytes };
  if (!p.quant) return { spec: { dtype: p.dtype, shape: [rows, cols] }, bytes: rows * cols * (p.dtype === 'f32' ? 4 : 2) };
  const perRow = p.quant.granularity === 'per_row';
  const G = perRow ? cols : p.quant.group_size;
  const gpr = perRow ? 1 : Math.ceil(cols / G);
  const qbytes = p.dtype === 'q4' ? rows * gpr * (G / 2) : perRow ? rows * cols : rows * gpr * G;
  const so = align64(qbytes);
  return {
    spec: { dtype: p.dtype, shape: [rows, cols], quant: { ...p.quant, group_size: G, scales_offset: so, zeros_offset: null } },
    bytes: so + rows * gpr * 2,
    qbytes,
    so,
    nscales: rows * gpr,
  };
}

/** A matrix of distinct random weights: float words masked into a normal range (no denormal, NaN or Inf), scales small and positive. */
function makeMatrix(ctx, p, rows, cols) {
  const l = layout(p, rows, cols);
  // On a 64-byte boundary and in huge pages, as a loaded model file's tensors are (a JavaScript buffer is neither).
  const memory = benchBytes(l.bytes);
  const b = memory.bytes;
  randomFillSync(b);
  if (p.dtype === 'f32') {
    const u = new Uint32Array(b.buffer);
    for (let i = 0; i < u.length; i++) u[i] = (u[i] & 0x807fffff) | 0x3c000000;
  } else if (p.dtype === 'f16' || p.dtype === 'bf16') {
    const u = new Uint16Array(b.buffer);
    const [m, e] = p.dtype === 'f16' ? [0x83ff, 0x2000] : [0x807f, 0x3c00];
    for (let i = 0; i < u.length; i++) u[i] = (u[i] & m) | e;
  } else if (p.block) {
    // Random codes and sub-scales; the f16 super-scales small and normal.
    for (let at = 0; at < b.length; at += p.block.bytes) {
      for (const o of p.block.f16 ?? []) b[at + o + 1] = 0x20 | (b[at + o + 1] & 0x03);
      if (p.block.e8m0 !== undefined) b[at + p.block.e8m0] = 120 + (b[at + p.block.e8m0] & 7);
    }
  } else {
    const s = new Uint16Array(b.buffer, l.so, l.nscales);
    for (let i = 0; i < s.length; i++) s[i] = 0x2000 | (s[i] & 0x3ff);
  }
  const matrix = ctx.matrix(l.spec, b);
  if (p.rows16) matrix.interleaveRows16();
  else {
    const int8Kernels = p.activations === 'int8' ? ctx.info().int8Activations : undefined;
    const B = BLOCK_K === 'auto' ? preferredBlockK(l.spec, int8Kernels) : cols > Number(BLOCK_K) ? Number(BLOCK_K) : 0;
    if (B > 0 && !p.block) matrix.reorderBlockedK(B);
  }
  const release = () => {
    matrix.dispose();
    memory.free();
  };
  return { matrix, release, bytes: l.bytes, rows, cols };
}

const probeBuf = randomBuffer(Math.floor(2 ** 30 * Math.min(2, GIB)));
function probe(ctx) {
  const r = ctx.readBandwidth(probeBuf, PASSES);
  return { gbs: r.gbs, variant: r.variant };
}

const results = [];
const gemm = [];
const peaks = {};
let info;
const contexts = new Map(THREADS.map((t) => [t, KernelContext.create(resolveContextOptions({ threads: t }))]));
for (const p of PRECISIONS) {
  // Distinct copies of the layer until the working set exceeds GIB, plus one classifier.
  const ctx0 = contexts.get(THREADS[0]);
  const set = [];
  let total = 0;
  if (!RESIDENT) {
    const cls = makeMatrix(ctx0, p, CLASSIFIER[1], CLASSIFIER[2]);
    set.push({ name: CLASSIFIER[0], ...cls });
    total += cls.bytes;
  }
  while (set.length === 0 || (!RESIDENT && total < GIB * 2 ** 30)) {
    for (const [name, r, c] of LAYER) {
      const m = makeMatrix(ctx0, p, r, c);
      set.push({ name, ...m });
      total += m.bytes;
    }
  }
  const x = new Float32Array(5632);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i) * 0.5;
  const y = new Float32Array(32000);
  const opts = { activations: p.activations ?? 'f32' };
  for (const threads of THREADS) {
    const ctx = contexts.get(threads);
    info = ctx.info();
    for (const m of set) ctx.gemv(m.matrix, x.subarray(0, m.cols), y, opts); // warm: page in, wake the pool
    const bw = probe(ctx);
    const perShape = new Map();
    let best = Infinity;
    for (let pass = 0; pass < PASSES; pass++) {
      const t0 = performance.now();
      for (const m of set) {
        const s = performance.now();
        ctx.gemv(m.matrix, x.subarray(0, m.cols), y, opts);
        const e = performance.now() - s;
        const key = `${m.rows}x${m.cols}`;
        const acc = perShape.get(key) ?? { bytes: 0, passes: new Map() };
        acc.passes.set(pass, (acc.passes.get(pass) ?? 0) + e);
        if (pass === 0) acc.bytes += m.bytes;
        perShape.set(key, acc);
      }
      best = Math.min(best, performance.now() - t0);
    }
    // ROWS activation rows at once: one matmul op per matrix, each row computed as its lone GEMV.
    let rowsMs = Infinity;
    if (ROWS > 1) {
      const X = new Float32Array(ROWS * 5632);
      for (let i = 0; i < X.length; i++) X[i] = Math.sin(i) * 0.5;
      const Y = new Float32Array(ROWS * 32000);
      const params = new Int32Array([ROWS]);
      const progs = set.map((m) =>
        ctx.compile({
          buffers: [X, Y],
          params,
          maxRows: ROWS,
          ops: [{ op: 'matmul', matrix: m.matrix, x: [0, 0, m.cols], out: [1, 0, m.rows], activations: opts.activations, mSlot: 0 }],
        }),
      );
      for (const pr of progs) pr.run();
      for (let pass = 0; pass < PASSES; pass++) {
        const t0 = performance.now();
        for (const pr of progs) pr.run();
        rowsMs = Math.min(rowsMs, performance.now() - t0);
      }
    }
    const bw2 = probe(ctx);
    const probeGBs = Math.max(bw.gbs, bw2.gbs);
    const gbs = total / (best / 1000) / 1e9;
    const shapes = {};
    for (const [k, v] of perShape) shapes[k] = +(v.bytes / (Math.min(...v.passes.values()) / 1000) / 1e9).toFixed(2);
    const weights = set.reduce((a, m) => a + m.rows * m.cols, 0);
    const row = {
      precision: p.name,
      threads,
      isa: info.isa,
      int8Kernels: p.activations === 'int8' ? info.int8Activations : undefined,
      blockK: BLOCK_K,
      workingSetGiB: +(total / 2 ** 30).toFixed(2),
      readBandwidthGBs: +probeGBs.toFixed(2),
      probe: bw.gbs >= bw2.gbs ? bw.variant : bw2.variant,
      gemvGBs: +gbs.toFixed(2),
      ratio: +(gbs / probeGBs).toFixed(3),
      weightsPerSecG: +(weights / (best / 1000) / 1e9).toFixed(2),
      shapes,
    };
    if (ROWS > 1) {
      row.rows = ROWS;
      row.rowsGflops = +((2 * ROWS * weights) / (rowsMs / 1000) / 1e9).toFixed(1);
      row.rowsSpeedup = +((ROWS * best) / rowsMs).toFixed(2);
    }
    results.push(row);
    console.log(JSON.stringify(row));
  }
  for (const m of set) m.release();
  set.length = 0;
  globalThis.gc?.();
}

// GEMM: 128 tokens through the three distinct shapes (weights cache-resident after the first call: this is compute).
for (const threads of THREADS) {
  const ctx = contexts.get(threads);
  peaks[threads] = ctx.fmaPeak(0.5);
  for (const p of PRECISIONS) {
    const M = 128;
    for (const [, r, c] of [LAYER[0], LAYER[4], LAYER[6]]) {
      const m = makeMatrix(ctx, p, r, c);
      const X = new Float32Array(M * c);
      for (let i = 0; i < X.length; i++) X[i] = Math.sin(i) * 0.25;
      const Y = new Float32Array(M * r);
      // With int8 activations a prefill chunk is a matmul op in that mode (the int8 GEMM where the
      // ISA has one for the matrix, else the FP32 GEMM).
      const prog = p.activations
        ? ctx.compile({
            buffers: [X, Y],
            params: new Int32Array([M]),
            maxRows: M,
            ops: [{ op: 'matmul', matrix: m.matrix, x: [0, 0, c], out: [1, 0, r], activations: p.activations, mSlot: 0 }],
          })
        : null;
      const run = () => (prog ? prog.run() : ctx.gemm(m.matrix, X, M, Y));
      run();
      let best = Infinity;
      for (let i = 0; i < PASSES; i++) {
        const t0 = performance.now();
        run();
        best = Math.min(best, performance.now() - t0);
      }
      m.release();
      const gflops = (2 * M * r * c) / (best / 1000) / 1e9;
      const g = {
        precision: p.name,
        threads,
        shape: `${r}x${c}`,
        tokens: M,
        gflops: +gflops.toFixed(1),
        ofPeak: +(gflops / peaks[threads]).toFixed(3),
        ms: +best.toFixed(2),
      };
      gemm.push(g);
      console.log(JSON.stringify({ gemm: g }));
    }
  }
}
for (const c of contexts.values()) c.close();

// The tables.
const pct = (v) => `${(100 * v).toFixed(0)}%`;
console.log(
  `\nGEMV, TinyLlama-1.1B decode-step matrices, ${RESIDENT ? 'one cache-resident layer' : `${GIB} GiB rotating working set`}, best of ${PASSES} passes; CPU ${info.cpu}, ISA ${info.isa}, int8-activation kernels ${info.int8Activations}`,
);
console.log(
  '| precision | threads | read bandwidth GB/s | GEMV GB/s | ratio | G weights/s | 2048x2048 | 256x2048 | 5632x2048 | 2048x5632 | 32000x2048 |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const s = r.shapes;
  console.log(
    `| ${r.precision} | ${r.threads} | ${r.readBandwidthGBs} | ${r.gemvGBs} | ${pct(r.ratio)} | ${r.weightsPerSecG} | ${s['2048x2048']} | ${s['256x2048']} | ${s['5632x2048']} | ${s['2048x5632']} | ${s['32000x2048']} |`,
  );
}
if (ROWS > 1) {
  console.log(
    `\n${ROWS} activation rows at once (decode rows of ${ROWS} sequences), GFLOP/s and the speed-up over ${ROWS} single-row GEMVs`,
  );
  console.log('| precision | threads | GFLOP/s | x single rows |');
  console.log('| --- | --- | --- | --- |');
  for (const r of results) console.log(`| ${r.precision} | ${r.threads} | ${r.rowsGflops} | ${r.rowsSpeedup} |`);
}
console.log(
  `\nGEMM, ${gemm[0]?.tokens ?? 128} tokens, GFLOP/s (share of the measured FMA peak: ${THREADS.map((t) => `${peaks[t].toFixed(1)} GFLOP/s at ${t} thread(s)`).join(', ')}); kernel ${info.gemm}; +int8 rows: integer GOP/s of the int8 GEMM ${info.int8Gemm} for symmetric q4 and i8 (the FP32 GEMM for the rest), against the same FP32 peak`,
);
console.log('| precision | threads | 2048x2048 | 5632x2048 | 2048x5632 |');
console.log('| --- | --- | --- | --- | --- |');
for (const p of PRECISIONS)
  for (const t of THREADS) {
    const g = (shape) => {
      const x = gemm.find((e) => e.precision === p.name && e.threads === t && e.shape === shape);
      return x ? `${x.gflops} (${pct(x.ofPeak)})` : '';
    };
    console.log(`| ${p.name} | ${t} | ${g('2048x2048')} | ${g('5632x2048')} | ${g('2048x5632')} |`);
  }
mkdirSync(join(here, 'reports'), { recursive: true });
// A subset run (ONLY=…) writes beside the full report rather than over it; REPORT names it.
const tag = process.env.REPORT ?? (ONLY ? 'subset' : '');
const file = join(here, 'reports', `kernels-${tag ? `${tag}-` : ''}${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      cpu: info.cpu,
      isa: info.isa,
      int8Kernels: info.int8Activations,
      gemmKernel: info.gemm,
      int8GemmKernel: info.int8Gemm,
      fmaPeakGflops: peaks,
      gib: GIB,
      resident: RESIDENT,
      hugePages: HUGE_PAGES,
      passes: PASSES,
      gemv: results,
      gemm,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
