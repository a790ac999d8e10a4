// node-llama-cpp, resolved from PEER_DIR (a cache directory bench:peer installs it into), not from
// the workspace: it is not a dependency of ie. CPU only, prebuilt binaries, THREADS threads.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The library, a model loaded from `modelPath`, and a context made with `context` (sizes, sequences). */
export async function openLlama(peerDir, modelPath, threads, context) {
  const require = createRequire(join(peerDir, 'package.json'));
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const ctx = await model.createContext({ ...context, threads: { ideal: threads, min: threads } });
  return {
    llama,
    model,
    context: ctx,
    info: () => ({ engine: 'llama.cpp', release: llama.llamaCppRelease?.release, build: llama.buildType, threads: ctx.currentThreads }),
    async close() {
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}
