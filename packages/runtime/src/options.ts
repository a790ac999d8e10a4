/** Engine options, from the API or the environment (the seed's names). */
import { AFFINITIES, ISAS, MAX_THREADS, NUMA_POLICIES, type Affinity, type ContextOptions, type Isa, type NumaPolicy } from '@ie/kernels';
import { InvalidOptionError } from './errors.js';
import type { KvCacheType } from './forward.js';
import type { GgufConvertProgress } from './gguf-cache.js';
import { PRECISIONS, type Precision } from './precision.js';
import { WEIGHT_MEMORY_MODES, type WeightMemoryMode } from './weight-memory.js';

export interface EngineOptions {
  /** Weight precision (IE_PRECISION). Default: the file's own. Lower precisions are converted at load. */
  precision?: Precision;
  /** Kernel threads (IE_THREADS). Default: one per physical core. */
  threads?: number;
  affinity?: Affinity;
  numa?: NumaPolicy;
  isa?: Isa;
  /** Where a GGUF file given in place of a model directory is converted to, once (IE_CACHE_DIR; default `$XDG_CACHE_HOME/ie` or `~/.cache/ie`). */
  cacheDir?: string;
  /** Called after each tensor while a GGUF file given in place of a model directory is converted (not when its cached conversion is reused). */
  onConvertProgress?: (p: GgufConvertProgress) => void;
  /**
   * Positions the KV cache holds (IE_CONTEXT). Default: the model's context length, at most
   * DEFAULT_CONTEXT_CAP (4096) — the KV cache and RoPE tables are sized to it, and gpt-oss declares
   * 131,072 positions (a 13 GB cache for the 20b) — with a notice when the cap applies.
   */
  contextLength?: number;
  /**
   * A generation whose iterator is not pulled for this long (ms) while another generate() or
   * dispose() waits gives the engine up: it ends with IE_ABORTED if pulled again. Default 30000.
   */
  idleTimeoutMs?: number;
  /**
   * Where the weights live (IE_WEIGHT_MEMORY): `copy` reads the file into memory in 2 MiB huge
   * pages (llama.cpp's --no-mmap; an untied token embedding, of which a token reads one row, stays
   * mapped), `mmap` maps it (zero-copy, shared between processes), `auto` copies when huge pages
   * are on and the copy takes at most 60% of the memory available. Default auto.
   */
  weightMemory?: WeightMemoryMode;
  /** KV cache storage (IE_KV_CACHE). Default f32. */
  kvCache?: KvCacheType;
  /**
   * How activations meet int8/int4/block-type weights (IE_ACTIVATIONS): `f32` dequantizes the weights into
   * FP32 FMAs; `int8` quantizes the activations per 32 elements (as llama.cpp's Q8_0) and runs
   * integer dot products, as llama.cpp does for Q8_0/Q4_0; `auto` (the default) picks int8 when
   * the model has int8/int4/block-type matrices and the CPU has SIMD int8 kernels (AVX2 or better), where it
   * is the faster path, else f32. Float weights always run with FP32 activations.
   */
  activations?: ActivationsMode;
  /**
   * How 4-bit matrices (symmetric q4: int4w, GGUF Q4_0; GGUF IQ4_NL and Q4_K), and the Q5_K and Q6_K matrices of
   * K-quant files, are laid out in memory once loaded (IE_Q4_LAYOUT): `rows` as the file stores them;
   * `rows16` reordered at load into records of 16 rows per group (docs/architecture.md, *q4 in 16-row
   * records*, *IQ4_NL in 16-row records*, *Q4_K and Q6_K in 16-row records*, *Q5_K in 16-row records*), which the SIMD kernels read at
   * 1.5-2x the rate when several sequences decode together; `auto` (the default) takes rows16 in the
   * int8 mode where KernelContext.info().q4Rows16 / iq4NlRows16 / q4kRows16 / q5kRows16 / q6kRows16 say `always` (q4 on
   * AVX-512 VNNI; q4, IQ4_NL and the K-quants on Zen 3; Q4_K, Q5_K and Q6_K on Zen 5 and Intel: no slower for one sequence either) and,
   * where they say `batched` (q4 on the other AVX2 and AVX-VNNI cores), for a model of more than two
   * sequences (ie serve --parallel 2 or more: one sequence alone runs up to a tenth slower there).
   * Forced with FP32 activations or on the scalar ISA, the records run the scalar reference (slow;
   * for tests).
   */
  q4Layout?: RecordsLayoutMode;
  /**
   * How i8 matrices (int8w, GGUF Q8_0) are laid out in memory once loaded (IE_I8_LAYOUT): `rows` as
   * the file stores them; `rows16` reordered at load into records of 16 rows (docs/architecture.md,
   * *i8 in 16-row records*), which the AVX-512 VNNI kernels read at 2-3x the rate when several
   * sequences decode together (the AVX2 kernels at 1.2-1.3x); `auto` (the default) takes rows16 in
   * the int8 mode on AVX-512 VNNI or AVX2 for a model of more than two sequences (ie serve
   * --parallel 2 or more: one sequence alone reads the records up to a fifth slower than its rows),
   * and for one sequence too on AVX-512 VNNI on Zen 5 and Intel (KernelContext.info().i8Rows16
   * `always`), else rows. On the scalar ISA the records run the scalar reference (slow; for tests).
   */
  i8Layout?: RecordsLayoutMode;
  /**
   * K-panels made at load (IE_BLOCK_K): `auto` (the default) reorders every projection and
   * classifier whose rows are longer than 2048 columns into panels of at most about 2048 (the
   * kernels' preferredBlockK), where a long row's activations would otherwise fall out of L1
   * while the weights stream (docs/architecture.md, *K-panels*); a number B (a multiple of 64)
   * cuts every such matrix into panels of B columns; 0 keeps the file's layout. Matrices the file
   * stores K-blocked, pretransposed or as ggml blocks, 16-row q4 records and the token embedding
   * stay as they are. Reordering writes a mapped model's private pages (never the file).
   */
  blockK?: BlockKMode;
  /** Largest prefill chunk, in tokens (IE_MAX_BATCH): the GEMM's token count. Default 256. */
  maxBatch?: number;
  /**
   * Strict mode (IE_REQUIRE_MODEL=1, the seed's interface). The engine has no stub mode: a missing
   * or invalid model is always an error. The scripts that would otherwise make a model when it is
   * missing (`pnpm bench`, the benchmark harnesses) refuse instead. IE_REQUIRE_MODEL must be 0 or 1.
   */
  requireModel?: boolean;
  /**
   * Check the model before running (IE_VERIFY=1; ie generate --verify): every tensor's CRC-32,
   * NaN/Inf in float weights and scales, the tokenizer.json's sha256 — what `ie validate --deep`
   * checks. Reads the whole bin once at load. A failure is IE_MODEL_CORRUPT. Default false.
   */
  verify?: boolean;
}

export type ActivationsMode = 'auto' | 'f32' | 'int8';
/** How q4 or i8 matrices lie in memory once loaded (EngineOptions.q4Layout, i8Layout). */
export type RecordsLayoutMode = 'auto' | 'rows' | 'rows16';
export type BlockKMode = 'auto' | number;

export interface ResolvedEngineOptions {
  precision: Precision | undefined;
  threads: number | undefined;
  affinity: Affinity | undefined;
  numa: NumaPolicy | undefined;
  isa: Isa | undefined;
  contextLength: number | undefined;
  kvCache: KvCacheType;
  activations: ActivationsMode;
  q4Layout: RecordsLayoutMode;
  i8Layout: RecordsLayoutMode;
  blockK: BlockKMode;
  maxBatch: number;
  requireModel: boolean;
  idleTimeoutMs: number;
  verify: boolean;
  weightMemory: WeightMemoryMode;
}

export interface ResolvedContextOptions {
  threads: number | undefined;
  affinity: Affinity | undefined;
  numa: NumaPolicy | undefined;
  isa: Isa | undefined;
}

/** The default context when the model allows more (EngineOptions.contextLength). */
export const DEFAULT_CONTEXT_CAP = 4096;

/**
 * Options objects come from plain JavaScript callers too: null, a string or an array would
 * otherwise fail as a TypeError deep inside the first read.
 */
export function checkOptionsObject(options: unknown, name = 'options'): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new InvalidOptionError(
      name,
      `must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`,
    );
}

function oneOf<T extends string>(
  name: string,
  envName: string,
  v: T | undefined,
  env: NodeJS.ProcessEnv,
  allowed: readonly T[],
): T | undefined {
  const raw = v ?? (env[envName] || undefined);
  if (raw === undefined) return undefined;
  if (!allowed.includes(raw as T))
    throw new InvalidOptionError(v !== undefined ? name : envName, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
  return raw as T;
}

function int(name: string, envName: string, v: number | undefined, env: NodeJS.ProcessEnv, lo: number, hi: number): number | undefined {
  let raw: unknown = v;
  if (raw === undefined && env[envName]) {
    if (!/^\d+$/.test(env[envName] as string))
      throw new InvalidOptionError(envName, `must be an integer, got ${JSON.stringify(env[envName])}`);
    raw = Number(env[envName]);
  }
  if (raw === undefined) return undefined;
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < lo || raw > hi)
    throw new InvalidOptionError(v !== undefined ? name : envName, `must be an integer in ${lo}..${hi}, got ${String(raw)}`);
  return raw;
}

function blockK(v: BlockKMode | undefined, env: NodeJS.ProcessEnv): BlockKMode {
  const fromEnv = v === undefined;
  const raw: unknown = v ?? (env.IE_BLOCK_K || 'auto');
  if (raw === 'auto') return 'auto';
  const n = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 1 << 30 || n % 64 !== 0)
    throw new InvalidOptionError(
      fromEnv ? 'IE_BLOCK_K' : 'blockK',
      `must be auto, 0 (the file's layout) or a multiple of 64 (the panel width in columns), got ${JSON.stringify(raw)}`,
    );
  return n;
}

function bool(name: string, envName: string, v: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  if (v !== undefined && typeof v !== 'boolean') throw new InvalidOptionError(name, `must be true or false, got ${JSON.stringify(v)}`);
  return v ?? oneOf(name, envName, undefined, env, ['0', '1'] as const) === '1';
}

/**
 * The seed's PRECISION variable: the precision of the host maths (activations and accumulation),
 * apart from the weights' (IE_PRECISION). fp32 keeps FP32 activations for every matrix; int8
 * asks for int8 activations on int8/int4 matrices. IE_ACTIVATIONS and the option win over it.
 */
function hostMaths(env: NodeJS.ProcessEnv): ActivationsMode | undefined {
  const v = env.PRECISION;
  if (v === undefined || v === '') return undefined;
  if (v === 'fp32') return 'f32';
  if (v === 'int8') return 'int8';
  throw new InvalidOptionError(
    'PRECISION',
    `is the host maths' precision: fp32 (FP32 activations) or int8 (int8 activations on int8/int4 weights), got ${JSON.stringify(v)}; the weights' precision is IE_PRECISION`,
  );
}

/**
 * The kernel context's options with the environment's defaults (IE_THREADS, IE_AFFINITY,
 * IE_NUMA, IE_ISA) applied and checked against the values the kernels take; the kernels
 * themselves never read the environment. Resolving twice gives the same options.
 */
export function resolveContextOptions(o: ContextOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedContextOptions {
  checkOptionsObject(o);
  return {
    threads: int('threads', 'IE_THREADS', o.threads, env, 1, MAX_THREADS),
    affinity: oneOf('affinity', 'IE_AFFINITY', o.affinity, env, AFFINITIES),
    numa: oneOf('numa', 'IE_NUMA', o.numa, env, NUMA_POLICIES),
    isa: oneOf('isa', 'IE_ISA', o.isa, env, ISAS),
  };
}

export function resolveEngineOptions(o: EngineOptions = {}, env: NodeJS.ProcessEnv = process.env): ResolvedEngineOptions {
  checkOptionsObject(o);
  return {
    precision: oneOf('precision', 'IE_PRECISION', o.precision, env, PRECISIONS),
    ...resolveContextOptions({ threads: o.threads, affinity: o.affinity, numa: o.numa, isa: o.isa }, env),
    contextLength: int('contextLength', 'IE_CONTEXT', o.contextLength, env, 1, 1 << 24),
    kvCache: oneOf('kvCache', 'IE_KV_CACHE', o.kvCache, env, ['f32', 'f16'] as const) ?? 'f32',
    activations: oneOf('activations', 'IE_ACTIVATIONS', o.activations, env, ['auto', 'f32', 'int8'] as const) ?? hostMaths(env) ?? 'auto',
    q4Layout: oneOf('q4Layout', 'IE_Q4_LAYOUT', o.q4Layout, env, ['auto', 'rows', 'rows16'] as const) ?? 'auto',
    i8Layout: oneOf('i8Layout', 'IE_I8_LAYOUT', o.i8Layout, env, ['auto', 'rows', 'rows16'] as const) ?? 'auto',
    blockK: blockK(o.blockK, env),
    maxBatch: int('maxBatch', 'IE_MAX_BATCH', o.maxBatch, env, 1, 4096) ?? 256,
    requireModel: o.requireModel ?? oneOf('requireModel', 'IE_REQUIRE_MODEL', undefined, env, ['0', '1'] as const) === '1',
    idleTimeoutMs: int('idleTimeoutMs', 'IE_IDLE_TIMEOUT_MS', o.idleTimeoutMs, env, 1, 2 ** 31 - 1) ?? 30_000,
    verify: bool('verify', 'IE_VERIFY', o.verify, env),
    weightMemory: oneOf('weightMemory', 'IE_WEIGHT_MEMORY', o.weightMemory, env, WEIGHT_MEMORY_MODES) ?? 'auto',
  };
}
