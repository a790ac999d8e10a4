#!/usr/bin/env node
// Where the weights live, measured: ie with its weights copied into huge pages (weightMemory copy)
// and mapped from the file (mmap), beside llama.cpp mapping them (its default) and reading them
// into memory (--no-mmap), the four alternating in one run on the same GGUF weights. Prints
// decode tokens/s, the seconds from spawn to ready (process start, load, and for copies the read),
// the ratios, and writes the JSON to reports/.
//
//   PEER_DIR=… TYPES=q4_0,q8_0 THREADS=1,2 RUNS=5 pnpm bench:peer:memory
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYNTH_PRESETS } from '@ie/format';
import { cpuInfo, median, requireModel } from './lib.mjs';
import { NLC_VERSION, ensurePeer, logTo, modelFiles, worker } from './peer/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PRESET = process.env.PRESET ?? 'tinyllama-1.1b';
const TYPES = (process.env.TYPES ?? 'q4_0,q8_0').split(',');
const THREADS = (process.env.THREADS ?? '1,2').split(',').map(Number);
const RUNS = Number(process.env.RUNS ?? 5);
const DECODE_TOKENS = Number(process.env.DECODE_TOKENS ?? 64);
const CONTEXT = 1024;

const log = logTo('bench:peer:memory');
const strict = requireModel('bench:peer:memory');
const llamaDir = ensurePeer(log);
const files = modelFiles('bench:peer:memory', PRESET, TYPES, strict, log);
const vocab = SYNTH_PRESETS[PRESET].config.vocab_size;
const prompt = [1, ...Array.from({ length: 7 }, (_, i) => 260 + (((i + 1) * 7919) % (vocab - 260)))];
const cpu = cpuInfo();
log(`CPU ${cpu.cpu}, ISA ${cpu.isa}`);

const ENGINES = [
  ['ie copy', 'ie-worker.mjs', { IE_WEIGHT_MEMORY: 'copy' }],
  ['ie mmap', 'ie-worker.mjs', { IE_WEIGHT_MEMORY: 'mmap' }],
  ['llama.cpp mmap', 'llama-worker.mjs', { LLAMA_MMAP: '1' }],
  ['llama.cpp no-mmap', 'llama-worker.mjs', { LLAMA_MMAP: '0' }],
];

const results = [];
for (const type of TYPES) {
  for (const threads of THREADS) {
    const row = { type, threads, engines: {} };
    // Started one at a time, so each one's time to ready is its own.
    const ws = [];
    for (const [name, script, env] of ENGINES) {
      const t0 = performance.now();
      const args = script.startsWith('ie')
        ? [files[type].iebin, String(threads), String(CONTEXT)]
        : [llamaDir, files[type].gguf, String(threads), String(CONTEXT)];
      const w = worker(script, args, { ...process.env, ...env });
      const info = await w.ready;
      row.engines[name] = { readySeconds: +((performance.now() - t0) / 1000).toFixed(2), info, decode: [] };
      await w.ask({ cmd: 'decode', prompt, tokens: 8 });
      ws.push([name, w]);
    }
    for (let r = 0; r < RUNS; r++)
      for (const [name, w] of ws) row.engines[name].decode.push((await w.ask({ cmd: 'decode', prompt, tokens: DECODE_TOKENS })).tokS);
    await Promise.all(ws.map(([, w]) => w.stop()));
    for (const e of Object.values(row.engines)) e.decodeTokS = +median(e.decode).toFixed(2);
    console.log(JSON.stringify(row));
    results.push(row);
  }
}

const names = ENGINES.map(([n]) => n);
console.log(
  `\n${PRESET}, same GGUF weights; CPU ${cpu.cpu}, ie ISA ${cpu.isa}; llama.cpp ${results[0]?.engines['llama.cpp mmap'].info.release} (node-llama-cpp ${NLC_VERSION}); decode tok/s, medians of ${RUNS} runs alternating the four; ready: seconds from spawn to ready`,
);
console.log(
  `| file | threads | ${names.map((n) => `${n} tok/s (ready s)`).join(' | ')} | ie copy / ie mmap | ie copy / llama.cpp mmap | ie copy / llama.cpp no-mmap |`,
);
console.log(`| --- | --- | ${names.map(() => '---').join(' | ')} | --- | --- | --- |`);
for (const r of results) {
  const e = (n) => r.engines[n].decodeTokS;
  const x = (a, b) => `${(e(a) / e(b)).toFixed(2)}x`;
  console.log(
    `| ${r.type.toUpperCase()} | ${r.threads} | ${names.map((n) => `${e(n)} (${r.engines[n].readySeconds})`).join(' | ')} | ${x('ie copy', 'ie mmap')} | ${x('ie copy', 'llama.cpp mmap')} | ${x('ie copy', 'llama.cpp no-mmap')} |`,
  );
}
mkdirSync(join(here, 'reports'), { recursive: true });
const tag = process.env.REPORT ? `${process.env.REPORT}-` : '';
const layers = process.env.LAYERS ? `-${process.env.LAYERS}l` : '';
const file = join(here, 'reports', `peer-memory-${PRESET}${layers}-${tag}${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      preset: PRESET,
      layers: process.env.LAYERS ? Number(process.env.LAYERS) : undefined,
      cpu: cpu.cpu,
      isa: cpu.isa,
      nodeLlamaCpp: NLC_VERSION,
      runs: RUNS,
      decodeTokens: DECODE_TOKENS,
      results,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
