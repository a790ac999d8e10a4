/**
 * Loading the native addon, the first of: the file named by IE_KERNELS_ADDON (e.g. the sanitizer
 * build); build/Release/ie_kernels.node beside this package (a source build); the prebuilt addon
 * for this platform under prebuilds/ (what a packed or published package carries, so installing it
 * needs no compiler). A missing addon, one older than the C++ sources next to it, or a platform
 * the kernels do not support is a KernelError saying what to do.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError } from './errors.js';

export interface NativeInfo {
  isa: string;
  /** Variant of the int8-activation kernels: avx512vnni, or scalar where the CPU lacks VNNI. */
  int8Activations: string;
  /** The prefill GEMM's micro-kernel, e.g. "6x16 avx2". */
  gemm: string;
  /** The int8-activation prefill GEMM (symmetric q4 in the int8 mode), e.g. "16x8 avx512vnni"; "none": such chunks take the FP32 GEMM. */
  int8Gemm: string;
  /**
   * When symmetric q4 in 16-row records (WeightMatrix.interleaveRows16) pays on this ISA: `always`
   * (AVX-512 VNNI, and AVX2 on Zen 3: one activation row no slower than the row
   * layout, several faster), `batched` (the other AVX2 and AVX-VNNI cores: several rows faster, one
   * row up to a tenth slower), `none` (the scalar reference).
   */
  q4Rows16: 'always' | 'batched' | 'none';
  /** When i8 in 16-row records pays: `batched` (AVX-512 VNNI, AVX2), `none` (the scalar reference). */
  i8Rows16: 'always' | 'batched' | 'none';
  /**
   * When iq4_nl in 16-row records pays: `always` (AVX2 on Zen 3, where it was measured), `none`
   * elsewhere (not measured against the row kernels; `q4Layout: 'rows16'` forces them).
   */
  iq4NlRows16: 'always' | 'batched' | 'none';
  /**
   * When q4_k / q6_k in 16-row records pay: `always` (Zen 3 and Zen 5, where they were measured), `none`
   * elsewhere (not measured against the row kernels; `q4Layout: 'rows16'` forces them). q5_k: `always`
   * on Zen 5 with AVX-512 VNNI, `batched` where only its 256-bit kernel runs and q4_k's records pay
   * (a lone row no faster than rows there, eight 1.5x), else `none`.
   */
  q4kRows16: 'always' | 'batched' | 'none';
  q5kRows16: 'always' | 'batched' | 'none';
  q6kRows16: 'always' | 'batched' | 'none';
  threads: number;
  affinity: string;
  pinnedCpus: number[];
  pinError: string;
  physicalCores: number;
  logicalCpus: number;
  numa: { nodes: number; policy: string; detail: string };
  features: Record<string, boolean>;
  cpu: string;
  supportedIsas: string[];
}

export interface NativeMatrix {
  readonly rows: number;
  readonly cols: number;
  dispose(): void;
  interleaveRows16(): void;
  reorderBlockedK(blockK: number): void;
}

export interface NativeMapping {
  readonly buffer: ArrayBuffer | null;
  readonly length: number;
  view(offset: number, length: number): ArrayBuffer;
  readonly hugePages: boolean;
  readonly hugePagesDetail: string;
  mapFileOver(path: string, fileOffset: number, at: number, length: number): void;
  close(): void;
}

export interface NativeProgram {
  readonly size: number;
  run(): void;
  runAsync(): Promise<void>;
}

export interface NativeContext {
  compile(spec: Record<string, unknown>): NativeProgram;
  touch(m: NativeMapping, bytes: number, stride: number, start: number): { seconds: number; next: number; lines: number; checksum: number };
  info(): NativeInfo;
  close(): void;
  matrix(desc: Record<string, number>, data: Uint8Array, mapping?: NativeMapping): NativeMatrix;
  gemv(m: NativeMatrix, x: Float32Array, y: Float32Array, activations?: number): void;
  gemm(m: NativeMatrix, X: Float32Array, M: number, Y: Float32Array): void;
  gemmAsync(m: NativeMatrix, X: Float32Array, M: number, Y: Float32Array): Promise<void>;
  row(m: NativeMatrix, r: number, out: Float32Array): void;
  rmsnorm(x: Float32Array, w: Float32Array, eps: number, out: Float32Array, n: number): void;
  softmax(x: Float32Array, n: number): void;
  rope(x: Float32Array, nHeads: number, headDim: number, cos: Float32Array, sin: Float32Array, style: number): void;
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  scale(x: Float32Array, s: number, n: number): void;
  argmax(x: Float32Array, n: number): number;
  dot(a: Float32Array, b: Float32Array, n: number): number;
  f32ToF16(x: Float32Array, out: Uint16Array, n: number): void;
  f16ToF32(x: Uint16Array, out: Float32Array, n: number): void;
  attention(args: Record<string, unknown>): void;
  mapFile(path: string, offset: number, length: number, advice: string, hugePages: boolean, populate: boolean): NativeMapping;
  allocateMemory(length: number, hugePages: boolean): NativeMapping;
  numaBind(m: NativeMapping): { nodes: number; policy: string; applied: boolean; detail: string };
  readBandwidth(buf: Uint8Array, passes: number): { bytes: number; seconds: number; variant: string; checksum: number };
  fmaPeak(seconds: number): number;
}

export interface NativeAddon {
  Context: new (options: { threads?: number; affinity?: string; numa?: string; isa?: string }) => NativeContext;
  constants: Record<string, unknown>;
  matrixBytes(desc: Record<string, number>): number;
  alignedBytes(byteLength: number): Uint8Array;
  addressAlignment(bytes: Uint8Array): number;
  attentionMaxPositions(heads: number, kvHeads: number, headDim: number, window: number, queries: number): number;
  sanitized: boolean;
}

const here = dirname(fileURLToPath(import.meta.url));
/** The package root (dist/ and src/ both sit one level below it). */
export const PACKAGE_DIR = join(here, '..');

let loaded: NativeAddon | undefined;

function buildHint(): string {
  return "build it with `pnpm --filter @ie/kernels build` (or `pnpm build` at the repository root); it needs g++, make, python3 and Node's headers";
}

interface PlatformScript {
  platformKey: () => string;
  supportedArch: () => boolean;
}

/** The addon to load and whether its build record must match native/. */
function locateAddon(): { path: string; checkStamp: boolean } {
  // The one environment read in @ie/kernels: which binary to load is decided before any caller passes options (the sanitizer run, scripts/test-asan.mjs, swaps it under every test file).
  const named = process.env.IE_KERNELS_ADDON;
  if (named) {
    if (!existsSync(named))
      throw new KernelError('KERNELS_NOT_BUILT', `the native addon ${named} (IE_KERNELS_ADDON) does not exist: ${buildHint()}`);
    return { path: named, checkStamp: false };
  }
  const sourceBuild = join(PACKAGE_DIR, 'build', 'Release', 'ie_kernels.node');
  if (existsSync(sourceBuild)) return { path: sourceBuild, checkStamp: true };
  const require = createRequire(import.meta.url);
  const { platformKey, supportedArch } = require(join(PACKAGE_DIR, 'scripts', 'platform.cjs')) as PlatformScript;
  const prebuilt = join(PACKAGE_DIR, 'prebuilds', platformKey(), 'ie_kernels.node');
  if (existsSync(prebuilt)) return { path: prebuilt, checkStamp: true };
  if (!supportedArch())
    throw new KernelError(
      'KERNELS_UNSUPPORTED_PLATFORM',
      `ie's kernels need an x86-64 CPU; this is ${platformKey()} (arm64 is planned). Run ie on an x86-64 machine.`,
    );
  throw new KernelError(
    'KERNELS_NOT_BUILT',
    `the native addon ${sourceBuild} does not exist and there is no prebuilt addon for ${platformKey()}: ${buildHint()}`,
  );
}

export function loadAddon(): NativeAddon {
  if (loaded) return loaded;
  const { path, checkStamp } = locateAddon();
  if (checkStamp && existsSync(join(PACKAGE_DIR, 'native'))) {
    const stampPath = join(dirname(path), 'ie_kernels.stamp.json');
    // The stamp records the hash of the sources the addon was built from.
    const { sourcesHash } = createRequire(import.meta.url)(join(PACKAGE_DIR, 'scripts', 'sources-hash.cjs')) as {
      sourcesHash: (d: string) => string;
    };
    const stamp = existsSync(stampPath) ? (JSON.parse(readFileSync(stampPath, 'utf8')) as { sources?: string }) : {};
    if (stamp.sources !== sourcesHash(PACKAGE_DIR))
      throw new KernelError(
        'KERNELS_STALE_BUILD',
        `the native addon ${path} was built from different C++ sources than native/ holds now: re-${buildHint()}`,
      );
  }
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new KernelError('KERNELS_LOAD_FAILED', `the native addon ${path} could not be loaded (${(e as Error).message}): ${buildHint()}`, {
      cause: e,
    });
  }
  return loaded;
}
