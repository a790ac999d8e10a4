// llama.cpp (node-llama-cpp) decoding many sequences at once, as llama-server does with
// --parallel N: one context with N sequences whose concurrent evaluations node-llama-cpp batches
// into one llama_decode per step.
//   node llama-streams-worker.mjs PEER_DIR MODEL.gguf THREADS MAX_STREAMS
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serve } from './protocol.mjs';

const [peerDir, modelPath, threadsArg, streamsArg] = process.argv.slice(2);
const threads = Number(threadsArg);
const maxStreams = Number(streamsArg);
const require = createRequire(join(peerDir, 'package.json'));
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);

const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({
  contextSize: 256 * maxStreams,
  sequences: maxStreams,
  batchSize: 512,
  threads: { ideal: threads, min: threads },
});

await serve({
  info: async () => ({
    engine: 'llama.cpp',
    release: llama.llamaCppRelease?.release,
    build: llama.buildType,
    threads: context.currentThreads,
  }),
  // Every prompt a sequence, all evaluated at once (greedy, EOS decoded like any token); tokens/s of all of them together.
  async streams({ prompts, tokens }) {
    const sequences = prompts.map(() => context.getSequence());
    try {
      const t0 = performance.now();
      const counts = await Promise.all(
        sequences.map(async (sequence, i) => {
          let n = 0;
          for await (const _ of sequence.evaluate(prompts[i], { temperature: 0, yieldEogToken: true })) if (++n === tokens) break;
          return n;
        }),
      );
      const total = counts.reduce((a, b) => a + b, 0);
      return { tokS: total / ((performance.now() - t0) / 1000), tokens: total };
    } finally {
      for (const s of sequences) s.dispose();
    }
  },
  async close() {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  },
});
