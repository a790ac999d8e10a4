/**
 * IebinWriter: streams tensors into a new bin file one at a time (memory stays bounded by what
 * the caller hands it), computes each tensor's CRC-32 on the way, and commits so that a crash at
 * any instruction leaves the directory holding exactly the previous model or exactly the new one.
 *
 * The commit (docs/iebin.md, "Writing"): the bin and the tokenizer are written to temporary files
 * (see safe-write.ts), fsynced and renamed to names no existing header uses
 * (`model.<pid>-<random>.ie.bin`, `tokenizer.<pid>-<random>.json`); a header naming them is
 * renamed over model.ie.json (the commit point: before it the old header and its files are
 * untouched, after it the new header and its files are complete). Only then are the files given
 * their usual names: hard links renamed over model.ie.bin and tokenizer.json (no header refers to
 * those any more), a second header naming them renamed over model.ie.json, and the staged names
 * unlinked. Where hard links are not supported the model stays under its staged names.
 */
import { crc32 } from 'node:zlib';
import { createHash } from 'node:crypto';
import { constants, createReadStream, rmdirSync } from 'node:fs';
import { link, lstat, open, readdir, rmdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { IebinError } from './errors.js';
import {
  DEFAULT_IEBIN_LIMITS,
  formatHeaderJson,
  validateIebinHeader,
  type IebinHeader,
  type Provenance,
  type TensorEntry,
  type TokenizerSpec,
} from './header.js';

export { formatHeaderJson };
import {
  IEBIN_ALIGNMENT,
  IEBIN_BIN_FILE,
  IEBIN_JSON_FILE,
  ROW_MAJOR,
  alignUp,
  quantGeometry,
  tensorByteSize,
  matrixDims,
  type Dtype,
  type QuantSpec,
  type TensorLayout,
} from './layout.js';
import type { ModelConfig } from './llama.js';
import type { ChatTemplateSpec } from './chat-template.js';
import {
  commitRename,
  createTempFile,
  discardTemp,
  discardTempSync,
  forgetTemp,
  fsyncDir,
  isStaleOwned,
  markLive,
  randomId,
  removeStaleTemps,
  tempName,
  makeDirs,
} from './safe-write.js';

export type QuantParams = Pick<QuantSpec, 'scheme' | 'granularity' | 'group_size' | 'scale_dtype'>;

export interface TensorSpec {
  name: string;
  dtype: Dtype;
  shape: number[];
  layout?: TensorLayout;
  quant?: QuantParams | null;
}

/** The tokenizer to store: an embedded spec, or a Hugging Face tokenizer.json to copy beside the model. */
export type TokenizerInput = Exclude<TokenizerSpec, { model: 'hf' }> | { model: 'hf'; source: string };

/**
 * The steps of {@link IebinWriter.finish}'s commit, in order (tokenizer steps only for a `tokenizer.json`
 * model; the steps after `committed` only where hard links work).
 */
export const IEBIN_COMMIT_STEPS = [
  'bin-synced',
  'bin-staged',
  'tokenizer-staged',
  'header-written',
  'staged-synced',
  'committed',
  'bin-linked',
  'bin-renamed',
  'tokenizer-linked',
  'tokenizer-renamed',
  'final-header-written',
  'final-synced',
  'final-committed',
  'staged-removed',
] as const;
export type IebinCommitStep = (typeof IEBIN_COMMIT_STEPS)[number];

export interface IebinWriterOptions {
  config: ModelConfig;
  tokenizer: TokenizerInput;
  provenance: Provenance;
  quantization?: Record<string, unknown> | null;
  /** The model's chat template (model.ie.json `chat`); absent or null: none. */
  chat?: ChatTemplateSpec | null;
  /**
   * @internal Called after each commit step. An exception thrown here is treated as the process
   * dying at that point: finish() rethrows it at once and cleans nothing up (crash tests).
   */
  onCommitStep?: (step: IebinCommitStep) => void;
}

export type TensorData = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

const HF_TOKENIZER_FILE = 'tokenizer.json';
const ZEROS = new Uint8Array(IEBIN_ALIGNMENT);
/** The names a writer stages its files under before the commit: `model.<pid>-<id>.ie.bin`, `tokenizer.<pid>-<id>.json`. */
const STAGED_RE = /^(?:model\.(\d+)-[0-9a-f]{16}\.ie\.bin|tokenizer\.(\d+)-[0-9a-f]{16}\.json)$/;

/** The file names the model.ie.json in `dir` refers to, or null when there is none or it cannot be read (then nothing is unreferenced). */
async function referencedFiles(dir: string): Promise<Set<string> | null> {
  let fh: FileHandle;
  try {
    fh = await open(join(dir, IEBIN_JSON_FILE), constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Set() : null;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > DEFAULT_IEBIN_LIMITS.maxHeaderBytes) return null;
    const h = JSON.parse(await fh.readFile('utf8')) as { bin?: { file?: unknown }; tokenizer?: { file?: unknown } };
    const names = new Set<string>();
    for (const f of [h?.bin?.file, h?.tokenizer?.file]) if (typeof f === 'string') names.add(f);
    return names;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}

/**
 * Removes what interrupted writers left in `dir`: temporary files and staging directories of
 * writers that are gone, and staged model files that model.ie.json does not name. Never touches
 * the files of a live writer or of the committed model.
 */
export async function removeStalePartials(dir: string): Promise<string[]> {
  const removed = await removeStaleTemps(dir);
  const refs = await referencedFiles(dir);
  if (!refs) return removed;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    const m = STAGED_RE.exec(n);
    if (!m || refs.has(n)) continue;
    const p = join(dir, n);
    if (!isStaleOwned(p, Number(m[1] ?? m[2]))) continue;
    try {
      if ((await lstat(p)).isDirectory()) continue;
      await unlink(p);
      removed.push(n);
    } catch {
      /* gone */
    }
  }
  return removed;
}

/** Thrown through finish() when the commit hook simulates a crash. */
class SimulatedCrash {
  constructor(readonly error: unknown) {}
}

export class IebinWriter {
  private readonly tensors: TensorEntry[] = [];
  private position = 0;
  private state: 'open' | 'finished' | 'aborted' | 'crashed' = 'open';
  /** Files this writer created that are not part of a committed model: removed on abort. */
  private readonly pending = new Set<string>();
  /** The directories create() made (outDir and any missing parents), deepest first: removed on abort if still empty. */
  private createdDirs: string[] = [];

  private constructor(
    readonly outDir: string,
    private readonly options: IebinWriterOptions,
    private readonly bin: FileHandle,
    private readonly binTemp: string,
    private readonly tokenizer: TokenizerSpec,
    private readonly tokenizerTemp: string | null,
  ) {
    this.pending.add(binTemp);
    if (tokenizerTemp) this.pending.add(tokenizerTemp);
  }

  static async create(outDir: string, options: IebinWriterOptions): Promise<IebinWriter> {
    const createdDirs = await makeDirs(outDir);
    try {
      const w = await IebinWriter.createIn(outDir, options);
      w.createdDirs = createdDirs;
      return w;
    } catch (e) {
      await removeEmptyDirs(createdDirs);
      throw e;
    }
  }

  private static async createIn(outDir: string, options: IebinWriterOptions): Promise<IebinWriter> {
    await removeStalePartials(outDir);
    let tokenizer: TokenizerSpec;
    let tokTemp: string | null = null;
    if (options.tokenizer.model === 'hf') {
      const t = await createTempFile(outDir, HF_TOKENIZER_FILE);
      tokTemp = t.path;
      try {
        const copied = await copyHashed(options.tokenizer.source, t.handle);
        tokenizer = { model: 'hf', file: HF_TOKENIZER_FILE, bytes: copied.bytes, sha256: copied.sha256 };
      } catch (e) {
        await discardTemp(t.path);
        throw e;
      }
    } else {
      tokenizer = options.tokenizer;
    }
    let b: Awaited<ReturnType<typeof createTempFile>>;
    try {
      b = await createTempFile(outDir, IEBIN_BIN_FILE);
    } catch (e) {
      if (tokTemp) await discardTemp(tokTemp);
      throw e;
    }
    return new IebinWriter(outDir, options, b.handle, b.path, tokenizer, tokTemp);
  }

  get writtenTensors(): readonly TensorEntry[] {
    return this.tensors;
  }

  /** Appends one tensor. `data` is its stored bytes (layout applied), whole or in chunks. */
  async addTensor(spec: TensorSpec, data: TensorData): Promise<TensorEntry> {
    if (this.state !== 'open') throw new IebinError('IEBIN_WRITER_STATE', `cannot add ${spec.name}: the writer is ${this.state}`);
    const layout = spec.layout ?? ROW_MAJOR;
    let quant: QuantSpec | null = null;
    if (spec.dtype === 'i8' || spec.dtype === 'q4') {
      if (!spec.quant) throw new IebinError('IEBIN_BAD_QUANT', `${spec.name}: ${spec.dtype} needs quantization parameters`);
      const { rows, cols } = matrixDims(spec.shape);
      const g = quantGeometry(spec.dtype, rows, cols, spec.quant);
      quant = { ...spec.quant, scales_offset: Number(g.scalesOffset), zeros_offset: g.zerosOffset === null ? null : Number(g.zerosOffset) };
    }
    const bytes = Number(tensorByteSize(spec.dtype, spec.shape, quant));
    const offset = Number(alignUp(BigInt(this.position)));
    try {
      if (offset > this.position) await this.write(ZEROS.subarray(0, offset - this.position));
      let crc = 0;
      let got = 0;
      const chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array> = data instanceof Uint8Array ? [data] : data;
      for await (const c of chunks) {
        got += c.length;
        if (got > bytes)
          throw new IebinError(
            'IEBIN_SIZE_MISMATCH',
            `${spec.name}: got more than the ${bytes} bytes that ${spec.dtype} ${JSON.stringify(spec.shape)} takes`,
          );
        crc = crc32(c, crc);
        await this.write(c);
      }
      if (got !== bytes)
        throw new IebinError(
          'IEBIN_SIZE_MISMATCH',
          `${spec.name}: got ${got} bytes, ${spec.dtype} ${JSON.stringify(spec.shape)} takes ${bytes}`,
        );
      const entry: TensorEntry = {
        name: spec.name,
        dtype: spec.dtype,
        shape: [...spec.shape],
        offset,
        bytes,
        layout: { ...layout },
        quant,
        crc32: (crc >>> 0).toString(16).padStart(8, '0'),
      };
      this.tensors.push(entry);
      return entry;
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  private async write(b: Uint8Array): Promise<void> {
    let done = 0;
    while (done < b.length) {
      const { bytesWritten } = await this.bin.write(b, done, b.length - done, null);
      done += bytesWritten;
    }
    this.position += b.length;
  }

  /** Runs the commit hook; a throw there is a simulated crash: this writer's files are left as they are. */
  private step(name: IebinCommitStep): void {
    try {
      this.options.onCommitStep?.(name);
    } catch (e) {
      this.state = 'crashed';
      for (const p of this.pending) forgetTemp(p);
      this.pending.clear();
      throw new SimulatedCrash(e);
    }
  }

  private hold(path: string): void {
    this.pending.add(path);
    markLive(path);
  }

  private release(path: string): void {
    this.pending.delete(path);
    forgetTemp(path);
  }

  private buildHeader(binFile: string, tokFile: string | null): { header: IebinHeader; text: string } {
    const header: IebinHeader = {
      format: 'iebin',
      version: 1,
      config: this.options.config,
      tokenizer: tokFile && this.tokenizer.model === 'hf' ? { ...this.tokenizer, file: tokFile } : this.tokenizer,
      provenance: this.options.provenance,
      bin: { file: binFile, bytes: this.position, alignment: IEBIN_ALIGNMENT },
      tensors: this.tensors,
      quantization: this.options.quantization ?? null,
      ...(this.options.chat ? { chat: this.options.chat } : {}),
    };
    // Validate exactly what a reader will see, and write it in the validator's key order.
    const checked = validateIebinHeader(JSON.parse(formatHeaderJson(header)), join(this.outDir, IEBIN_JSON_FILE));
    return { header: checked, text: formatHeaderJson(checked) };
  }

  /** Writes `text` to a new temporary header file, fsynced; returns its path. */
  private async writeHeaderTemp(text: string): Promise<string> {
    const t = await createTempFile(this.outDir, IEBIN_JSON_FILE);
    this.pending.add(t.path);
    try {
      await t.handle.writeFile(text);
      await t.handle.sync();
    } finally {
      await t.handle.close();
    }
    return t.path;
  }

  /** Validates the complete header, fsyncs, and commits (see the module comment). Returns the header now in model.ie.json. */
  async finish(): Promise<IebinHeader> {
    if (this.state !== 'open') throw new IebinError('IEBIN_WRITER_STATE', `cannot finish: the writer is ${this.state}`);
    const dir = this.outDir;
    const jsonPath = join(dir, IEBIN_JSON_FILE);
    const id = `${process.pid}-${randomId()}`;
    const staged = { bin: `model.${id}.ie.bin`, tok: this.tokenizerTemp ? `tokenizer.${id}.json` : null };
    const stagedBin = join(dir, staged.bin);
    const stagedTok = staged.tok ? join(dir, staged.tok) : null;
    let previous: Set<string> | null = null;
    let stagedHeader: { header: IebinHeader; text: string };
    let finalHeader: { header: IebinHeader; text: string };
    try {
      stagedHeader = this.buildHeader(staged.bin, staged.tok);
      finalHeader = this.buildHeader(IEBIN_BIN_FILE, staged.tok ? HF_TOKENIZER_FILE : null);
      await this.bin.sync();
      await this.bin.close();
      this.step('bin-synced');
      this.hold(stagedBin);
      await commitRename(this.binTemp, stagedBin);
      this.release(this.binTemp);
      this.step('bin-staged');
      if (this.tokenizerTemp && stagedTok) {
        this.hold(stagedTok);
        await commitRename(this.tokenizerTemp, stagedTok);
        this.release(this.tokenizerTemp);
        this.step('tokenizer-staged');
      }
      const headerTemp = await this.writeHeaderTemp(stagedHeader.text);
      this.step('header-written');
      await fsyncDir(dir);
      this.step('staged-synced');
      previous = await referencedFiles(dir);
      await commitRename(headerTemp, jsonPath);
      // Committed: the staged files belong to the model now, nothing may remove them.
      for (const p of this.pending) forgetTemp(p);
      this.pending.clear();
      this.step('committed');
    } catch (e) {
      if (e instanceof SimulatedCrash) throw e.error;
      await this.abort();
      if (e instanceof IebinError) throw e;
      throw new IebinError(
        'IEBIN_WRITE_FAILED',
        `writing the model failed (${(e as Error).message}); any previous model there is untouched`,
        { file: dir, cause: e },
      );
    }
    let committed = stagedHeader.header;
    try {
      await fsyncDir(dir);
      if (await this.linkUsualNames(stagedBin, stagedTok)) {
        const headerTemp = await this.writeHeaderTemp(finalHeader.text);
        this.step('final-header-written');
        await fsyncDir(dir);
        this.step('final-synced');
        await commitRename(headerTemp, jsonPath);
        this.pending.delete(headerTemp);
        committed = finalHeader.header;
        this.step('final-committed');
        await fsyncDir(dir);
        await unlink(stagedBin);
        if (stagedTok) await unlink(stagedTok);
        this.step('staged-removed');
      } else {
        // No hard links here: the model stays under its staged names, and the previous bin is unreferenced.
        await unlink(join(dir, IEBIN_BIN_FILE)).catch(() => undefined);
      }
      // The previous model's tokenizer file, when the new model has none (its bin was replaced above).
      if (!stagedTok && previous?.has(HF_TOKENIZER_FILE)) await unlink(join(dir, HF_TOKENIZER_FILE)).catch(() => undefined);
      await fsyncDir(dir);
      await removeStalePartials(dir);
    } catch (e) {
      if (e instanceof SimulatedCrash) throw e.error;
      // The new model is committed; only giving its files their usual names failed.
      for (const p of this.pending) await discardTemp(p);
      this.pending.clear();
    }
    this.state = 'finished';
    return committed;
  }

  /**
   * After the commit: makes model.ie.bin (and tokenizer.json) hard links to the staged files,
   * through a temporary link renamed over the old name, which no header refers to any more.
   * Returns false, having changed nothing, where the file system has no hard links.
   */
  private async linkUsualNames(stagedBin: string, stagedTok: string | null): Promise<boolean> {
    const dir = this.outDir;
    const pairs: Array<[string, string, IebinCommitStep, IebinCommitStep]> = [[stagedBin, IEBIN_BIN_FILE, 'bin-linked', 'bin-renamed']];
    if (stagedTok) pairs.push([stagedTok, HF_TOKENIZER_FILE, 'tokenizer-linked', 'tokenizer-renamed']);
    for (const [i, [staged, final, linked, renamed]] of pairs.entries()) {
      const tmp = join(dir, tempName(final));
      this.hold(tmp);
      try {
        await link(staged, tmp);
      } catch (e) {
        this.release(tmp);
        if (i === 0 && isLinkUnsupported(e)) return false;
        throw e;
      }
      this.step(linked);
      await commitRename(tmp, join(dir, final));
      this.release(tmp);
      this.step(renamed);
    }
    return true;
  }

  /** Stops and removes this writer's uncommitted files. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.bin.close().catch(() => undefined);
    for (const p of this.pending) await discardTemp(p);
    this.pending.clear();
    await removeEmptyDirs(this.createdDirs);
  }

  /** Synchronous abort, for signal and exit handlers: removes uncommitted files only, never those of a committed model. */
  abortSync(): void {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    // Closing is asynchronous; the files are unlinked synchronously below, which is what matters.
    this.bin.close().catch(() => undefined);
    for (const p of this.pending) discardTempSync(p);
    this.pending.clear();
    for (const d of this.createdDirs) {
      try {
        rmdirSync(d);
      } catch {
        break;
      }
    }
  }
}

/**
 * Removes the directories a failed writer made, deepest first, each only while it is empty
 * (rmdir refuses a directory holding anything): a directory that existed before, or that
 * something else wrote into since, stays.
 */
async function removeEmptyDirs(dirs: readonly string[]): Promise<void> {
  for (const d of dirs) {
    try {
      await rmdir(d);
    } catch {
      return;
    }
  }
}

function isLinkUnsupported(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'EXDEV' || code === 'EMLINK';
}

async function copyHashed(src: string, out: FileHandle): Promise<{ bytes: number; sha256: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(src, { highWaterMark: 1 << 20 })) {
      const b = chunk as Buffer;
      h.update(b);
      bytes += b.length;
      await out.write(b);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return { bytes, sha256: h.digest('hex') };
}
