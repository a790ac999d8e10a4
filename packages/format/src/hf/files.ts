/** The JSON files of a Hugging Face directory, read with a size cap and reported without quoting them. */
import { stat } from 'node:fs/promises';
import { HfModelError, type FormatErrorCode } from '../errors.js';
import { jsonErrorPosition, readRegularFile } from '../file.js';

const MAX_JSON = 64 << 20;

/** A JSON object file of at most `cap` bytes (`what` names the file a directory is missing). */
export async function readJson(path: string, code: FormatErrorCode, what: string, cap = MAX_JSON): Promise<Record<string, unknown>> {
  const bytes = await readRegularFile(
    path,
    cap,
    (c, message) =>
      new HfModelError(c, message === 'does not exist' ? `is missing; a Hugging Face model directory needs ${what}` : message, {
        file: path,
      }),
    code,
  );
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    // Say where, never what: the message must not quote the file's bytes.
    throw new HfModelError(code, e instanceof TypeError ? 'is not valid UTF-8' : `is not valid JSON (${jsonErrorPosition(e)})`, {
      file: path,
    });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HfModelError(code, 'must hold a JSON object', { file: path });
  return v as Record<string, unknown>;
}

/** Whether anything exists at `p`. */
export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
