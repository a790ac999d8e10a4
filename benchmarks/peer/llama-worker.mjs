// llama.cpp (through node-llama-cpp, prebuilt CPU binaries) serving the side-by-side protocol.
//   node llama-worker.mjs PEER_DIR MODEL.gguf THREADS [CONTEXT]
// node-llama-cpp is resolved from PEER_DIR (a cache directory bench:peer installs it into), not
// from the workspace: it is not a dependency of ie.
import { openLlama } from './llama.mjs';
import { serve } from './protocol.mjs';

const [peerDir, modelPath, threadsArg, contextArg] = process.argv.slice(2);
const peer = await openLlama(peerDir, modelPath, Number(threadsArg), { contextSize: Number(contextArg ?? 1024), batchSize: 512 });
const { context } = peer;

await serve({
  info: async () => peer.info(),
  // Greedy decode: the time from the first generated token to the (tokens + 1)-th is `tokens` pure decode steps.
  async decode({ prompt, tokens }) {
    const sequence = context.getSequence();
    try {
      let n = 0;
      let tFirst = 0;
      // yieldEogToken: an end-of-sequence token is yielded and decoded like any other (llama.cpp's --ignore-eos), as ie's ignoreEos.
      for await (const _ of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        n++;
        if (n === 1) tFirst = performance.now();
        if (n === tokens + 1) return { tokS: tokens / ((performance.now() - tFirst) / 1000), tokens };
      }
      return { error: `generation ended after ${n} tokens` };
    } finally {
      sequence.dispose();
    }
  },
  // Prefill: the prompt's tokens over the time to the first generated token.
  async prefill({ ids }) {
    const sequence = context.getSequence();
    try {
      const t0 = performance.now();
      for await (const _ of sequence.evaluate(ids, { temperature: 0 })) break;
      return { tokS: ids.length / ((performance.now() - t0) / 1000) };
    } finally {
      sequence.dispose();
    }
  },
  // Every position's raw logits, dense by token id.
  async logits({ ids, vocab }) {
    const sequence = context.getSequence();
    try {
      const out = await sequence.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
      return {
        logits: out.map((o) => {
          const dense = new Array(vocab).fill(Number.NaN);
          for (const [t, v] of o.next.logits) dense[t] = v;
          return dense;
        }),
      };
    } finally {
      sequence.dispose();
    }
  },
  close: () => peer.close(),
});
