// Helpers shared by the benchmark harnesses.
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomFillSync } from 'node:crypto';
import { KernelContext, alignedBytes } from '@ie/kernels';
import { resolveContextOptions } from '@ie/runtime';

/**
 * Benchmark buffers live in 2 MiB transparent huge pages, as the engine's weights do (its
 * default weight memory, where the kernel allows): HUGE_PAGES=0 puts them in ordinary
 * JavaScript memory (4 KiB pages), as before 2026-12-02.
 */
export const HUGE_PAGES = process.env.HUGE_PAGES !== '0';
let allocator; // made on first use: a harness that allocates nothing starts no thread pool for it

/**
 * `bytes` zeroed bytes, 64-byte aligned, in huge pages unless HUGE_PAGES=0, and `free()`.
 * Huge-page memory lives outside the JavaScript heap, where the collector never feels it: a
 * harness that makes matrix after matrix frees each one itself (bench:kernels once grew to 24 GiB
 * and was killed).
 */
export function benchBytes(bytes) {
  if (!HUGE_PAGES) return { bytes: alignedBytes(bytes), free() {} };
  allocator ??= KernelContext.create({ threads: 1 });
  const memory = allocator.allocate(bytes, { hugePages: true });
  return { bytes: memory.bytes, free: () => memory.close() };
}

/** The kernels' view of this machine (CPU name, ISA, cores, ...), as every report records it. */
export function cpuInfo() {
  const c = KernelContext.create(resolveContextOptions({ threads: 1 }));
  try {
    return c.info();
  } finally {
    c.close();
  }
}

/**
 * A buffer of distinct random bytes. Never fill a probe or weight buffer with a repeated
 * pattern: a hypervisor may merge identical pages, and reads of merged pages come from cache
 * (that flatters every bandwidth figure it touches).
 */
export function randomBuffer(bytes) {
  const b = benchBytes(bytes).bytes; // probe buffers live as long as the harness
  for (let o = 0; o < bytes; o += 1 << 30) randomFillSync(b, o, Math.min(1 << 30, bytes - o));
  return b;
}

/** The machine's read bandwidth in GB/s with `threads` threads: the best reader, best of `passes`. */
export function readBandwidth(buf, threads, passes = 2) {
  const ctx = KernelContext.create(resolveContextOptions({ threads }));
  try {
    const r = ctx.readBandwidth(buf, passes);
    return { gbs: r.gbs, variant: r.variant };
  } finally {
    ctx.close();
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Strict mode (the seed's IE_REQUIRE_MODEL=1): the harnesses never make a model that is missing.
 * Returns whether it is on; exits 2 on a value other than 0 or 1.
 */
export function requireModel(tool) {
  const v = process.env.IE_REQUIRE_MODEL ?? '';
  if (!['', '0', '1'].includes(v)) {
    process.stderr.write(`${tool}: IE_REQUIRE_MODEL must be 0 or 1, got ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return v === '1';
}

/** In strict mode, a missing model ends the harness with one line and exit 3. */
export function refuseToMake(tool, what) {
  process.stderr.write(`${tool}: ${what} is missing and IE_REQUIRE_MODEL=1 forbids making it [IEBIN_NOT_FOUND]\n`);
  process.exit(3);
}

/**
 * Writes a harness's JSON to reports/<prefix>-<model file, its extension dropped>[-REPORT]-<date>.json
 * and prints where.
 */
export function writeReport(prefix, modelPath, report) {
  const out = join(dirname(fileURLToPath(import.meta.url)), 'reports');
  mkdirSync(out, { recursive: true });
  const name = basename(modelPath).replace(/\.(gguf|iebin)$/, '');
  const tag = process.env.REPORT ? `-${process.env.REPORT}` : '';
  const file = join(out, `${prefix}-${name}${tag}-${new Date().toISOString().slice(0, 10)}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${file}`);
  return file;
}
