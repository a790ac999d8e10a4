#!/usr/bin/env node
// ie against llama.cpp's logits on the same GGUF file: every position of a prompt evaluated by
// both (llama.cpp through node-llama-cpp), for each weight type, with ie's activations in FP32
// (the decoded weights exactly; what differs is llama.cpp's own activation quantization) and in
// int8 (ie's default for quantized weights). Prints, per type, the worst |Δlogit| over the
// logits' range, the mean KL divergence of ie's next-token distribution from llama.cpp's, and how
// often the two pick the same top token; writes the JSON to reports/. Exits 1 when ie with FP32
// activations is further from llama.cpp than MAX_REL (default 0.05) on any file.
//
//   pnpm bench:peer:logits
//   PRESET=small-256 TYPES=q4_k_m,iq4_nl TOKENS=48 pnpm bench:peer:logits
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SYNTH_PRESETS } from '@ie/format';
import { cpuInfo, requireModel } from './lib.mjs';
import { NLC_VERSION, ensurePeer, logTo, modelFiles, worker } from './peer/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PRESET = process.env.PRESET ?? 'small-256';
const TYPES = (process.env.TYPES ?? 'f32,q8_0,q4_0,q4_k_m,q5_k_m,q6_k,iq4_nl').split(',');
const TOKENS = Number(process.env.TOKENS ?? 32);
const MAX_REL = Number(process.env.MAX_REL ?? 0.05);

const log = logTo('bench:peer:logits');
const strict = requireModel('bench:peer:logits');
const llamaDir = ensurePeer(log);
const files = modelFiles('bench:peer:logits', PRESET, TYPES, strict, log);
const vocab = SYNTH_PRESETS[PRESET]?.config.vocab_size;
if (!vocab) throw new Error(`unknown PRESET ${PRESET}; presets: ${Object.keys(SYNTH_PRESETS).join(', ')}`);
const ids = [1, ...Array.from({ length: TOKENS - 1 }, (_, i) => 260 + ((i * 7919 + 13) % (vocab - 260)))];

function compare(got, want) {
  let worst = 0;
  let kl = 0;
  let agree = 0;
  for (let p = 0; p < want.length; p++) {
    const a = got[p];
    const b = want[p];
    let lo = Infinity;
    let hi = -Infinity;
    let am = 0;
    let bm = 0;
    for (let i = 0; i < b.length; i++) {
      lo = Math.min(lo, b[i]);
      hi = Math.max(hi, b[i]);
      if (a[i] > a[am]) am = i;
      if (b[i] > b[bm]) bm = i;
    }
    for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (hi - lo));
    // KL(llama.cpp || ie) of the softmaxes, in nats.
    const lse = (v, m) => m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0));
    const la = lse(a, a[am]);
    const lb = lse(b, b[bm]);
    for (let i = 0; i < b.length; i++) {
      const pb = Math.exp(b[i] - lb);
      kl += pb * (b[i] - lb - (a[i] - la));
    }
    if (am === bm) agree++;
  }
  return { worstRel: +worst.toPrecision(3), meanKl: +(kl / want.length).toPrecision(3), top1Agree: +(agree / want.length).toFixed(3) };
}

const info = cpuInfo();
log(`CPU ${info.cpu}, ISA ${info.isa}`);

const results = [];
let failed = false;
for (const type of TYPES) {
  const llama = worker('llama-worker.mjs', [llamaDir, files[type].gguf, '1']);
  const li = await llama.ready;
  const want = (await llama.ask({ cmd: 'logits', ids, vocab })).logits;
  await llama.stop();
  const row = { type, llamaCpp: li.release };
  for (const activations of ['f32', 'int8']) {
    const ie = worker('ie-worker.mjs', [files[type].iebin, '1'], { ...process.env, IE_ACTIVATIONS: activations });
    const ii = await ie.ready;
    const got = (await ie.ask({ cmd: 'logits', ids })).logits;
    await ie.stop();
    row[activations] = { ...compare(got, want), precision: ii.precision, int8Kernels: ii.int8Kernels };
  }
  if (row.f32.worstRel > MAX_REL) failed = true;
  results.push(row);
  console.log(JSON.stringify(row));
}

console.log(
  `\n${PRESET}, ${TOKENS} positions, ie against llama.cpp ${results[0]?.llamaCpp} (node-llama-cpp ${NLC_VERSION}) on the same GGUF; CPU ${info.cpu}, ie ISA ${info.isa}`,
);
console.log(
  '| file | ie weights | FP32 act.: worst Δ/range | KL (nats) | top-1 agree | int8 act.: worst Δ/range | KL (nats) | top-1 agree |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results)
  console.log(
    `| ${r.type.toUpperCase()} | ${r.f32.precision} | ${r.f32.worstRel} | ${r.f32.meanKl} | ${(100 * r.f32.top1Agree).toFixed(0)}% | ${r.int8.worstRel} | ${r.int8.meanKl} | ${(100 * r.int8.top1Agree).toFixed(0)}% |`,
  );
mkdirSync(join(here, 'reports'), { recursive: true });
const file = join(here, 'reports', `peer-logits-${PRESET}-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(
  file,
  JSON.stringify(
    { preset: PRESET, cpu: info.cpu, isa: info.isa, nodeLlamaCpp: NLC_VERSION, tokens: TOKENS, maxRel: MAX_REL, results },
    null,
    2,
  ),
);
console.log(`\nwrote ${file}`);
if (failed) {
  console.error(`bench:peer:logits: ie with FP32 activations is further than ${MAX_REL} of the logits' range from llama.cpp on some file`);
  process.exit(1);
}
