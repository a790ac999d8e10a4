/**
 * The open/map/attach sequence every user of a model file goes through, written once: the header
 * validated, the bin mapped read-only (private pages shared with the page cache), NUMA hints
 * applied, the reader attached to the mapping, optionally every tensor verified. What fails
 * half-way releases what it took.
 */
import { IebinReader } from '@ie/format';
import { KernelContext, type ContextOptions, type MappedFile } from '@ie/kernels';
import { IeRuntimeError } from './errors.js';

export interface MappedModel {
  reader: IebinReader;
  ctx: KernelContext;
  mapping: MappedFile;
  numa: { applied: boolean; detail: string };
  /** Unmaps, closes the kernel context and the reader. */
  close(): Promise<void>;
}

export interface MapOptions {
  context?: ContextOptions;
  /** Ask for transparent huge pages on the mapping (the engine does; tools need not). */
  hugePages?: boolean;
  /** Check every tensor's CRC-32 and NaN/Inf (what `ie validate --deep` checks) before anything runs. */
  verify?: boolean;
}

/** Opens `dir` (model.ie.json + model.ie.bin), maps its weights and attaches them to the reader. */
export async function openMapped(dir: string, o: MapOptions = {}): Promise<MappedModel> {
  const reader = await IebinReader.open(dir);
  let ctx: KernelContext | undefined;
  let mapping: MappedFile | undefined;
  try {
    ctx = KernelContext.create(o.context ?? {});
    mapping = ctx.mapFile(reader.binPath as string, { advice: 'willneed', hugePages: o.hugePages ?? false });
    const numa = ctx.numaBind(mapping);
    reader.attach(mapping);
    if (o.verify) await verifyOrThrow(reader);
    const [c, m] = [ctx, mapping];
    return {
      reader,
      ctx: c,
      mapping: m,
      numa: { applied: numa.applied, detail: numa.detail },
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
