/**
 * The seed's benchmark harness: every prompt of a prompt file, `runs` times after `warmup`
 * passes, one JSON line per run. The optional work-touch (IE_BYTES_PER_TOKEN, IE_STRIDE_BYTES)
 * reads that many bytes of the mapped model after each token; its time has its own fields and
 * is kept out of the model's figures.
 */
import { existsSync } from 'node:fs';
import { Engine, percentile } from '@ie/runtime';
import { defineCommand } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { readFlagText } from '../text-file.js';
import { ENGINE_FLAGS, describeEngine, engineOptions } from './engine-flags.js';

export const bench = defineCommand({
  name: 'bench',
  summary: 'benchmark generation over a prompt file: one JSON line per run',
  args: [{ name: 'MODEL_DIR', description: 'an IEBIN model directory, or a GGUF file (converted once into IE_CACHE_DIR)' }],
  flags: {
    prompts: {
      type: 'string',
      arg: 'FILE',
      required: true,
      env: 'PROMPTS',
      description: 'one prompt per line, # starts a comment (benchmarks/prompts_10.txt ships with ten)',
    },
    runs: {
      type: 'number',
      integer: true,
      min: 1,
      max: 1000,
      default: 1,
      env: 'RUNS',
      arg: 'N',
      description: 'measured runs, one JSON line each',
    },
    warmup: { type: 'number', integer: true, min: 0, max: 1000, default: 1, arg: 'N', description: 'unmeasured runs first' },
    'max-new': {
      type: 'number',
      integer: true,
      min: 1,
      max: 1 << 20,
      default: 64,
      arg: 'N',
      description: 'tokens generated per prompt (greedy, fixed length: every run does the same work)',
    },
    'touch-bytes': {
      type: 'number',
      integer: true,
      min: 0,
      default: 0,
      env: 'IE_BYTES_PER_TOKEN',
      arg: 'BYTES',
      description:
        "read this many bytes of the mapped model after each token (the seed's work-touch; timed apart from the model's figures)",
    },
    'touch-stride': {
      type: 'number',
      integer: true,
      min: 1,
      default: 64,
      env: 'IE_STRIDE_BYTES',
      arg: 'BYTES',
      description: 'the work-touch reads one byte every BYTES',
    },
    ...ENGINE_FLAGS,
  },
  examples: [
    { command: 'ie bench models/stories260K --prompts benchmarks/prompts_10.txt --runs 3', does: 'three measured runs after one warm-up' },
    {
      command: 'ie bench models/tl --prompts benchmarks/prompts_10.txt --precision int8w -t 2 --max-new 32',
      does: 'the same weights at int8, on two threads',
    },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL'],
  async run(v, [path], io) {
    let promptsFile = v.prompts;
    // The seed's documents spell the shipped file prompts_10..txt: take what users type.
    if (promptsFile.endsWith('..txt') && !existsSync(promptsFile) && existsSync(promptsFile.replace(/\.\.txt$/, '.txt')))
      promptsFile = promptsFile.replace(/\.\.txt$/, '.txt');
    const text = await readFlagText(`--prompts ${promptsFile}: cannot read the prompt file`, promptsFile);
    const prompts = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    if (prompts.length === 0) throw new CliError('CLI_USAGE', `${promptsFile} holds no prompts (one per line; # starts a comment)`);
    const { runs, warmup, 'max-new': maxNew, 'touch-bytes': touchBytes, 'touch-stride': stride } = v;
    const engine = await Engine.load(path, engineOptions(v));
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      const info = engine.info();
      io.err(`ie: ${describeEngine(info)}`);
      for (let r = -warmup; r < runs; r++) {
        const m = await measureRun(engine, prompts, maxNew, touchBytes, stride);
        if (r < 0) continue;
        const decodeTps = m.decodeSteps / (m.decodeMs / 1000);
        const line = {
          run: r + 1,
          prompts: prompts.length,
          prompt_tokens: m.promptTokens,
          tokens: m.tokens,
          wall_s: +m.wallS.toFixed(3),
          tokens_per_s: +(m.tokens / (m.wallS - m.touchMs / 1000)).toFixed(2),
          decode_tokens_per_s: +decodeTps.toFixed(2),
          prefill_tokens_per_s: +(m.promptTokens / (m.prefillMs / 1000)).toFixed(1),
          ttft_ms_p50: +percentile(m.ttfts, 50).toFixed(2),
          p50_ms: +percentile(m.latencies, 50).toFixed(3),
          p95_ms: +percentile(m.latencies, 95).toFixed(3),
          peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
          precision: info.precision,
          precision_mix: info.precisionMix,
          activations: info.activations,
          int8_kernels: info.activations === 'int8' ? info.int8Activations : null,
          gemm: info.gemm,
          int8_gemm: info.activations === 'int8' ? info.int8Gemm : null,
          q4_rows16_matrices: info.q4Rows16Matrices,
          iq4_nl_rows16_matrices: info.iq4NlRows16Matrices,
          q4_k_rows16_matrices: info.q4kRows16Matrices,
          q5_k_rows16_matrices: info.q5kRows16Matrices,
          q6_k_rows16_matrices: info.q6kRows16Matrices,
          i8_rows16_matrices: info.i8Rows16Matrices,
          blocked_k_matrices: info.blockedKMatrices,
          threads: info.threads,
          isa: info.isa,
          weight_memory: info.weightMemory.mode,
          weight_bytes_per_token: info.weightBytesPerToken,
          effective_gbs: +((info.weightBytesPerToken * decodeTps) / 1e9).toFixed(3),
          touch_bytes_per_token: touchBytes,
          touch_stride_bytes: touchBytes > 0 ? stride : 0,
          touch_read_bytes_per_token: m.tokens > 0 ? Math.round(m.touchRead / m.tokens) : 0,
          touch_ms: +m.touchMs.toFixed(3),
          // On the bytes that moved (whole cache lines), not the span: a stride of 256 reads a quarter of it.
          touch_gbs: m.touchMs > 0 ? +(m.touchRead / (m.touchMs / 1000) / 1e9).toFixed(3) : 0,
        };
        io.out(JSON.stringify(line));
      }
      return EXIT.OK;
    } finally {
      await engine.dispose();
    }
  },
});

/** One pass over every prompt: the token counts and times a run's line is made of. */
async function measureRun(engine: Engine, prompts: string[], maxNew: number, touchBytes: number, stride: number) {
  const m = { tokens: 0, promptTokens: 0, touchMs: 0, touchRead: 0, decodeMs: 0, decodeSteps: 0, prefillMs: 0, wallS: 0 };
  const latencies: number[] = [];
  const ttfts: number[] = [];
  const t0 = performance.now();
  for (const p of prompts) {
    // Greedy and fixed-length: every run does the same work.
    const g = engine.generate(p, { temperature: 0, maxTokens: maxNew });
    let last = performance.now();
    let first = true;
    for await (const piece of g) {
      if (piece.token < 0) continue;
      // Per-token latency between pieces; the first piece of a prompt is its TTFT instead.
      if (!first) latencies.push(performance.now() - last);
      first = false;
      if (touchBytes > 0) {
        const t = engine.touchModel(touchBytes, stride);
        m.touchMs += t.ms;
        m.touchRead += t.bytesRead;
      }
      last = performance.now();
    }
    const gm = g.metrics;
    if (!gm) continue;
    m.tokens += gm.generatedTokens;
    m.promptTokens += gm.promptTokens;
    m.decodeMs += gm.decodeMs;
    m.decodeSteps += Math.max(0, gm.generatedTokens - 1);
    m.prefillMs += gm.prefillMs;
    ttfts.push(gm.ttftMs);
  }
  m.wallS = (performance.now() - t0) / 1000;
  return { ...m, latencies, ttfts };
}
