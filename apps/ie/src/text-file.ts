/**
 * The text files flags name (--prompt-file, --json-schema, --grammar, bench --prompts), read with
 * a byte cap and only from regular files: /dev/zero would otherwise be read until memory or the
 * string limit gives out, and a FIFO with no writer would block forever.
 */
import { readRegularFile } from '@ie/format';
import { CliError } from './errors.js';

/** The largest text file a flag may name (far above any prompt, schema or grammar). */
export const MAX_FLAG_FILE_BYTES = 64 << 20;

/**
 * `file` as UTF-8 text; anything that stops it (missing, unreadable, not a regular file, over
 * `cap` bytes) is a CLI_USAGE error whose message starts with `what` (the flag and the file).
 * A /proc file, whose size fstat() does not know, is read up to the cap.
 */
export async function readFlagText(what: string, file: string, cap: number = MAX_FLAG_FILE_BYTES): Promise<string> {
  const bytes = await readRegularFile(file, cap, (_code, why) => new CliError('CLI_USAGE', `${what}: ${why}`), 'IO_ERROR', {
    sizeMayDiffer: true,
  });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
}
