/** What a model file is by its first bytes, for the readers that are handed one format in place of another. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { GGUF_MAGIC } from './gguf.js';

/**
 * `gguf` (its magic), `safetensors` (an 8-byte little-endian header length below the file's size,
 * then the header's `{`), or null: neither, unreadable, or not a regular file. Opened without
 * blocking (a FIFO has no writer to wait for) and fstat()ed before a byte is read: a FIFO, a device
 * or a directory is null.
 */
export async function modelFileKind(path: string): Promise<'gguf' | 'safetensors' | null> {
  const fh = await open(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0)).catch(() => undefined);
  if (!fh) return null;
  try {
    const st = await fh.stat();
    if (!st.isFile()) return null;
    const b = Buffer.alloc(9);
    const { bytesRead } = await fh.read(b, 0, 9, 0);
    if (bytesRead >= 4 && b.readUInt32LE(0) === GGUF_MAGIC) return 'gguf';
    if (bytesRead === 9 && b[8] === 0x7b && b.readBigUInt64LE(0) < BigInt(st.size)) return 'safetensors';
    return null;
  } finally {
    await fh.close();
  }
}
