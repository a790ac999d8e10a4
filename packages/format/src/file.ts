/** Positional file reads that never read past what they were asked for. */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { FormatError, FormatErrorCode } from './errors.js';

/**
 * Opening flags for files an importer reads: O_NONBLOCK so that opening a FIFO (or a symlink to
 * one) returns at once instead of waiting for a writer; the fstat() that follows refuses it.
 * Symlinks to regular files are followed (Hugging Face caches are made of them).
 */
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

export type ErrorFactory = (code: FormatErrorCode, message: string, field?: string) => FormatError;

export class RandomAccessFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string, onMissing: ErrorFactory): Promise<RandomAccessFile> {
    let fh: FileHandle;
    try {
      fh = await open(path, READ_FLAGS);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw onMissing('IO_ERROR', code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code ?? (e as Error).message})`);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw onMissing('IO_ERROR', `is not a regular file (${fileKind(st)}); only regular files are read`);
    }
    return new RandomAccessFile(path, fh, st.size);
  }

  /** Reads exactly `length` bytes at `position` into a fresh, aligned buffer. The caller has checked the range. */
  async read(position: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    await this.readInto(buf, position);
    return buf;
  }

  async readInto(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.fh.read(buf, done, buf.length - done, position + done);
      if (bytesRead === 0) throw new RangeError(`${this.path}: unexpected end of file at ${position + done}`);
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** What a non-regular file is, in words ("a FIFO", "a directory"), for the messages that refuse it. */
export function fileKind(st: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isSocket(): boolean;
}): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a plain file';
}

/** How {@link readRegularFile} treats a file whose size fstat() does not know. */
export interface ReadRegularFileOptions {
  /**
   * Read a regular file whatever size fstat() reports, up to `cap` bytes: a /proc file (size 0)
   * or one growing while read is taken as it reads. Off (the default), such a file is refused,
   * which suits model files whose sizes are checked against their headers.
   */
  sizeMayDiffer?: boolean;
}

/**
 * Reads a whole file an importer needs (a config, a tokenizer, an index, a manifest) or a flag
 * names (a prompt, a schema) with a size cap that holds whatever the file is: the opened
 * descriptor is fstat()ed and anything but a regular file (FIFO, device, socket, directory, also
 * through a symlink) is refused; at most `cap` + 1 bytes are ever read, and a file that yields
 * more bytes than fstat() reported (a /proc file, whose size is 0, or one growing while read) is
 * refused too unless `sizeMayDiffer`. Errors carry `code`.
 */
export async function readRegularFile(
  path: string,
  cap: number,
  fail: (code: FormatErrorCode, message: string) => Error,
  code: FormatErrorCode = 'IO_ERROR',
  options: ReadRegularFileOptions = {},
): Promise<Uint8Array> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO returns at once (and is refused below) instead of waiting for a writer.
    fh = await open(path, READ_FLAGS);
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    throw fail(code, c === 'ENOENT' ? 'does not exist' : `cannot be opened (${c ?? 'error'})`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw fail(code, `is not a regular file (${fileKind(st)}); only regular files are read`);
    if (st.size > cap) throw fail(code, `is ${st.size} bytes, over the ${cap}-byte cap`);
    // One byte more than fstat() promised tells a pseudo-file (or a growing one) from a regular file.
    let buf = new Uint8Array(st.size + 1);
    let done = 0;
    for (;;) {
      if (done === buf.length) {
        if (!options.sizeMayDiffer || buf.length > cap) break;
        const bigger = new Uint8Array(Math.min(cap + 1, Math.max(buf.length * 2, 64 << 10)));
        bigger.set(buf);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, done, buf.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (options.sizeMayDiffer) {
      if (done > cap) throw fail(code, `is over the ${cap}-byte cap`);
    } else if (done !== st.size) {
      throw fail(
        code,
        `yielded ${done > st.size ? 'more' : 'fewer'} bytes than its size (${st.size}); it is not a plain regular file (a /proc file?) or it changed while being read`,
      );
    }
    return buf.subarray(0, done);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Where JSON.parse stopped, from its message (V8 says "at position N"), without the text it quotes. */
export function jsonErrorPosition(e: unknown): string {
  const m = /position (\d+)/.exec(e instanceof Error ? e.message : '');
  if (m) return `at character ${m[1]}`;
  return /end of JSON|Unexpected end/i.test(e instanceof Error ? e.message : '') ? 'at the end (truncated)' : 'syntax error';
}

/** sha256 of a whole file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sha256Bytes(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
