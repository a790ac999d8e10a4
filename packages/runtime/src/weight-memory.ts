/**
 * Where a model's weights live while it runs: `mmap` maps the file (zero-copy, pages shared with
 * the page cache and with other processes that map it), `copy` reads it into anonymous memory in
 * 2 MiB transparent huge pages (llama.cpp's `--no-mmap`; see docs/performance.md, *Weights in
 * huge pages*). `auto` copies when the kernel gives huge pages to anonymous memory and the copy
 * fits comfortably in the memory available (the machine's and the cgroup's), and maps otherwise.
 */
import { readFileSync } from 'node:fs';

export type WeightMemoryMode = 'auto' | 'copy' | 'mmap';
export const WEIGHT_MEMORY_MODES = ['auto', 'copy', 'mmap'] as const;

export interface WeightMemoryPlan {
  mode: 'copy' | 'mmap';
  /** Why, in words (shown by `ie info` and EngineInfo.weightMemory). */
  detail: string;
}

/** What the policy looks at; read from /sys and /proc on Linux (readSystemMemory). */
export interface SystemMemory {
  /** The transparent-huge-page mode for anonymous memory: always, madvise, never; undefined where unknown (not Linux). */
  hugePages: 'always' | 'madvise' | 'never' | undefined;
  /** MemAvailable in bytes; undefined where unknown. */
  available: number | undefined;
  /** The cgroup's memory limit minus its anonymous use, in bytes; undefined where there is no limit. */
  cgroupRoom: number | undefined;
}

/** The share of the memory available a copy may take under `auto`: the rest is left to KV caches, activations and everything else. */
export const AUTO_COPY_SHARE = 0.6;

/** `system` is read only for `auto`. */
export function planWeightMemory(mode: WeightMemoryMode, bytes: number, system: () => SystemMemory = readSystemMemory): WeightMemoryPlan {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (mode === 'mmap') return { mode: 'mmap', detail: 'mapped from the file (weightMemory mmap)' };
  if (mode === 'copy') return { mode: 'copy', detail: 'copied into memory (weightMemory copy)' };
  const sys = system();
  if (sys.hugePages === undefined || sys.hugePages === 'never')
    return {
      mode: 'mmap',
      detail: `mapped from the file: ${sys.hugePages === 'never' ? 'transparent huge pages are off' : 'no transparent huge pages on this system'}, so a copy would gain nothing`,
    };
  const room = Math.min(sys.available ?? Number.POSITIVE_INFINITY, sys.cgroupRoom ?? Number.POSITIVE_INFINITY);
  if (!Number.isFinite(room))
    return { mode: 'mmap', detail: 'mapped from the file: the memory available is unknown, so a copy might not fit' };
  if (bytes > AUTO_COPY_SHARE * room)
    return {
      mode: 'mmap',
      detail: `mapped from the file: the ${gib(bytes)} of weights exceed ${AUTO_COPY_SHARE * 100}% of the ${gib(room)} available (weightMemory copy forces a copy)`,
    };
  return { mode: 'copy', detail: `copied into memory in huge pages (${gib(bytes)} of the ${gib(room)} available)` };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** This machine's SystemMemory (Linux; elsewhere every field is undefined). */
export function readSystemMemory(): SystemMemory {
  const thp = /\[(always|madvise|never)\]/.exec(
    readText('/sys/kernel/mm/transparent_hugepage/enabled') ?? '',
  )?.[1] as SystemMemory['hugePages'];
  const kb = /^MemAvailable:\s+(\d+) kB/m.exec(readText('/proc/meminfo') ?? '')?.[1];
  let cgroupRoom: number | undefined;
  const max = readText('/sys/fs/cgroup/memory.max')?.trim();
  if (max !== undefined && /^\d+$/.test(max)) {
    // Page cache counts against the limit too but is reclaimed under pressure; anonymous memory is not.
    const anon = /^anon (\d+)$/m.exec(readText('/sys/fs/cgroup/memory.stat') ?? '')?.[1];
    cgroupRoom = Math.max(0, Number(max) - Number(anon ?? 0));
  }
  return { hugePages: thp, available: kb === undefined ? undefined : Number(kb) * 1024, cgroupRoom };
}
