#!/usr/bin/env node
// The README's main job on the embedded default: a seeded random llama model (stories15M
// shape) made as a Hugging Face directory, converted to IEBIN, inspected, validated, then run:
// a greedy generation and one benchmark line; then exported again per the default int4w
// quantization policy, checked against it, and benchmarked. (Random weights: the text is
// noise; the point is the way through and the figures.)
// Each step is printed as the `ie` command a user would type.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'apps', 'ie', 'dist', 'cli.js');
const hf = process.env.IE_DEMO_HF ?? 'models/demo-hf';
const out = process.env.IE_DEMO_OUT ?? 'models/demo';
const q4 = `${out}-q4`;

const steps = [
  ['synth', '--preset', 'stories15m', '--format', 'hf', '--shards', '2', '--seed', '1', '--out-dir', hf],
  ['convert', '--hf-dir', hf, '--out-dir', out],
  ['inspect', out],
  ['validate', out, '--deep'],
  ['generate', out, 'Once upon a time', '--max-tokens', '32', '--temperature', '0'],
  ['bench', out, '--prompts', 'benchmarks/prompts_10.txt', '--runs', '1', '--max-new', '16'],
  ['convert', '--hf-dir', hf, '--out-dir', q4, '--q4-map', 'quant/q4_manifest.json'],
  ['validate', q4, '--manifest', 'quant/q4_manifest.json'],
  ['bench', q4, '--prompts', 'benchmarks/prompts_10.txt', '--runs', '1', '--max-new', '16'],
];

for (const args of steps) {
  process.stdout.write(`\n$ ie ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`demo: "ie ${args[0]}" failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}
process.stdout.write(`\nThe model is in ${out}/ (model.ie.json + model.ie.bin). Try: pnpm ie generate ${out} "Once upon a time"\n`);
