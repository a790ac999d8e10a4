/** Per-call measurements, all taken while the call runs. */
export interface GenerationMetrics {
  promptTokens: number;
  /** Prompt tokens whose keys and values were already in the KV cache (a common prefix with what it held: `reusePrefix`); only the rest were prefilled. */
  cachedTokens: number;
  generatedTokens: number;
  /** From the call to the first generated token. */
  ttftMs: number;
  prefillMs: number;
  /** Prefilled tokens (promptTokens - cachedTokens) per second of prefillMs. */
  prefillTokensPerSec: number;
  /** Time the engine spent on decode steps (forward pass, sampling, detokenizing), not the consumer's time between pieces. */
  decodeMs: number;
  /** Decode steps (tokens after the first) per second of decodeMs. */
  decodeTokensPerSec: number;
  /** Percentiles of the per-token decode step times. */
  latencyP50Ms: number;
  latencyP95Ms: number;
  peakRssBytes: number;
  kvCacheBytes: number;
  weightBytesPerToken: number;
  /** weightBytesPerToken x decode tokens/s. */
  effectiveGBs: number;
}

/** The p-th percentile (0..100) of values, linear between closest ranks; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1);
  const lo = Math.floor(r);
  const hi = Math.ceil(r);
  return s[lo] + (s[hi] - s[lo]) * (r - lo);
}

export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}
