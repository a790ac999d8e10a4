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
// Strict mode (the seed's IE_REQUIRE_MODEL=1): a missing model is an error, never made up.
const strict = process.env.IE_REQUIRE_MODEL ?? '';
if (!['', '0', '1'].includes(strict)) {
  process.stderr.write(`bench: IE_REQUIRE_MODEL must be 0 or 1, got ${JSON.stringify(strict)}\n`);
  process.exit(2);
}
if (!existsSync(join(root, model, 'model.ie.json')) && strict === '1') {
  process.stderr.write(
    `bench: ${model} is not an IEBIN model (no model.ie.json) and IE_REQUIRE_MODEL=1 forbids making one; set MODEL=DIR or convert a model there (ie convert) [IEBIN_NOT_FOUND]\n`,
  );
  process.exit(3);
}
if (!existsSync(join(root, model, 'model.ie.json'))) {
  process.stderr.write(`bench: ${model} does not exist; making it: ie synth --preset stories15m --out-dir ${model}\n`);
  const code = run(['synth', '--preset', 'stories15m', '--out-dir', model, '--quiet']);
  if (code !== 0) process.exit(code);
}
const prompts = process.env.PROMPTS ?? 'benchmarks/prompts_10.txt';
process.exit(run(['bench', model, '--prompts', prompts, ...process.argv.slice(2)]));
