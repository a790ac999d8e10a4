#!/usr/bin/env node
// ie perplexity against llama.cpp's on the same GGUF file and the same token ids: llama.cpp's
// logits of every position (node-llama-cpp's controlledEvaluate) scored as llama-perplexity scores
// them (chunks from BOS, their second halves), beside engine.perplexity; also the KL divergence of
// ie's next-token distribution from llama.cpp's per scored position. Prints both perplexities and
// writes the JSON to reports/. Exits 1 when the two mean NLLs differ by more than MAX_NLL_DIFF.
//
//   pnpm bench:peer:perplexity                                    (stories260K, the real model)
//   MODEL=path/to.gguf TEXT=file.txt CHUNK=256 CHUNKS=4 pnpm bench:peer:perplexity
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '@ie/runtime';
import { cpuInfo, writeReport } from './lib.mjs';
import { NLC_VERSION, ensurePeer, logTo, worker } from './peer/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const log = logTo('bench:peer:perplexity');
const MODEL = process.env.MODEL ?? join(here, '..', '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');
const TEXT = process.env.TEXT ?? join(here, 'heldout_stories.txt');
const CHUNK = Number(process.env.CHUNK ?? 128);
const CHUNKS = process.env.CHUNKS ? Number(process.env.CHUNKS) : Number.POSITIVE_INFINITY;
const MAX_NLL_DIFF = Number(process.env.MAX_NLL_DIFF ?? 0.01);
if (!existsSync(MODEL)) {
  log(`${MODEL} is missing: give MODEL=path/to.gguf (the default is ../shared's stories260K)`);
  process.exit(2);
}

const llamaDir = ensurePeer(log);
const engine = await Engine.load(MODEL, { threads: 1, contextLength: CHUNK, precision: 'fp32', activations: 'f32' });
const vocab = engine.config.vocab_size;
const ids = engine.tokenize(readFileSync(TEXT, 'utf8'));
const bos = engine.tokenize('')[0];
const total = Math.min(Math.floor(ids.length / CHUNK), CHUNKS);
if (total < 1) {
  log(`${TEXT} is ${ids.length} tokens: less than one chunk of ${CHUNK}`);
  process.exit(2);
}
const first = Math.floor(CHUNK / 2);

const logSoftmax = (z) => {
  let m = Number.NEGATIVE_INFINITY;
  for (const v of z) if (v > m) m = v;
  let s = 0;
  for (const v of z) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(z, (v) => v - lse);
};

// llama.cpp: every position's logits, chunk by chunk, the second half scored.
const llama = worker('llama-worker.mjs', [llamaDir, MODEL, '1', String(CHUNK)]);
const li = await llama.ready;
let llamaNll = 0;
let n = 0;
let kl = 0;
const llamaRows = [];
for (let c = 0; c < total; c++) {
  const part = ids.slice(c * CHUNK, (c + 1) * CHUNK);
  if (bos !== undefined) part[0] = bos;
  const { logits } = await llama.ask({ cmd: 'logits', ids: part, vocab });
  for (let j = first; j < CHUNK - 1; j++) {
    const lp = logSoftmax(logits[j]);
    llamaNll -= lp[part[j + 1]];
    llamaRows.push(lp);
    n++;
  }
}
await llama.stop();

// ie: engine.perplexity itself, and its rows for the KL divergence from llama.cpp's.
const t0 = performance.now();
const r = await engine.perplexity(ids, { chunkSize: CHUNK, maxChunks: total });
const seconds = (performance.now() - t0) / 1000;
let at = 0;
for (let c = 0; c < total; c++) {
  const part = ids.slice(c * CHUNK, (c + 1) * CHUNK);
  if (bos !== undefined) part[0] = bos;
  await engine.scorePositions(part, (row, count, pos) => {
    for (let j = 0; j < count; j++) {
      if (pos + j < first || pos + j >= CHUNK - 1) continue;
      const q = logSoftmax(row(j));
      const p = llamaRows[at++];
      let d = 0;
      for (let i = 0; i < vocab; i++) if (p[i] > Number.NEGATIVE_INFINITY) d += Math.exp(p[i]) * (p[i] - q[i]);
      kl += d;
    }
  });
}
await engine.dispose();

const info = cpuInfo();
const result = {
  model: MODEL,
  text: TEXT,
  chunk: CHUNK,
  chunks: total,
  tokens: n,
  ie: { perplexity: r.perplexity, stderr: r.stderr, meanNll: r.meanNll, seconds },
  llamaCpp: { perplexity: Math.exp(llamaNll / n), meanNll: llamaNll / n, release: li.release, nodeLlamaCpp: NLC_VERSION },
  meanNllDiff: Math.abs(r.meanNll - llamaNll / n),
  meanKlFromLlamaCpp: kl / n,
  cpu: info.cpu,
  isa: info.isa,
};
console.log(JSON.stringify(result));
console.log(
  `\n${MODEL.split('/').pop()} on ${TEXT.split('/').pop()}, ${total} chunks of ${CHUNK} (${n} tokens scored), both at FP32; CPU ${info.cpu}` +
    `\nie PPL ${r.perplexity.toFixed(4)} +/- ${r.stderr.toFixed(5)} | llama.cpp ${li.release} PPL ${result.llamaCpp.perplexity.toFixed(4)}` +
    ` | |mean NLL diff| ${result.meanNllDiff.toExponential(2)} | mean KL(llama.cpp || ie) ${result.meanKlFromLlamaCpp.toExponential(2)} nats`,
);
writeReport('peer-perplexity', MODEL, result);
if (result.meanNllDiff > MAX_NLL_DIFF) process.exit(1);
