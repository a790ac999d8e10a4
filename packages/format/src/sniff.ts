/** What a model file is by its first bytes, for the readers that are handed one format in place of another. */
import { open } from 'node:fs/promises';
import { GGUF_MAGIC } from './gguf.js';

/**
 * `gguf` (its magic), `safetensors` (an 8-byte little-endian header length below the file's size,
 * then the header's `{`), or null: neither, or unreadable.
 */
export async function modelFileKind(path: string): Promise<'gguf' | 'safetensors' | null> {
  const fh = await open(path, 'r').catch(() => undefined);
  if (!fh) return null;
  try {
    const b = Buffer.alloc(9);
    const { bytesRead } = await fh.read(b, 0, 9, 0);
    if (bytesRead >= 4 && b.readUInt32LE(0) === GGUF_MAGIC) return 'gguf';
    if (bytesRead === 9 && b[8] === 0x7b && b.readBigUInt64LE(0) < BigInt((await fh.stat()).size)) return 'safetensors';
    return null;
  } finally {
    await fh.close();
  }
}
