/** Positional file reads that never read past what they were asked for. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { FormatError, FormatErrorCode } from './errors.js';

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
      fh = await open(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw onMissing('IO_ERROR', code === 'ENOENT' ? 'does not exist' : `cannot be opened (${code ?? (e as Error).message})`);
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw onMissing('IO_ERROR', 'is not a regular file');
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

/** sha256 of a whole file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function sha256Bytes(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}
