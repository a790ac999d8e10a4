#!/usr/bin/env node
// Builds the native addon with node-gyp (the turbo `build` task runs this before tsup).
// Skips the compile when build/Release/ie_kernels.node matches the sources. `--sanitize`
// builds an AddressSanitizer + UndefinedBehaviorSanitizer variant into build-asan/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nodedir } from './node-headers.mjs';


const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const sanitize = process.argv.includes('--sanitize');
const force = process.argv.includes('--force');
const require = createRequire(import.meta.url);
const { sourcesHash } = require('./sources-hash.cjs');


const buildDir = sanitize ? join(pkgDir, 'build-asan') : pkgDir;
const out = join(buildDir, 'build', 'Release');
const stampPath = join(out, 'ie_kernels.stamp.json');
const hash = sourcesHash(pkgDir);
if (!force && existsSync(join(out, 'ie_kernels.node')) && existsSync(stampPath)) {
  const stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
  if (stamp.sources === hash) {
    console.log(`@ie/kernels: ${sanitize ? 'sanitizer ' : ''}addon up to date`);
    process.exit(0);
  }
}

if (sanitize) {
  // A binding.gyp beside build-asan/ whose paths point back into the package, plus sanitizer flags.
  const gyp = JSON.parse(readFileSync(join(pkgDir, 'binding.gyp'), 'utf8'));
  const san = ['-fsanitize=address,undefined', '-fno-sanitize-recover=undefined', '-fno-omit-frame-pointer', '-g'];
  gyp.target_defaults.include_dirs = gyp.target_defaults.include_dirs.map((d) => (d === 'native' ? '../native' : d));
  gyp.target_defaults.cflags_cc.push(...san);
  gyp.target_defaults.ldflags = [...(gyp.target_defaults.ldflags ?? []), '-fsanitize=address,undefined'];
  for (const t of gyp.targets) t.sources = t.sources.map((s) => `../${s}`);
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(join(buildDir, 'binding.gyp'), JSON.stringify(gyp, null, 2));
}

const gypBin = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
const args = [gypBin, 'rebuild', `--jobs=${Math.max(1, cpus().length)}`];
const nd = nodedir();
if (nd) args.push(`--nodedir=${nd}`);
console.log(`@ie/kernels: building the ${sanitize ? 'sanitizer ' : ''}addon (node-gyp${nd ? `, headers from ${nd}` : ''})`);
try {
  execFileSync(process.execPath, args, { cwd: buildDir, stdio: 'inherit' });
} catch {
  console.error('@ie/kernels: the native build failed. It needs g++ (C++17), python3, make and Node\'s headers (set npm_config_nodedir to a Node install prefix that has include/node).');
  process.exit(1);
}
writeFileSync(stampPath, JSON.stringify({ sources: hash, sanitize, node: process.version }, null, 2));
console.log(`@ie/kernels: built ${join(out, 'ie_kernels.node')}`);
