// What the side-by-side harnesses share: node-llama-cpp installed on demand into a cache
// directory (not a dependency of ie), the same weights for both engines (an `ie synth --format
// gguf` file and its `ie convert --gguf` IEBIN, cached), and the workers speaking protocol.mjs.
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { refuseToMake } from '../lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const cli = join(root, 'apps', 'ie', 'dist', 'cli.js');
export const NLC_VERSION = '3.22.1';
export const PEER_DIR =
  process.env.PEER_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'ie', 'peer', `node-llama-cpp-${NLC_VERSION}`);
export const CACHE = process.env.CACHE_DIR ?? join(here, '..', '.cache');

export const logTo = (name) => (m) => process.stderr.write(`${name}: ${m}\n`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
}

/**
 * Installs node-llama-cpp into PEER_DIR unless it is there, and returns the directory the llama.cpp
 * workers load it from: PEER_DIR itself (llama.cpp picks its CPU backend for the machine), or a
 * copy holding one CPU backend only (llamaCpuVariant()), so that `IE_ISA=avx2` on an AVX-512 CPU
 * meets llama.cpp's AVX2 build rather than its AVX-512 one.
 */
export function ensurePeer(log) {
  if (!existsSync(join(PEER_DIR, 'node_modules', 'node-llama-cpp', 'package.json'))) {
    log(`installing node-llama-cpp@${NLC_VERSION} into ${PEER_DIR} (about 700 MB, prebuilt binaries, no compiler)`);
    mkdirSync(PEER_DIR, { recursive: true });
    writeFileSync(join(PEER_DIR, 'package.json'), JSON.stringify({ name: 'ie-peer', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `node-llama-cpp@${NLC_VERSION}`], { cwd: PEER_DIR });
  }
  const variant = llamaCpuVariant();
  return variant ? peerWithOneCpuBackend(variant, log) : PEER_DIR;
}

/**
 * The llama.cpp CPU backend to force (a `libggml-cpu-<name>.so` of the prebuilt binaries), or null
 * for llama.cpp's own choice: LLAMA_CPU_VARIANT names it (`best` = llama.cpp's choice); unset, it
 * follows IE_ISA, so that both engines run the same instruction-set family (avx2 -> haswell:
 * AVX2 + FMA + F16C; avxvnni -> alderlake: the same plus AVX-VNNI).
 */
export function llamaCpuVariant() {
  const named = process.env.LLAMA_CPU_VARIANT;
  if (named) return named === 'best' ? null : named;
  return { avx2: 'haswell', avxvnni: 'alderlake' }[process.env.IE_ISA ?? ''] ?? null;
}

const cpuBackend = /^libggml-cpu-(.+)\.so$/;

// The prebuilt packages' binary folders (node_modules/@node-llama-cpp/*/bins/*) that hold CPU backends.
function binFolders(root) {
  const scope = join(root, 'node_modules', '@node-llama-cpp');
  if (!existsSync(scope)) return [];
  const out = [];
  for (const pkg of readdirSync(scope)) {
    const bins = join(scope, pkg, 'bins');
    if (!existsSync(bins)) continue;
    for (const d of readdirSync(bins)) if (readdirSync(join(bins, d)).some((f) => cpuBackend.test(f))) out.push(join(bins, d));
  }
  return out;
}

// PEER_DIR/cpu-<variant>: PEER_DIR's files hard-linked (no copy of 700 MB), every other CPU backend
// left out, so that ggml's loader has one to choose. Made under a temporary name and renamed, so an
// interrupted run leaves no half-made copy behind.
function peerWithOneCpuBackend(variant, log) {
  const dir = join(PEER_DIR, `cpu-${variant}`);
  if (existsSync(join(dir, 'package.json'))) return dir;
  const available = new Set(
    binFolders(PEER_DIR).flatMap((d) =>
      readdirSync(d)
        .map((f) => cpuBackend.exec(f)?.[1])
        .filter(Boolean),
    ),
  );
  if (!available.has(variant))
    throw new Error(
      `LLAMA_CPU_VARIANT=${variant}: node-llama-cpp@${NLC_VERSION} has no such CPU backend; it has ${[...available].sort().join(', ')} (or 'best')`,
    );
  log(`making ${dir}: node-llama-cpp with llama.cpp's ${variant} CPU backend only`);
  const tmp = `${dir}.partial-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const linkTree = (from, to) => {
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) {
      const a = join(from, name);
      const b = join(to, name);
      const st = lstatSync(a);
      if (st.isDirectory()) linkTree(a, b);
      else if (st.isSymbolicLink()) symlinkSync(readlinkSync(a), b);
      else linkSync(a, b);
    }
  };
  linkTree(join(PEER_DIR, 'node_modules'), join(tmp, 'node_modules'));
  for (const d of binFolders(tmp))
    for (const f of readdirSync(d)) if (cpuBackend.test(f) && cpuBackend.exec(f)[1] !== variant) unlinkSync(join(d, f));
  writeFileSync(join(tmp, 'package.json'), JSON.stringify({ name: `ie-peer-cpu-${variant}`, private: true }));
  renameSync(tmp, dir);
  return dir;
}

/** The GGUF file and its IEBIN conversion for each type, made (and cached) unless `strict` (IE_REQUIRE_MODEL=1). */
export function modelFiles(name, preset, types, strict, log) {
  mkdirSync(CACHE, { recursive: true });
  // LAYERS=N keeps the first N layers of the preset (`ie synth --layers`): gpt-oss-20b's 13.8 GB
  // twice (GGUF and IEBIN) do not stay in the page cache of a 24 GB machine together, so the whole
  // model runs one engine at a time (peer.mjs, ORDER=blocks).
  const layers = process.env.LAYERS;
  const tag = layers ? `-${layers}l` : '';
  const files = {};
  for (const type of types) {
    const gguf = join(CACHE, `${preset}${tag}-${type}.gguf`);
    const iebin = join(CACHE, `${preset}${tag}-${type}.iebin`);
    if (!existsSync(gguf)) {
      if (strict) refuseToMake(name, gguf);
      log(`making ${gguf}`);
      run(process.execPath, [
        cli,
        'synth',
        '--preset',
        preset,
        ...(layers ? ['--layers', layers] : []),
        '--format',
        'gguf',
        '--dtype',
        type,
        '--out',
        gguf,
      ]);
    }
    if (!existsSync(join(iebin, 'model.ie.json'))) {
      if (strict) refuseToMake(name, iebin);
      log(`converting ${gguf} for ie`);
      run(process.execPath, [cli, 'convert', '--gguf', gguf, '--out-dir', iebin, '--quiet']);
    }
    files[type] = { gguf, iebin, ggufBytes: statSync(gguf).size };
  }
  return files;
}

/** A worker process (llama-worker.mjs or ie-worker.mjs) and its request/reply channel. */
export function worker(script, args, env = process.env) {
  const child = spawn(process.execPath, [join(here, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`${script} exited (${child.exitCode})`);
    const r = JSON.parse(value);
    if (r.error) throw new Error(`${script}: ${r.error}`);
    return r;
  };
  return {
    ready: next(),
    async ask(req) {
      child.stdin.write(`${JSON.stringify(req)}\n`);
      return next();
    },
    async stop() {
      child.stdin.write(`${JSON.stringify({ cmd: 'exit' })}\n`);
      await new Promise((r) => child.once('exit', r));
    },
  };
}
