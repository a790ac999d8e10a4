#!/usr/bin/env node
// Many streams at once, side by side: llama.cpp (node-llama-cpp, one context with N sequences
// batched per step, as llama-server --parallel N) and ie (Model + BatchScheduler, as ie serve
// --parallel N) on the same GGUF weights, alternating. For each stream count: aggregate
// generated tokens/s of all streams together (greedy, short distinct prompts, MAX_TOKENS each),
// and its growth over one stream in the same engine. Prints a table and writes the JSON to reports/.
//
//   pnpm bench:peer:streams
//   PRESET=tinyllama-1.1b TYPES=f32,q4_0 STREAMS=1,8 THREADS=2 MAX_TOKENS=32 RUNS=2 pnpm bench:peer:streams
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYNTH_PRESETS } from '@ie/format';
import { cpuInfo, median, requireModel } from './lib.mjs';
import { NLC_VERSION, ensurePeer, logTo, modelFiles, worker } from './peer/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PRESET = process.env.PRESET ?? 'tinyllama-1.1b';
const TYPES = (process.env.TYPES ?? 'f32,bf16,q8_0,q4_0').split(',');
const STREAMS = (process.env.STREAMS ?? '1,8').split(',').map(Number);
const THREADS = Number(process.env.THREADS ?? 2);
const MAX_TOKENS = Number(process.env.MAX_TOKENS ?? 32);
const RUNS = Number(process.env.RUNS ?? 2);

const log = logTo('bench:peer:streams');
const strict = requireModel('bench:peer:streams');
const llamaDir = ensurePeer(log);
const files = modelFiles('bench:peer:streams', PRESET, TYPES, strict, log);
const vocab = SYNTH_PRESETS[PRESET]?.config.vocab_size;
if (!vocab) throw new Error(`unknown PRESET ${PRESET}; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
// Distinct 8-token prompts (BOS + 7 word pieces), one per stream.
const prompt = (s) => [1, ...Array.from({ length: 7 }, (_, i) => 260 + (((s + 1) * 7919 + i * 104729) % (vocab - 260)))];
const maxStreams = Math.max(...STREAMS);

const cpu = cpuInfo();
log(`CPU ${cpu.cpu}, ISA ${cpu.isa}, ${THREADS} threads, streams ${STREAMS.join(',')}, ${MAX_TOKENS} tokens each`);

const results = [];
for (const type of TYPES) {
  const llama = worker('llama-streams-worker.mjs', [llamaDir, files[type].gguf, String(THREADS), String(maxStreams)]);
  const ie = worker('ie-streams-worker.mjs', [files[type].iebin, String(THREADS), String(maxStreams)]);
  const [li, ii] = [await llama.ready, await ie.ready];
  const row = {
    type,
    threads: THREADS,
    llama: { release: li.release, build: li.build, mmap: li.mmap, cpuBackend: li.cpuBackend },
    ie: {
      activations: ii.activations,
      isa: ii.isa,
      weightMemory: ii.weightMemory,
      rows16Matrices: ii.rows16Matrices,
    },
    streams: [],
  };
  for (const n of STREAMS) {
    const req = { cmd: 'streams', prompts: Array.from({ length: n }, (_, s) => prompt(s)), tokens: MAX_TOKENS };
    for (const w of [llama, ie]) await w.ask({ ...req, tokens: 4 }); // warm-up
    const m = { llama: [], ie: [] };
    for (let r = 0; r < RUNS; r++) {
      m.llama.push((await llama.ask(req)).tokS);
      m.ie.push((await ie.ask(req)).tokS);
    }
    const s = { streams: n, llamaTokS: +median(m.llama).toFixed(2), ieTokS: +median(m.ie).toFixed(2), runs: m };
    s.ratio = +(s.ieTokS / s.llamaTokS).toFixed(2);
    row.streams.push(s);
    console.log(JSON.stringify({ type, ...s }));
  }
  await Promise.all([llama.stop(), ie.stop()]);
  const one = row.streams.find((s) => s.streams === 1);
  for (const s of row.streams) {
    if (!one) break;
    s.llamaGrowth = +(s.llamaTokS / one.llamaTokS).toFixed(2);
    s.ieGrowth = +(s.ieTokS / one.ieTokS).toFixed(2);
  }
  results.push(row);
}

console.log(
  `\n${PRESET}, same GGUF weights in both engines; CPU ${cpu.cpu}, ie ISA ${cpu.isa}, ${THREADS} threads; llama.cpp ${results[0]?.llama.release} (node-llama-cpp ${NLC_VERSION}, CPU backend ${results[0]?.llama.cpuBackend}); aggregate tok/s, medians of ${RUNS} alternating runs, ${MAX_TOKENS} tokens per stream`,
);
console.log('| file | streams | llama.cpp tok/s | x one stream | ie tok/s | x one stream | ie / llama.cpp |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of results)
  for (const s of r.streams)
    console.log(
      `| ${r.type.toUpperCase()} | ${s.streams} | ${s.llamaTokS} | ${s.llamaGrowth ?? '-'} | ${s.ieTokS} | ${s.ieGrowth ?? '-'} | ${s.ratio}x |`,
    );
mkdirSync(join(here, 'reports'), { recursive: true });
const tag = process.env.REPORT ?? (process.env.TYPES ? 'subset' : '');
const file = join(here, 'reports', `peer-streams-${PRESET}-${tag ? `${tag}-` : ''}${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  JSON.stringify(
    { preset: PRESET, cpu: cpu.cpu, isa: cpu.isa, nodeLlamaCpp: NLC_VERSION, threads: THREADS, maxTokens: MAX_TOKENS, runs: RUNS, results },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
