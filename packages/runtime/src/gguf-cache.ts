/**
 * Loading a GGUF file directly: it is converted once, with the calls `ie convert --gguf` makes
 * (openGguf, the tokenizer probe, exportIebin), into an IEBIN directory in a cache, and that
 * directory is what gets mapped. A cache entry is named by the file's size, mtime and a hash of its
 * header (at least its first MiB), so a changed file gets a new entry without the whole file being
 * hashed. The conversion is written into a staging directory and renamed into place: a crash
 * leaves a stale staging directory (removed by the next conversion), never a half entry.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, lstat, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import {
  IebinReader,
  RandomAccessFile,
  GgufError,
  commitRename,
  createStagingDir,
  exportIebin,
  fsyncDir,
  modelFileKind,
  openGguf,
  readGguf,
  makeDirs,
  removeStaleTemps,
} from '@ie/format';
import { IeRuntimeError } from './errors.js';
import { buildTokenizer } from './tokenizer/index.js';

/** Bumped when what a cache entry holds changes (v2: GGUF pieces keep a leading U+FEFF, Llama 3 vocabularies' BOS default, linear RoPE): older entries are then left unused. */
const CACHE_FORMAT = 'ie-gguf-cache-v2';
const HEAD_BYTES = 1 << 20;
/** The header hash stops here even if a GGUF header is larger (its size and mtime are in the key too). */
const MAX_HEAD_BYTES = 64 << 20;

/** How far a conversion into the cache is: after each tensor, the source bytes written so far. */
export interface GgufConvertProgress {
  tensor: string;
  index: number;
  count: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface GgufCacheOptions {
  /** Where converted models are kept. Default: `$IE_CACHE_DIR`, else `$XDG_CACHE_HOME/ie`, else `~/.cache/ie`. */
  cacheDir?: string;
  /** Called after each tensor while the file is converted (never when a cached conversion is reused). */
  onProgress?: (p: GgufConvertProgress) => void;
}

export interface GgufCacheEntry {
  /** The IEBIN directory to open. */
  dir: string;
  /** The cache entry's name (under the cache directory). */
  key: string;
  /** Whether this call converted the file (false: a previous conversion was reused). */
  converted: boolean;
  /** One line for `engine.notices`. */
  notice: string;
}

/** The cache directory cannot hold the conversion (IE_CACHE_NOT_WRITABLE). */
export class GgufCacheError extends IeRuntimeError {
  override readonly name = 'GgufCacheError';
  constructor(
    readonly file: string,
    readonly cacheDir: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('IE_CACHE_NOT_WRITABLE', message, options);
  }
}

/** The cache directory used when none is given. */
export function defaultGgufCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IE_CACHE_DIR) return resolve(env.IE_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return resolve(env.XDG_CACHE_HOME, 'ie');
  return join(homedir(), '.cache', 'ie');
}

/** Whether `path` is a regular file that starts with the GGUF magic (or, unreadable as such, is named *.gguf: openGguf then says what is wrong). */
export async function isGgufFile(path: string): Promise<boolean> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  if (!st.isFile()) return false;
  return (await modelFileKind(path)) === 'gguf' || /\.gguf$/i.test(path);
}

/**
 * The cache key of a GGUF file: its size, mtime and a sha256 of its header (the first MiB, or up
 * to the data section when the header is longer). Throws the format package's GgufError for a
 * file that does not parse.
 */
export async function ggufCacheKey(path: string): Promise<string> {
  const st = await stat(path);
  const f = await RandomAccessFile.open(path, (code, message) => new GgufError(code, message, { file: path }));
  try {
    const g = await readGguf(f);
    const n = Math.min(f.size, MAX_HEAD_BYTES, Math.max(HEAD_BYTES, g.dataOffset));
    const h = createHash('sha256');
    h.update(`${CACHE_FORMAT}\0${st.size}\0${st.mtimeMs}\0`);
    h.update(await f.read(0, n));
    const stem =
      basename(path)
        .replace(/\.gguf$/i, '')
        .replace(/[^A-Za-z0-9._-]/g, '_')
        .slice(0, 64) || 'model';
    return `${stem}-${h.digest('hex').slice(0, 20)}`;
  } finally {
    await f.close();
  }
}

/** Whether `dir` holds a model that opens (its header validates). */
async function usable(dir: string): Promise<boolean> {
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) return false;
    const r = await IebinReader.open(dir);
    await r.close();
    return true;
  } catch {
    return false;
  }
}

async function writableRoot(root: string, file: string): Promise<void> {
  try {
    await makeDirs(root);
    await access(root, constants.W_OK | constants.X_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new GgufCacheError(
      file,
      root,
      `${file}: cannot convert this GGUF file into the cache ${root} (${code}); give a writable cache directory (cacheDir, IE_CACHE_DIR), or convert it once yourself: ie convert --gguf ${file} --out-dir DIR, then load DIR`,
      { cause: e },
    );
  }
}

/**
 * The IEBIN directory for the GGUF file `file`: a previous conversion in the cache when its key
 * matches and it opens, else a new one (converted into a staging directory, renamed into place).
 */
export async function ensureGgufCache(file: string, options: GgufCacheOptions = {}): Promise<GgufCacheEntry> {
  const root = options.cacheDir !== undefined ? resolve(options.cacheDir) : defaultGgufCacheDir();
  const key = await ggufCacheKey(file);
  const dir = join(root, key);
  if (await usable(dir)) return { dir, key, converted: false, notice: `${file} is GGUF: loaded its IEBIN conversion cached in ${dir}` };
  await writableRoot(root, file);
  const t0 = performance.now();
  const source = await openGguf(file);
  let staging: string | undefined;
  try {
    // As ie convert: the tokenizer is built and probed before anything is written.
    await buildTokenizer(source.tokenizer, source.config, { file, sourceFormat: source.format });
    await removeStaleTemps(root);
    try {
      staging = await createStagingDir(root);
    } catch (e) {
      throw new GgufCacheError(
        file,
        root,
        `${file}: cannot write into the cache ${root} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give a writable cache directory (cacheDir, IE_CACHE_DIR), or run ie convert --gguf ${file} --out-dir DIR and load DIR`,
        { cause: e },
      );
    }
    await exportIebin(source, staging, { converter: 'ie runtime (GGUF load)', onProgress: options.onProgress });
    await source.close();
    // An entry that exists but does not open is replaced; one another process just committed is kept.
    try {
      await commitRename(staging, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      if (await usable(dir)) {
        await rm(staging, { recursive: true, force: true });
        staging = undefined;
        return { dir, key, converted: false, notice: `${file} is GGUF: loaded its IEBIN conversion cached in ${dir}` };
      }
      const old = `${staging}old`; // still a staging name: removed as stale if this process dies here
      await rename(dir, old);
      await commitRename(staging, dir);
      await rm(old, { recursive: true, force: true });
    }
    staging = undefined;
    await fsyncDir(root);
  } catch (e) {
    await source.close().catch(() => {});
    if (staging) await rm(staging, { recursive: true, force: true }).catch(() => {});
    throw e;
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  return {
    dir,
    key,
    converted: true,
    notice: `${file} is GGUF: converted it to IEBIN in ${secs} s, cached in ${dir} (later loads reuse it; set cacheDir or IE_CACHE_DIR to move the cache)`,
  };
}
