#!/usr/bin/env node
// The package's install step. Without it npm and pnpm would run `node-gyp rebuild` on their own
// (they do for any package with a binding.gyp). Inside the ie repository the turbo `build` task
// builds the addon, so installing does nothing; installed from a tarball or the registry, the
// prebuilt addon for this platform is used when there is one (no compiler needed), and the C++
// sources are built otherwise. On CPUs the kernels do not support the install succeeds and the
// first use says why (KERNELS_UNSUPPORTED_PLATFORM), so a dependent package still installs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(join(pkgDir, '..', '..', 'pnpm-workspace.yaml'))) process.exit(0);
const { platformKey, supportedArch } = createRequire(import.meta.url)('./platform.cjs');
if (existsSync(join(pkgDir, 'prebuilds', platformKey(), 'ie_kernels.node'))) {
  console.log(`@ie/kernels: using the prebuilt addon for ${platformKey()}`);
  process.exit(0);
}
if (!supportedArch()) {
  console.warn(`@ie/kernels: no build for ${platformKey()}: ie needs an x86-64 CPU (arm64 is planned); nothing was compiled`);
  process.exit(0);
}
execFileSync(process.execPath, [join(pkgDir, 'scripts', 'build-addon.mjs')], { stdio: 'inherit' });
