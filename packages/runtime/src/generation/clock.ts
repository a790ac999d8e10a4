/** The timings of one generation, and its metrics from them. */
import { percentile, peakRssBytes, type GenerationMetrics } from '../metrics.js';

export class StepClock {
  readonly t0 = performance.now();
  private tPrefill = 0;
  private tFirst = 0;
  private readonly latencies: number[] = [];
  private decodeMs = 0;

  prefilled(): void {
    this.tPrefill = performance.now();
  }

  firstToken(): void {
    if (this.tFirst === 0) this.tFirst = performance.now();
  }

  /** A decode step that took `ms` (the engine's time: forward pass, sampling, detokenizing). */
  step(ms: number): void {
    this.latencies.push(ms);
    this.decodeMs += ms;
  }

  metrics(m: {
    promptTokens: number;
    cachedTokens: number;
    generatedTokens: number;
    kvCacheBytes: number;
    weightBytesPerToken: number;
  }): GenerationMetrics {
    const tPrefill = this.tPrefill || performance.now();
    const n = this.latencies.length;
    const decodeTps = n > 0 && this.decodeMs > 0 ? n / (this.decodeMs / 1000) : 0;
    return {
      promptTokens: m.promptTokens,
      cachedTokens: m.cachedTokens,
      generatedTokens: m.generatedTokens,
      ttftMs: this.tFirst ? this.tFirst - this.t0 : Number.NaN,
      prefillMs: tPrefill - this.t0,
      prefillTokensPerSec: (m.promptTokens - m.cachedTokens) / ((tPrefill - this.t0) / 1000),
      decodeMs: this.decodeMs,
      decodeTokensPerSec: decodeTps,
      latencyP50Ms: percentile(this.latencies, 50),
      latencyP95Ms: percentile(this.latencies, 95),
      peakRssBytes: peakRssBytes(),
      kvCacheBytes: m.kvCacheBytes,
      weightBytesPerToken: m.weightBytesPerToken,
      effectiveGBs: (m.weightBytesPerToken * decodeTps) / 1e9,
    };
  }
}
