// node-llama-cpp, resolved from PEER_DIR (a cache directory bench:peer installs it into), not from
// the workspace: it is not a dependency of ie. CPU only, prebuilt binaries, THREADS threads.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** The library, a model loaded from `modelPath`, and a context made with `context` (sizes, sequences). */
export async function openLlama(peerDir, modelPath, threads, context) {
  const require = createRequire(join(peerDir, 'package.json'));
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  // LLAMA_MMAP=0: llama.cpp's --no-mmap (the weights read into memory), for a side-by-side with ie's copied weights.
  const useMmap = process.env.LLAMA_MMAP !== '0';
  const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap });
  const ctx = await model.createContext({ ...context, threads: { ideal: threads, min: threads } });
  return {
    llama,
    model,
    context: ctx,
    info: () => ({
      engine: 'llama.cpp',
      release: llama.llamaCppRelease?.release,
      build: llama.buildType,
      threads: ctx.currentThreads,
      mmap: useMmap,
      cpuBackend: loadedCpuBackend(),
    }),
    async close() {
      await ctx.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

// The CPU backend ggml loaded (libggml-cpu-<name>.so: zen4, haswell, …), read from this process's
// mappings; null where /proc is not there.
function loadedCpuBackend() {
  try {
    const m = /libggml-cpu-([^/\s]+)\.so/.exec(readFileSync('/proc/self/maps', 'utf8'));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}
