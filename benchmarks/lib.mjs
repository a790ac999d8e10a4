// Helpers shared by the benchmark harnesses.
import { randomFillSync } from 'node:crypto';
import { KernelContext } from '@ie/kernels';

/**
 * A buffer of distinct random bytes. Never fill a probe or weight buffer with a repeated
 * pattern: a hypervisor may merge identical pages, and reads of merged pages come from cache
 * (that flatters every bandwidth figure it touches).
 */
export function randomBuffer(bytes) {
  const b = new Uint8Array(bytes);
  for (let o = 0; o < bytes; o += 1 << 30) randomFillSync(b, o, Math.min(1 << 30, bytes - o));
  return b;
}

/** The machine's read bandwidth in GB/s with `threads` threads: the best reader, best of `passes`. */
export function readBandwidth(buf, threads, passes = 2) {
  const ctx = KernelContext.create({ threads });
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
