/** Flags shared by the commands that run a model (generate, bench, serve, chat). */
import type { Isa } from '@ie/kernels';
import { PRECISIONS, WEIGHT_MEMORY_MODES, describeMix, type EngineInfo, type EngineOptions } from '@ie/runtime';
import { threadsFlag, type Flags, type Values } from '../flags.js';
import { CliError } from '../errors.js';
import { ggufConvertProgress } from './model-dir.js';

const ISAS = ['scalar', 'avx2', 'avxvnni', 'avx512'] as const satisfies readonly Isa[];
const SECTION = 'engine options';

/**
 * Each flag's environment variable is read by @ie/runtime when the flag is absent (the engine
 * resolves its environment once), so the CLI passes only what was given.
 */
export const ENGINE_FLAGS = {
  precision: {
    type: 'choice',
    arg: 'P',
    choices: PRECISIONS,
    description: 'weight precision; lower ones are converted at load, never upwards',
    defaultText: "the file's own",
    engineEnv: 'IE_PRECISION',
    section: SECTION,
  },
  threads: threadsFlag("threads for the kernels' pool", 'one per physical core', { engineEnv: 'IE_THREADS', section: SECTION }),
  affinity: {
    type: 'choice',
    arg: 'MODE',
    choices: ['none', 'compact', 'scatter'],
    description: 'pin the pool threads to CPUs: packed onto neighbouring cores, or spread across them',
    defaultText: 'none',
    engineEnv: 'IE_AFFINITY',
    section: SECTION,
  },
  numa: {
    type: 'choice',
    arg: 'POLICY',
    choices: ['none', 'interleave', 'local'],
    description: 'NUMA placement of the weights (reported as having no effect on a single-node machine)',
    defaultText: 'none',
    engineEnv: 'IE_NUMA',
    section: SECTION,
  },
  isa: {
    type: 'choice',
    arg: 'ISA',
    choices: ISAS,
    description: 'force a lower kernel variant than the best the CPU has',
    defaultText: 'the best the CPU has',
    engineEnv: 'IE_ISA',
    section: SECTION,
  },
  'weight-memory': {
    type: 'choice',
    arg: 'MODE',
    choices: WEIGHT_MEMORY_MODES,
    description:
      "where the weights live: copy reads them into memory in 2 MiB huge pages (llama.cpp's --no-mmap), mmap maps the file (zero-copy, shared between processes)",
    defaultText: 'auto: copy when huge pages are on and the weights take at most 60% of the memory available',
    engineEnv: 'IE_WEIGHT_MEMORY',
    section: SECTION,
  },
  'kv-cache': {
    type: 'choice',
    arg: 'TYPE',
    choices: ['f32', 'f16'],
    description: 'KV cache storage (f16 halves its memory)',
    defaultText: 'f32',
    engineEnv: 'IE_KV_CACHE',
    section: SECTION,
  },
  context: {
    type: 'number',
    integer: true,
    min: 1,
    max: 1 << 24,
    arg: 'N',
    short: 'c',
    description: 'positions the KV cache holds',
    // @ie/runtime's DEFAULT_CONTEXT_CAP (not exported).
    defaultText: "the model's context, at most 4096",
    engineEnv: 'IE_CONTEXT',
    section: SECTION,
  },
  'max-batch': {
    type: 'number',
    integer: true,
    min: 1,
    max: 4096,
    arg: 'N',
    short: 'b',
    description: 'largest prefill chunk in tokens (the GEMM token count)',
    defaultText: '256',
    engineEnv: 'IE_MAX_BATCH',
    section: SECTION,
  },
  activations: {
    type: 'choice',
    arg: 'MODE',
    choices: ['auto', 'f32', 'int8'],
    description: 'how activations meet int8/int4/block weights: int8 dot products (as llama.cpp) or dequantized FP32',
    defaultText: 'auto: int8 where the model and CPU allow',
    engineEnv: 'IE_ACTIVATIONS',
    section: SECTION,
  },
  'q4-layout': {
    type: 'choice',
    arg: 'LAYOUT',
    choices: ['auto', 'rows', 'rows16'],
    description:
      'symmetric q4, IQ4_NL, Q4_K, Q5_K and Q6_K in memory: as stored (rows) or reordered into 16-row records at load (rows16: faster for several streams)',
    defaultText:
      'auto: rows16 in the int8 mode where the CPU reads them fast for one stream (q4 on AVX-512 VNNI, all four on Zen 3); q4 on other AVX2 cores also when serving several sequences',
    engineEnv: 'IE_Q4_LAYOUT',
    section: SECTION,
  },
  'i8-layout': {
    type: 'choice',
    arg: 'LAYOUT',
    choices: ['auto', 'rows', 'rows16'],
    description:
      'i8 (int8w, Q8_0) in memory: as stored (rows) or reordered into 16-row records at load (rows16: faster for several streams)',
    defaultText: 'auto: rows16 in the int8 mode on AVX-512 VNNI when serving several sequences',
    engineEnv: 'IE_I8_LAYOUT',
    section: SECTION,
  },
  'block-k': {
    type: 'string',
    arg: 'B',
    description:
      "reorder matrices with rows longer than 2048 columns into K-panels at load, so each panel's activations stay in L1: auto, a panel width (a multiple of 64), or 0 for the file's layout",
    defaultText: 'auto: panels of at most about 2048 columns',
    engineEnv: 'IE_BLOCK_K',
    section: SECTION,
  },
  'require-model': {
    type: 'boolean',
    description: "strict mode, the seed's interface: a missing model is an error (ie never stubs one)",
    engineEnv: 'IE_REQUIRE_MODEL',
    section: SECTION,
  },
} as const satisfies Flags;

/** How a loaded engine runs, in one line: what `auto` picked for this CPU and model. */
export function describeEngine(info: EngineInfo): string {
  const acts = info.activations === 'int8' ? `int8 activations (${info.int8Activations} kernels)` : 'FP32 activations';
  // In the int8 mode, symmetric q4 and i8 prefill chunks take the ISA's int8 GEMM (every SIMD ISA has one).
  const records = [
    info.q4Rows16Matrices > 0 ? `q4: 16-row records, ${info.q4Rows16Matrices} matrices` : '',
    info.iq4NlRows16Matrices > 0 ? `iq4_nl: 16-row records, ${info.iq4NlRows16Matrices} matrices` : '',
    info.q4kRows16Matrices > 0 ? `q4_k: 16-row records, ${info.q4kRows16Matrices} matrices` : '',
    info.q5kRows16Matrices > 0 ? `q5_k: 16-row records, ${info.q5kRows16Matrices} matrices` : '',
    info.q6kRows16Matrices > 0 ? `q6_k: 16-row records, ${info.q6kRows16Matrices} matrices` : '',
    info.i8Rows16Matrices > 0 ? `i8: 16-row records, ${info.i8Rows16Matrices} matrices` : '',
  ].filter((s) => s !== '');
  const gemm =
    records.length > 0
      ? `${info.gemm} (${records.join('; ')})`
      : info.activations === 'int8' && info.int8Gemm !== 'none'
        ? `${info.gemm} (q4, i8: int8 ${info.int8Gemm})`
        : info.gemm;
  const panels = info.blockedKMatrices > 0 ? `, K-panels for ${info.blockedKMatrices} matrices` : '';
  const memory = info.weightMemory.mode === 'copy' ? `weights in memory${info.hugePages ? ' (huge pages)' : ''}` : 'weights mapped';
  return `${describeMix(info.precisionMix)} on ${info.threads} thread(s), ${info.isa}, ${acts}, prefill GEMM ${gemm}${panels}, ${memory}`;
}

function blockKFlag(v: string | undefined): EngineOptions['blockK'] {
  if (v === undefined || v === 'auto') return v;
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!(n % 64 === 0 && n <= 2 ** 30))
    throw new CliError('CLI_USAGE', `--block-k must be auto, 0 or a multiple of 64, got ${JSON.stringify(v)}`);
  return n;
}

export function engineOptions(v: Partial<Values<typeof ENGINE_FLAGS>>): EngineOptions {
  return {
    // A GGUF file given in place of a model directory is converted once into the cache.
    onConvertProgress: ggufConvertProgress(),
    precision: v.precision,
    threads: v.threads,
    affinity: v.affinity,
    numa: v.numa,
    isa: v.isa,
    kvCache: v['kv-cache'],
    weightMemory: v['weight-memory'],
    contextLength: v.context,
    maxBatch: v['max-batch'],
    activations: v.activations,
    q4Layout: v['q4-layout'],
    i8Layout: v['i8-layout'],
    blockK: blockKFlag(v['block-k']),
    requireModel: v['require-model'] === true ? true : undefined,
  };
}
