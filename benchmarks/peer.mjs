#!/usr/bin/env node
// The side-by-side: llama.cpp (through node-llama-cpp's prebuilt CPU build) and ie on the same
// GGUF weights, in one run, alternating the two engines (or one block each where both files do
// not fit the page cache together, ORDER=blocks), for decode (64 tokens after a short
// prompt) and prefill (a 128-token prompt) at each thread count and weight type, beside the read
// bandwidth probed in the same run. Prints a table and writes the JSON to reports/.
//
//   pnpm bench:peer
//   PRESET=stories15m TYPES=q4_0,q8_0 THREADS=1,2 RUNS=5 pnpm bench:peer
//
// The GGUF files are made by `ie synth --format gguf` (seeded; no download) and converted for ie
// with `ie convert --gguf`, both cached under benchmarks/.cache/. node-llama-cpp is installed on
// first use into a cache directory (PEER_DIR, default ~/.cache/ie/peer), not into the workspace.
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYNTH_PRESETS } from '@ie/format';
import { cpuInfo, median, randomBuffer, readBandwidth, requireModel } from './lib.mjs';
import { NLC_VERSION, ensurePeer, logTo, modelFiles, worker } from './peer/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PRESET = process.env.PRESET ?? 'tinyllama-1.1b';
const TYPES = (process.env.TYPES ?? 'f32,f16,bf16,q8_0,q4_0').split(',');
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const RUNS = Number(process.env.RUNS ?? 3);
const DECODE_TOKENS = Number(process.env.DECODE_TOKENS ?? 64);
const PREFILL_TOKENS = Number(process.env.PREFILL_TOKENS ?? 128);
// The decode prompt's length: 8 by default; long ones (1024) time decode over a long KV cache.
const DECODE_PROMPT_TOKENS = Number(process.env.DECODE_PROMPT_TOKENS ?? 8);
const CONTEXT = Math.max(1024, DECODE_PROMPT_TOKENS + DECODE_TOKENS + 16, PREFILL_TOKENS + 16);
const PROBE_GIB = Number(process.env.PROBE_GIB ?? 1);

const log = logTo('bench:peer');
const strict = requireModel('bench:peer');
const llamaDir = ensurePeer(log);
const files = modelFiles('bench:peer', PRESET, TYPES, strict, log);

// A short prompt (BOS + 7 ids) and a 128-token one, from the synthetic vocabulary's word pieces
// (ids past the 3 specials and 256 bytes, within the preset's vocabulary).
const vocab = SYNTH_PRESETS[PRESET]?.config.vocab_size;
if (!vocab) throw new Error(`unknown PRESET ${PRESET}; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
const piece = (i) => 260 + ((i * 7919) % (vocab - 260));
const decodePrompt = [1, ...Array.from({ length: DECODE_PROMPT_TOKENS - 1 }, (_, i) => piece(i + 1))];
const prefillIds = [1, ...Array.from({ length: PREFILL_TOKENS - 1 }, (_, i) => piece(i + 11))];

const probeBuf = randomBuffer(PROBE_GIB * 2 ** 30);
const info = cpuInfo();
log(`CPU ${info.cpu}, ISA ${info.isa}, ${info.physicalCores} physical cores`);

// Both engines' weights must stay in the page cache while they alternate (ie's IEBIN is a copy of
// the GGUF's tensors). Where the two files take more than 70% of the memory (gpt-oss-20b's 13.8 GB
// twice on a 24 GB machine), or with ORDER=blocks, each engine runs its RUNS in a block of its own
// instead, llama.cpp first: both then read from memory, not from disk, at the cost of measuring
// the two engines minutes apart.
const blockBudget = 0.7 * totalmem();
const blocked = new Set(
  TYPES.filter(
    (type) =>
      process.env.ORDER === 'blocks' || files[type].ggufBytes + statSync(join(files[type].iebin, 'model.ie.bin')).size > blockBudget,
  ),
);
if (process.env.ORDER !== 'blocks')
  for (const type of blocked)
    log(
      `${type}: the GGUF and IEBIN files take more than 70% of the memory together; each engine runs in a block of its own (ORDER=blocks), not alternating`,
    );

const results = [];
for (const type of TYPES) {
  for (const threads of THREADS) {
    const bw = readBandwidth(probeBuf, threads);
    const start = {
      llama: () => worker('llama-worker.mjs', [llamaDir, files[type].gguf, String(threads), String(CONTEXT)]),
      ie: () => worker('ie-worker.mjs', [files[type].iebin, String(threads), String(CONTEXT)]),
    };
    const m = { llama: { decode: [], prefill: [] }, ie: { decode: [], prefill: [] } };
    const warm = async (w) => {
      await w.ask({ cmd: 'decode', prompt: decodePrompt, tokens: 8 });
      await w.ask({ cmd: 'prefill', ids: prefillIds });
    };
    const measure = async (name, w) => {
      m[name].decode.push((await w.ask({ cmd: 'decode', prompt: decodePrompt, tokens: DECODE_TOKENS })).tokS);
      m[name].prefill.push((await w.ask({ cmd: 'prefill', ids: prefillIds })).tokS);
    };
    let li;
    let ii;
    if (blocked.has(type)) {
      // One engine at a time, each loaded, warmed, run RUNS times and closed before the other starts.
      for (const name of ['llama', 'ie']) {
        const w = start[name]();
        const i = await w.ready;
        if (name === 'llama') li = i;
        else ii = i;
        await warm(w);
        for (let r = 0; r < RUNS; r++) await measure(name, w);
        await w.stop();
      }
    } else {
      const llama = start.llama();
      const ie = start.ie();
      [li, ii] = [await llama.ready, await ie.ready];
      // One warm-up of each, then alternate: llama.cpp, ie, llama.cpp, ie, ...
      for (const w of [llama, ie]) await warm(w);
      for (let r = 0; r < RUNS; r++) {
        await measure('llama', llama);
        await measure('ie', ie);
      }
      await Promise.all([llama.stop(), ie.stop()]);
    }
    const bw2 = readBandwidth(probeBuf, threads);
    const readGBs = Math.max(bw.gbs, bw2.gbs);
    const row = {
      type,
      threads,
      order: blocked.has(type) ? 'blocks' : 'alternating',
      readBandwidthGBs: +readGBs.toFixed(2),
      probe: bw.gbs >= bw2.gbs ? bw.variant : bw2.variant,
      llama: {
        decodeTokS: +median(m.llama.decode).toFixed(2),
        prefillTokS: +median(m.llama.prefill).toFixed(2),
        runs: m.llama,
        release: li.release,
        build: li.build,
        mmap: li.mmap,
        cpuBackend: li.cpuBackend,
      },
      ie: {
        decodeTokS: +median(m.ie.decode).toFixed(2),
        prefillTokS: +median(m.ie.prefill).toFixed(2),
        runs: m.ie,
        isa: ii.isa,
        activations: ii.activations,
        int8Kernels: ii.int8Kernels,
        gemm: ii.gemm,
        weightBytesPerToken: ii.weightBytesPerToken,
        rows16Matrices: ii.rows16Matrices,
        weightMemory: ii.weightMemory,
        moe: ii.moe,
      },
      ggufBytes: files[type].ggufBytes,
    };
    row.decodeRatio = +(row.ie.decodeTokS / row.llama.decodeTokS).toFixed(2);
    row.prefillRatio = +(row.ie.prefillTokS / row.llama.prefillTokS).toFixed(2);
    // Effective weight bandwidth of decode: bytes of weights a token reads x tokens/s (llama.cpp: the file's tensor bytes).
    row.ie.decodeGBs = +((row.ie.weightBytesPerToken * row.ie.decodeTokS) / 1e9).toFixed(2);
    // Both engines read the same weights per token; for a dense model that is about the file, for
    // a mixture of experts only the chosen experts (ie's count, on the same tensors).
    const active = row.ie.moe ? row.ie.weightBytesPerToken : row.ggufBytes;
    row.llama.decodeGBs = +((active * row.llama.decodeTokS) / 1e9).toFixed(2);
    results.push(row);
    console.log(JSON.stringify(row));
  }
}

console.log(
  `\n${PRESET}, same GGUF weights in both engines; CPU ${info.cpu}, ie ISA ${info.isa}; llama.cpp ${results[0]?.llama.release} (node-llama-cpp ${NLC_VERSION}, ${results[0]?.llama.build}, CPU backend ${results[0]?.llama.cpuBackend}, weights ${results[0]?.llama.mmap === false ? 'read into memory (LLAMA_MMAP=0)' : 'mapped'}); ie weights ${results[0]?.ie.weightMemory === 'copy' ? 'copied into memory' : 'mapped'}; medians of ${RUNS} ${results.some((r) => r.order === 'blocks') ? 'runs (each engine in a block of its own, not alternating)' : 'alternating runs'}; decode: ${DECODE_TOKENS} tokens after a ${DECODE_PROMPT_TOKENS}-token prompt`,
);
console.log(
  '| file | threads | read GB/s | llama.cpp decode tok/s | ie decode tok/s | ratio | llama.cpp GB/s | ie GB/s | llama.cpp prefill tok/s | ie prefill tok/s | ratio |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
  const pct = (x) => `${x} (${Math.round((100 * x) / r.readBandwidthGBs)}%)`;
  console.log(
    `| ${r.type.toUpperCase()} | ${r.threads} | ${r.readBandwidthGBs} | ${r.llama.decodeTokS} | ${r.ie.decodeTokS} | ${r.decodeRatio}x | ${pct(r.llama.decodeGBs)} | ${pct(r.ie.decodeGBs)} | ${r.llama.prefillTokS} | ${r.ie.prefillTokS} | ${r.prefillRatio}x |`,
  );
}
mkdirSync(join(here, 'reports'), { recursive: true });
// A run of chosen types (TYPES=…) writes beside the full report rather than over it; REPORT names it.
const tag = process.env.REPORT ?? (process.env.TYPES ? 'subset' : '');
const layers = process.env.LAYERS ? `-${process.env.LAYERS}l` : '';
const file = join(here, 'reports', `peer-${PRESET}${layers}-${tag ? `${tag}-` : ''}${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      preset: PRESET,
      layers: process.env.LAYERS ? Number(process.env.LAYERS) : undefined,
      cpu: info.cpu,
      isa: info.isa,
      nodeLlamaCpp: NLC_VERSION,
      runs: RUNS,
      decodeTokens: DECODE_TOKENS,
      decodePromptTokens: DECODE_PROMPT_TOKENS,
      prefillTokens: PREFILL_TOKENS,
      results,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
