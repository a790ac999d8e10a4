// ie serving the side-by-side protocol, at its default settings for the machine.
//   node ie-worker.mjs MODEL_DIR THREADS [CONTEXT]
import { Engine } from '@ie/runtime';
import { rows16Matrices } from './ie-info.mjs';
import { serve } from './protocol.mjs';

const [modelDir, threadsArg, contextArg] = process.argv.slice(2);
const engine = await Engine.load(modelDir, { threads: Number(threadsArg), contextLength: Number(contextArg ?? 1024) });

await serve({
  info: async () => {
    const i = engine.info();
    return {
      engine: 'ie',
      isa: i.isa,
      precision: i.precision,
      activations: i.activations,
      int8Kernels: i.int8Activations,
      gemm: i.gemm,
      // The prefill GEMM of q4 and i8 matrices in the int8 mode (gemm is the float one).
      int8Gemm: i.activations === 'int8' ? i.int8Gemm : undefined,
      threads: i.threads,
      weightMemory: i.weightMemory.mode,
      weightBytesPerToken: i.weightBytesPerToken,
      rows16Matrices: rows16Matrices(i),
      moe: engine.config.moe !== null,
    };
  },
  async decode({ prompt, tokens }) {
    const c = await engine.complete(prompt, { maxTokens: tokens + 1, temperature: 0, ignoreEos: true });
    if (c.metrics.generatedTokens !== tokens + 1) return { error: `generated ${c.metrics.generatedTokens} tokens` };
    return { tokS: c.metrics.decodeTokensPerSec, tokens };
  },
  async prefill({ ids }) {
    const c = await engine.complete(ids, { maxTokens: 1, temperature: 0, ignoreEos: true });
    return { tokS: c.metrics.prefillTokensPerSec };
  },
  async logits({ ids }) {
    return { logits: (await engine.evaluate(ids)).map((l) => Array.from(l)) };
  },
  close: () => engine.dispose(),
});
