#!/usr/bin/env node
// `PROMPTS=benchmarks/prompts_10.txt RUNS=3 pnpm bench`: the seed's harness on a model
// (MODEL, default models/demo; made with `ie synth --preset stories15m` when missing), one
// JSON line per run. Other `ie bench` flags pass through: pnpm bench -- --precision int4w
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'apps', 'ie', 'dist', 'cli.js');
const model = process.env.MODEL ?? 'models/demo';
const run = (args) => spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' }).status ?? 1;
if (!existsSync(join(root, model, 'model.ie.json'))) {
  process.stderr.write(`bench: ${model} does not exist; making it: ie synth --preset stories15m --out-dir ${model}\n`);
  const code = run(['synth', '--preset', 'stories15m', '--out-dir', model, '--quiet']);
  if (code !== 0) process.exit(code);
}
const prompts = process.env.PROMPTS ?? 'benchmarks/prompts_10.txt';
process.exit(run(['bench', model, '--prompts', prompts, ...process.argv.slice(2)]));
