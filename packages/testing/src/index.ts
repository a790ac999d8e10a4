/**
 * Test helpers shared by the ie packages. Source-only (vitest compiles it); never published.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder with pnpm-workspace.yaml). */
export const REPO_ROOT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'pnpm-workspace.yaml'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find the repository root');
    d = up;
  }
  return d;
})();

/** ../shared beside the checkout (IE_SHARED_DIR overrides). */
export const SHARED_DIR = resolve(process.env.IE_SHARED_DIR ?? join(REPO_ROOT, '..', 'shared'));
export const STORIES_DIR = join(SHARED_DIR, 'models', 'stories260K');
export const HAS_STORIES = existsSync(join(STORIES_DIR, 'stories260K.bin'));
/** Title suffix for suites that need the shared model, so a skip says why. */
export const STORIES_REASON = HAS_STORIES ? '' : ` — SKIPPED: ${STORIES_DIR} not found (CI provides ../shared)`;
if (!HAS_STORIES) process.stderr.write(`[ie tests] ${STORIES_DIR} not found: tests on the real stories260K model are skipped\n`);

/** The built `ie` CLI. */
export const IE_CLI = join(REPO_ROOT, 'apps', 'ie', 'dist', 'cli.js');

/** Runs the built `ie` with `args`; returns its exit code, stdout and stderr. */
export function runIe(args: string[], env: NodeJS.ProcessEnv = process.env): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [IE_CLI, ...args], { encoding: 'utf8', env });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Seeded uniform/normal floats (mulberry32), never zeros. */
export function seededFloats(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (u * 2 - 1) * scale;
  }
  return out;
}

/** Bit-exact comparison of two arrays; on failure names the first differing index (fast, unlike deep equality on big arrays). */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return `index ${i}: ${a[i]} vs ${b[i]}`;
  }
  return null;
}

/** Whether two byte arrays are identical. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

export * from './ggml.js';
export * from './gguf.js';
export * from './kquants.js';
