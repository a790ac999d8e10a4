/**
 * MODEL_DIR as every command takes it: an IEBIN directory, or a GGUF file in its place, converted
 * once into the cache (@ie/runtime's ensureGgufCache, IE_CACHE_DIR) and that entry used, as
 * generate, bench and serve load it.
 */
import { ensureGgufCache, isGgufFile, type GgufConvertProgress } from '@ie/runtime';
import type { Io } from '../command.js';
import { Progress } from '../progress.js';

/** A bar (or, off a terminal, one summary line) on stderr while a GGUF file is converted into the cache. */
export function ggufConvertProgress(enabled = true): (p: GgufConvertProgress) => void {
  const bar = new Progress('converting GGUF into the cache', process.stderr, enabled);
  return (p) => {
    bar.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`);
    if (p.index + 1 === p.count) bar.done();
  };
}

/** The IEBIN directory to read for `path`: itself, or a GGUF file's cache entry (its notice on stderr). */
export async function modelDirectory(path: string, io: Io, options: { progress?: boolean } = {}): Promise<string> {
  if (!(await isGgufFile(path))) return path;
  const entry = await ensureGgufCache(path, { onProgress: ggufConvertProgress(options.progress ?? true) });
  io.err(`ie: note: ${entry.notice}`);
  return entry.dir;
}
