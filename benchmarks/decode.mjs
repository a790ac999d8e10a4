#!/usr/bin/env node
// End-to-end decode benchmark: each precision's decode tokens/s on a model, its effective
// bandwidth (weight bytes per token x tokens/s), and the machine's read bandwidth measured in
// the same run (probed right before and after each precision).
//
//   MODEL=models/tinyllama-1.1b THREADS=2 node benchmarks/decode.mjs
//   (MODEL defaults to models/tinyllama-1.1b, made with `ie synth --preset tinyllama-1.1b` if missing)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '@ie/runtime';
import { randomBuffer, readBandwidth, refuseToMake, requireModel } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const MODEL = process.env.MODEL ?? join(root, 'models', 'tinyllama-1.1b');
const THREADS = (process.env.THREADS ?? '2').split(',').map(Number);
const TOKENS = Number(process.env.TOKENS ?? 32);
const VARIANTS = (process.env.PRECISIONS ?? 'fp32,fp16,bf16,int8w,int4w,int8w+int8act,int4w+int8act').split(',');

if (!existsSync(join(MODEL, 'model.ie.json'))) {
  if (requireModel('decode')) refuseToMake('decode', MODEL);
  console.error(`decode: ${MODEL} does not exist; making it (ie synth --preset tinyllama-1.1b, about a minute)`);
  const r = spawnSync(
    process.execPath,
    [join(root, 'apps', 'ie', 'dist', 'cli.js'), 'synth', '--preset', 'tinyllama-1.1b', '--out-dir', MODEL, '--quiet'],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const probeBuf = randomBuffer(2 ** 30);
const bandwidth = (threads) => readBandwidth(probeBuf, threads).gbs;

const rows = [];
for (const threads of THREADS) {
  for (const v of VARIANTS) {
    const [precision, act] = v.split('+');
    const t0 = performance.now();
    const engine = await Engine.load(MODEL, { precision, threads, activations: act === 'int8act' ? 'int8' : 'f32' });
    const loadS = (performance.now() - t0) / 1000;
    const prompt = [1, 415, 2021, 338, 263, 931, 29892, 727];
    await engine.complete(prompt, { temperature: 0, maxTokens: 8 });
    const bw1 = bandwidth(threads);
    const r = await engine.complete(prompt, { temperature: 0, maxTokens: TOKENS });
    const bw2 = bandwidth(threads);
    const info = engine.info();
    const m = r.metrics;
    const bw = Math.max(bw1, bw2);
    const row = {
      model: MODEL.split('/').pop(),
      variant: v,
      threads,
      isa: info.isa,
      loadS: +loadS.toFixed(1),
      weightBytesPerToken: info.weightBytesPerToken,
      decodeTokensPerSec: +m.decodeTokensPerSec.toFixed(2),
      p50Ms: +m.latencyP50Ms.toFixed(2),
      effectiveGBs: +m.effectiveGBs.toFixed(2),
      readBandwidthGBs: +bw.toFixed(2),
      ratio: +(m.effectiveGBs / bw).toFixed(3),
      prefillTokensPerSec: +m.prefillTokensPerSec.toFixed(1),
      peakRssBytes: m.peakRssBytes,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
    await engine.dispose();
  }
}
console.log('\n| precision | threads | decode tok/s | weight MB/token | effective GB/s | read bandwidth GB/s | ratio | p50 ms |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(
    `| ${r.variant} | ${r.threads} | ${r.decodeTokensPerSec} | ${(r.weightBytesPerToken / 1e6).toFixed(0)} | ${r.effectiveGBs} | ${r.readBandwidthGBs} | ${(100 * r.ratio).toFixed(0)}% | ${r.p50Ms} |`,
  );
mkdirSync(join(here, 'reports'), { recursive: true });
const file = join(here, 'reports', `decode-${rows[0]?.model}-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(file, JSON.stringify(rows, null, 2));
console.log(`\nwrote ${file}`);
