/**
 * A KernelContext's options and the values each may take. The kernels take options as given:
 * the environment (IE_THREADS, IE_AFFINITY, IE_NUMA, IE_ISA) is the engine's business
 * (@ie/runtime's resolveEngineOptions), which checks against the same lists.
 */
import { KernelError, show } from './errors.js';

/** Worker placement: `compact` fills a package first, `scatter` spreads across packages/nodes. */
export const AFFINITIES = ['none', 'compact', 'scatter'] as const;
/** Weight page placement on multi-node machines. */
export const NUMA_POLICIES = ['none', 'interleave', 'local'] as const;
/** The ISA variants, lowest first. */
export const ISAS = ['scalar', 'avx2', 'avxvnni', 'avx512'] as const;
/** The largest pool. */
export const MAX_THREADS = 1024;

export type Affinity = (typeof AFFINITIES)[number];
export type NumaPolicy = (typeof NUMA_POLICIES)[number];
export type Isa = (typeof ISAS)[number];

export interface ContextOptions {
  /** Pool size (1..MAX_THREADS); default one thread per physical core. */
  threads?: number;
  /** Pin worker i to a core (see AFFINITIES). Default none. */
  affinity?: Affinity;
  /** Weight page placement on multi-node machines. Default none. */
  numa?: NumaPolicy;
  /** Force a lower ISA variant (tests, comparisons). Default the best the CPU runs. */
  isa?: Isa;
}

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T))
    throw new KernelError('KERNELS_BAD_OPTION', `${name} must be one of ${allowed.join(', ')}, got ${show(v)}`);
  return v as T;
}

/** The options checked (KERNELS_BAD_OPTION names the first bad one), with only the known fields. */
export function checkContextOptions(o: ContextOptions = {}): ContextOptions {
  if (o === null || typeof o !== 'object') throw new KernelError('KERNELS_BAD_OPTION', 'options must be an object');
  const threads = o.threads;
  if (threads !== undefined && (!Number.isSafeInteger(threads) || threads < 1 || threads > MAX_THREADS))
    throw new KernelError('KERNELS_BAD_OPTION', `threads must be an integer in 1..${MAX_THREADS}, got ${show(threads)}`);
  return {
    threads,
    affinity: oneOf('affinity', o.affinity, AFFINITIES),
    numa: oneOf('numa', o.numa, NUMA_POLICIES),
    isa: oneOf('isa', o.isa, ISAS),
  };
}
