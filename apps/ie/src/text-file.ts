/**
 * The text files flags name (--prompt-file, --json-schema, --grammar, bench --prompts), read with
 * a byte cap and only from regular files: /dev/zero would otherwise be read until memory or the
 * string limit gives out, and a FIFO with no writer would block forever.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fileKind } from '@ie/format';
import { CliError } from './errors.js';

/** The largest text file a flag may name (far above any prompt, schema or grammar). */
export const MAX_FLAG_FILE_BYTES = 64 << 20;

/**
 * `file` as UTF-8 text; anything that stops it (missing, unreadable, not a regular file, over
 * `cap` bytes) is a CLI_USAGE error whose message starts with `what` (the flag and the file).
 */
export async function readFlagText(what: string, file: string, cap: number = MAX_FLAG_FILE_BYTES): Promise<string> {
  const fail = (why: string) => new CliError('CLI_USAGE', `${what}: ${why}`);
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO returns at once (and is refused below) instead of waiting for a writer.
    fh = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw fail((e as NodeJS.ErrnoException).code ?? (e as Error).message);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw fail(`is not a regular file (${fileKind(st)}); give a file`);
    if (st.size > cap) throw fail(`is ${st.size} bytes, over the ${cap}-byte cap`);
    // Up to one byte past the cap, whatever the size said (a /proc file says 0, a file may grow).
    const buf = Buffer.alloc(Math.min(cap + 1, st.size + 1 + (64 << 10)));
    let done = 0;
    let chunk = buf;
    for (;;) {
      if (done === chunk.length) {
        if (chunk.length > cap) break;
        const bigger = Buffer.alloc(Math.min(cap + 1, chunk.length * 2));
        chunk.copy(bigger, 0, 0, done);
        chunk = bigger;
      }
      const { bytesRead } = await fh.read(chunk, done, chunk.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (done > cap) throw fail(`is over the ${cap}-byte cap`);
    return chunk.toString('utf8', 0, done);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
