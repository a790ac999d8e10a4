#!/usr/bin/env node
// Runs the kernels' test suite against the addon built with -fsanitize=address,undefined
// (build-asan/). Node itself is not instrumented, so the sanitizer runtimes are preloaded.
// Any out-of-bounds access or undefined behaviour aborts the test worker and fails the run.
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
execFileSync(process.execPath, [join(pkgDir, 'scripts', 'build-addon.mjs'), '--sanitize'], { stdio: 'inherit' });
const runtime = (lib) => execFileSync(process.env.CXX || 'g++', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim();
const env = {
  ...process.env,
  LD_PRELOAD: [runtime('libasan.so'), runtime('libubsan.so'), process.env.LD_PRELOAD].filter(Boolean).join(' '),
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  IE_KERNELS_ADDON: join(pkgDir, 'build-asan', 'build', 'Release', 'ie_kernels.node'),
};
const vitest = join(pkgDir, 'node_modules', 'vitest', 'vitest.mjs');
const r = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], { cwd: pkgDir, env, stdio: 'inherit' });
process.exit(r.status ?? 1);
