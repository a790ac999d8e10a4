#!/usr/bin/env node
// The README's main job on the embedded default: a seeded random llama model (stories15M
// shape) made as a Hugging Face directory, converted to IEBIN, inspected, validated, then run:
// a greedy generation and one benchmark line; then exported again per the default int4w
// quantization policy: the calibration gate measures it first, and random weights do not keep
// their behaviour at 4 bits, so the gate refuses (exit 5, nothing written); the demo then
// exports it unmeasured with --no-gate (recorded as such), checks it against the policy and
// benchmarks it. (Random weights: the text is noise; the point is the way through and the figures.)
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
  ['convert', '--hf-dir', hf, '--out-dir', q4, '--q4-map', 'quant/q4_manifest.json', '--no-gate'],
  ['validate', q4, '--manifest', 'quant/q4_manifest.json'],
  ['bench', q4, '--prompts', 'benchmarks/prompts_10.txt', '--runs', '1', '--max-new', '16'],
];

// Exit codes a step may end with: the gated export of random weights is refused (5).
const allowed = (args) => (args[0] === 'convert' && args.includes('--q4-map') && !args.includes('--no-gate') ? [0, 5] : [0]);
for (const args of steps) {
  process.stdout.write(`\n$ ie ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status === 5 && allowed(args).includes(5)) {
    process.stdout.write('(the gate refused the random weights at int4, as it should: nothing was written)\n');
    continue;
  }
  if (r.status !== 0) {
    process.stderr.write(`demo: "ie ${args[0]}" failed with exit code ${r.status}\n`);
    process.exit(r.status ?? 1);
  }
}
process.stdout.write(`\nThe model is in ${out}/ (model.ie.json + model.ie.bin). Try: pnpm ie generate ${out} "Once upon a time"\n`);
