/**
 * The open/map/attach sequence every user of a model file goes through, written once: the header
 * validated, the bin mapped read-only (private pages shared with the page cache) or read into
 * huge-page memory (weight-memory.ts), NUMA hints applied, the reader attached to it, optionally
 * every tensor verified. What fails half-way releases what it took.
 */
import { IebinReader, expectedTensors } from '@ie/format';
import { KernelContext, type ContextOptions, type MappedFile } from '@ie/kernels';
import { IeRuntimeError } from './errors.js';
import { type GgufCacheOptions, ensureGgufCache, isGgufFile } from './gguf-cache.js';
import { resolveContextOptions } from './options.js';
import { type WeightMemoryMode, type WeightMemoryPlan, planWeightMemory } from './weight-memory.js';

export interface MappedModel {
  reader: IebinReader;
  ctx: KernelContext;
  mapping: MappedFile;
  numa: { applied: boolean; detail: string };
  /** Whether the weights were copied into memory or mapped, and why. */
  weightMemory: WeightMemoryPlan;
  /** What opening did that the user should hear of (a GGUF file converted into the cache, or a cached conversion reused). */
  notices: string[];
  /** The directory opened: `dir` itself, or the cache entry a GGUF file was converted into. */
  directory: string;
  /** Unmaps, closes the kernel context and the reader. */
  close(): Promise<void>;
}

export interface MapOptions {
  context?: ContextOptions;
  /** Ask for transparent huge pages on the mapping (the engine does; tools need not). */
  hugePages?: boolean;
  /** Copy the weights into memory or map them (see weight-memory.ts). Default mmap: tools that read a file once need no copy. */
  weightMemory?: WeightMemoryMode;
  /** Check every tensor's CRC-32 and NaN/Inf (what `ie validate --deep` checks) before anything runs. */
  verify?: boolean;
  /** Where a GGUF file is converted to (see gguf-cache.ts). Default: `$IE_CACHE_DIR`, `$XDG_CACHE_HOME/ie` or `~/.cache/ie`. */
  cacheDir?: string;
  /** Progress of a GGUF file's conversion into the cache (see GgufCacheOptions.onProgress). */
  onConvertProgress?: GgufCacheOptions['onProgress'];
}

const sizeText = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${Math.round(n / 2 ** 20)} MiB`);

/**
 * The tensors a step reads one row of, by byte range in the bin: the token embedding when the
 * classifier does not share it. A copy of the weights leaves them mapped (KernelContext.loadFile's
 * `mapped`): copied, gpt-oss-20b's 1.16 GB embedding sat in memory for the 5.7 KB a token reads.
 */
function rowLookupTables(reader: IebinReader): Array<{ offset: number; length: number }> {
  const config = reader.header.config;
  if (config.tied_classifier) return [];
  const embeddings = new Set(
    expectedTensors(config)
      .filter((e) => e.role === 'embedding')
      .map((e) => e.name),
  );
  return reader.tensors.filter((t) => embeddings.has(t.name)).map((t) => ({ offset: t.offset, length: t.bytes }));
}

/**
 * Opens `dir` (model.ie.json + model.ie.bin), maps its weights and attaches them to the reader.
 * A GGUF file in place of the directory is converted once into the cache and that entry opened.
 */
export async function openMapped(dir: string, o: MapOptions = {}): Promise<MappedModel> {
  const notices: string[] = [];
  let directory = dir;
  if (await isGgufFile(dir)) {
    const entry = await ensureGgufCache(dir, { cacheDir: o.cacheDir, onProgress: o.onConvertProgress });
    notices.push(entry.notice);
    directory = entry.dir;
  }
  const reader = await IebinReader.open(directory);
  let ctx: KernelContext | undefined;
  let mapping: MappedFile | undefined;
  try {
    ctx = KernelContext.create(resolveContextOptions(o.context));
    const binPath = reader.binPath as string;
    let plan = planWeightMemory(o.weightMemory ?? 'mmap', reader.header.bin.bytes);
    if (plan.mode === 'copy') {
      const rowTables = rowLookupTables(reader);
      mapping = await ctx.loadFile(binPath, { length: reader.header.bin.bytes, hugePages: true, mapped: rowTables });
      if (mapping.fileBackedBytes > 0)
        plan = {
          ...plan,
          detail: `${plan.detail}; the token embedding (${sizeText(mapping.fileBackedBytes)}, a row read per token) stays mapped from the file`,
        };
    } else mapping = ctx.mapFile(binPath, { advice: 'willneed', hugePages: o.hugePages ?? false });
    const numa = ctx.numaBind(mapping);
    reader.attach(mapping);
    if (o.verify) await verifyOrThrow(reader);
    const [c, m] = [ctx, mapping];
    return {
      reader,
      ctx: c,
      mapping: m,
      numa: { applied: numa.applied, detail: numa.detail },
      weightMemory: plan,
      notices,
      directory,
      close: async () => {
        m.close();
        c.close();
        await reader.close();
      },
    };
  } catch (e) {
    mapping?.close();
    ctx?.close();
    await reader.close();
    throw e;
  }
}

/** A corrupt model must not generate garbage with exit 0: IE_MODEL_CORRUPT with the first problems. */
async function verifyOrThrow(reader: IebinReader): Promise<void> {
  const report = await reader.verify();
  if (report.ok) return;
  const shown = report.problems
    .slice(0, 3)
    .map((p) => `${p.message} [${p.code}]`)
    .join('; ');
  throw new IeRuntimeError(
    'IE_MODEL_CORRUPT',
    `${reader.binPath}: fails verification (${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}): ${shown}${report.problems.length > 3 ? '; …' : ''}`,
  );
}
