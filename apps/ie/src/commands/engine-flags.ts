/** Flags shared by the commands that run a model (generate, bench). */
import { PRECISIONS, describeMix, type EngineInfo, type EngineOptions } from '@ie/runtime';
import { choice, intFlag } from '../command.js';

export const ENGINE_OPTIONS = {
  precision: { type: 'string' },
  threads: { type: 'string', short: 't' },
  affinity: { type: 'string' },
  'kv-cache': { type: 'string' },
  context: { type: 'string', short: 'c' },
  activations: { type: 'string' },
  'require-model': { type: 'boolean' },
} as const;

export const ENGINE_USAGE =
  '[--precision fp32|fp16|bf16|int8w|int4w] [-t|--threads N] [--affinity none|compact|scatter] [--kv-cache f32|f16] [-c|--context N] [--activations auto|f32|int8] [--require-model]';

/** How a loaded engine runs, in one line: what `auto` picked for this CPU and model. */
export function describeEngine(info: EngineInfo): string {
  const acts = info.activations === 'int8' ? `int8 activations (${info.int8Activations} kernels)` : 'FP32 activations';
  return `${describeMix(info.precisionMix)} on ${info.threads} thread(s), ${info.isa}, ${acts}, prefill GEMM ${info.gemm}`;
}

export function engineOptions(v: Record<string, unknown>): EngineOptions {
  return {
    precision: choice(v, 'precision', PRECISIONS),
    threads: intFlag(v, 'threads', 1, 1024),
    affinity: choice(v, 'affinity', ['none', 'compact', 'scatter'] as const),
    kvCache: choice(v, 'kv-cache', ['f32', 'f16'] as const),
    contextLength: intFlag(v, 'context', 1, 1 << 24),
    activations: choice(v, 'activations', ['auto', 'f32', 'int8'] as const),
    requireModel: v['require-model'] === true ? true : undefined,
  };
}
