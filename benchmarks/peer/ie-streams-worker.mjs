// ie decoding many sequences at once, as `ie serve --parallel N` does: a Model with N KV slots
// and a BatchScheduler (every running sequence one row of one forward step).
//   node ie-streams-worker.mjs MODEL_DIR THREADS MAX_STREAMS
import { BatchScheduler, Model } from '@ie/runtime';
import { rows16Matrices } from './ie-info.mjs';
import { serve } from './protocol.mjs';

const [modelDir, threadsArg, streamsArg] = process.argv.slice(2);
const maxStreams = Number(streamsArg);
const model = await Model.open(modelDir, { threads: Number(threadsArg), contextLength: 256, sequences: maxStreams });
const batcher = new BatchScheduler(model, { slots: maxStreams });

await serve({
  info: async () => {
    const i = model.info();
    return {
      engine: 'ie',
      isa: i.isa,
      activations: i.activations,
      gemm: i.gemm,
      threads: i.threads,
      weightMemory: i.weightMemory.mode,
      rows16Matrices: rows16Matrices(i),
    };
  },
  async streams({ prompts, tokens }) {
    const t0 = performance.now();
    const done = await Promise.all(
      prompts.map((p) => batcher.generate(p, { maxTokens: tokens, temperature: 0, ignoreEos: true }).complete()),
    );
    const total = done.reduce((a, c) => a + c.metrics.generatedTokens, 0);
    return { tokS: total / ((performance.now() - t0) / 1000), tokens: total };
  },
  async close() {
    await batcher.close();
    await model.dispose();
  },
});
