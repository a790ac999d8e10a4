#!/usr/bin/env node
// What a user gets from npm: packs every published package (pnpm pack: workspace ranges become
// versions, @ie/kernels files its prebuilt addon), installs the tarballs with plain npm into a
// fresh directory WITH INSTALL SCRIPTS DISABLED (so nothing can be compiled), makes a model with
// the installed CLI and generates from ESM and from CommonJS. Fails loudly on any difference.
// Needs the workspace built (`pnpm build`) and the npm registry for third-party dependencies.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGES = ['packages/format', 'packages/kernels', 'packages/quant', 'packages/runtime', 'packages/server', 'apps/ie'];
const work = mkdtempSync(join(tmpdir(), 'ie-pack-'));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const fail = (msg) => {
  console.error(`pack-install: ${msg} (left in ${work})`);
  process.exit(1);
};

try {
  const pnpm = process.env.npm_execpath?.includes('pnpm') ? [process.execPath, [process.env.npm_execpath]] : ['pnpm', []];
  for (const p of PACKAGES) run(pnpm[0], [...pnpm[1], 'pack', '--pack-destination', work], join(root, p));
  const tarballs = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  if (tarballs.length !== PACKAGES.length) fail(`expected ${PACKAGES.length} tarballs, got ${tarballs.join(', ')}`);
  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'ie-pack-check', private: true }));
  run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.map((t) => join(work, t))], app);

  const kernels = join(app, 'node_modules', '@ie', 'kernels');
  if (existsSync(join(kernels, 'build'))) fail('@ie/kernels has a build/ directory although install scripts were off');
  const { platformKey } = createRequire(import.meta.url)(join(kernels, 'scripts', 'platform.cjs'));
  for (const key of new Set([platformKey(), 'linux-x64-gnu', 'linux-x64-musl']))
    if (!existsSync(join(kernels, 'prebuilds', key, 'ie_kernels.node'))) fail(`no prebuilt addon for ${key} in the tarball`);
  for (const f of ['LICENSE', 'README.md']) if (!existsSync(join(kernels, f))) fail(`@ie/kernels' tarball has no ${f}`);

  run(
    process.execPath,
    [join(app, 'node_modules', '@ie', 'cli', 'dist', 'cli.js'), 'synth', '--preset', 'tiny', '--out-dir', 'model'],
    app,
  );
  const body = `const e = await Engine.load('model', { threads: 1 });
const c = await e.complete('Once upon a time', { maxTokens: 8, temperature: 0, ignoreEos: true });
console.log(JSON.stringify({ tokens: c.tokens, isa: e.info().isa }));
await e.dispose();`;
  const esm = run(process.execPath, ['--input-type=module', '-e', `import { Engine } from '@ie/runtime';\n${body}`], app);
  const cjs = run(process.execPath, ['-e', `const { Engine } = require('@ie/runtime');\n(async () => {\n${body}\n})();`], app);
  const a = JSON.parse(esm.trim().split('\n').pop());
  const b = JSON.parse(cjs.trim().split('\n').pop());
  if (a.tokens.length !== 8) fail(`ESM generated ${a.tokens.length} tokens, expected 8`);
  if (JSON.stringify(a) !== JSON.stringify(b)) fail(`ESM and CommonJS differ: ${esm} vs ${cjs}`);
  console.log(
    `pack-install: ${tarballs.length} tarballs installed with scripts off; prebuilt addon (${platformKey()}, ISA ${a.isa}); ESM and CommonJS generate the same 8 tokens`,
  );
  rmSync(work, { recursive: true, force: true });
} catch (e) {
  fail(`${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
}
