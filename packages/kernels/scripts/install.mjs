#!/usr/bin/env node
// The package's install step. Without it npm and pnpm would run `node-gyp rebuild` on their own
// (they do for any package with a binding.gyp) and skip the build record. Inside the ie
// repository the turbo `build` task builds the addon, so installing does nothing; installed as a
// dependency from the registry, it builds the addon here.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
if (existsSync(join(pkgDir, '..', '..', 'pnpm-workspace.yaml'))) process.exit(0);
execFileSync(process.execPath, [join(pkgDir, 'scripts', 'build-addon.mjs')], { stdio: 'inherit' });
