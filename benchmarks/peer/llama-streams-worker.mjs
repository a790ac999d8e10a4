// llama.cpp (node-llama-cpp) decoding many sequences at once, as llama-server does with
// --parallel N: one context with N sequences whose concurrent evaluations node-llama-cpp batches
// into one llama_decode per step.
//   node llama-streams-worker.mjs PEER_DIR MODEL.gguf THREADS MAX_STREAMS
import { openLlama } from './llama.mjs';
import { serve } from './protocol.mjs';

const [peerDir, modelPath, threadsArg, streamsArg] = process.argv.slice(2);
const maxStreams = Number(streamsArg);
const peer = await openLlama(peerDir, modelPath, Number(threadsArg), {
  contextSize: 256 * maxStreams,
  sequences: maxStreams,
  batchSize: 512,
});
const { context } = peer;

await serve({
  info: async () => peer.info(),
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
  close: () => peer.close(),
});
