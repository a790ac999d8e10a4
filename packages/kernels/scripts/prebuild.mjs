#!/usr/bin/env node
// Files the built addon under prebuilds/<platform key>/ with its build record, so that a packed
// tarball loads without a compiler (the package's `prepack` step), and builds the musl one beside
// it with zig (scripts/build-zig.mjs). One binary serves every x86-64 CPU: the AVX2 / AVX-VNNI /
// AVX-512 translation units are compiled with their own flags and chosen at run time from CPUID,
// the rest for baseline x86-64.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { sourcesHash } = require('./sources-hash.cjs');
const { platformKey } = require('./platform.cjs');

const built = join(pkgDir, 'build', 'Release');
const stampPath = join(built, 'ie_kernels.stamp.json');
if (!existsSync(join(built, 'ie_kernels.node')) || !existsSync(stampPath)) {
  console.error('@ie/kernels: no built addon to file as a prebuild: run `pnpm --filter @ie/kernels build` first');
  process.exit(1);
}
const stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
if (stamp.sources !== sourcesHash(pkgDir)) {
  console.error('@ie/kernels: the built addon is older than native/: rebuild before packing');
  process.exit(1);
}
const dest = join(pkgDir, 'prebuilds', platformKey());
rmSync(join(pkgDir, 'prebuilds'), { recursive: true, force: true });
mkdirSync(dest, { recursive: true });
copyFileSync(join(built, 'ie_kernels.node'), join(dest, 'ie_kernels.node'));
copyFileSync(stampPath, join(dest, 'ie_kernels.stamp.json'));
console.log(`@ie/kernels: prebuilt addon filed under prebuilds/${platformKey()}`);
if (platformKey() === 'linux-x64-gnu')
  execFileSync(process.execPath, [join(pkgDir, 'scripts', 'build-zig.mjs'), '--libc', 'musl', '--out', join(pkgDir, 'prebuilds', 'linux-x64-musl')], { stdio: 'inherit' });
