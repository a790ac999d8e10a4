import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { MAX_FLAG_FILE_BYTES, readFlagText } from './text-file.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-flag-file-'));

/** The CliError readFlagText gives for `file`, as { code, message }. */
async function refusal(file: string, cap?: number): Promise<{ code: string; message: string }> {
  try {
    await readFlagText(`--prompt-file ${file}`, file, cap);
  } catch (e) {
    if (!(e instanceof CliError)) throw e;
    return { code: e.code, message: e.message };
  }
  throw new Error('not refused');
}

describe('readFlagText: the files flags name, capped and regular only', () => {
  it('reads a regular file as UTF-8, up to the cap exactly', async () => {
    const d = tmp();
    writeFileSync(join(d, 'p.txt'), 'héllo\n');
    expect(await readFlagText('--prompt-file p.txt', join(d, 'p.txt'))).toBe('héllo\n');
    expect(await readFlagText('--prompt-file p.txt', join(d, 'p.txt'), 7)).toBe('héllo\n');
    expect(MAX_FLAG_FILE_BYTES).toBe(64 << 20);
  });

  it('refuses a file over the cap, naming the flag and the file', async () => {
    const d = tmp();
    const p = join(d, 'big.txt');
    writeFileSync(p, 'x'.repeat(100));
    expect(await refusal(p, 99)).toEqual({ code: 'CLI_USAGE', message: `--prompt-file ${p}: is 100 bytes, over the 99-byte cap` });
  });

  it.skipIf(process.platform !== 'linux')('a file whose size says 0 but which reads on (/proc) is read up to the cap only', async () => {
    expect(await readFlagText('--prompt-file /proc/self/status', '/proc/self/status')).toMatch(/^Name:/);
    expect(await refusal('/proc/self/status', 8)).toEqual({
      code: 'CLI_USAGE',
      message: '--prompt-file /proc/self/status: is over the 8-byte cap',
    });
  });

  it('refuses what is not a regular file at once: a device (/dev/zero), a directory, a FIFO', async () => {
    expect(await refusal('/dev/zero')).toEqual({
      code: 'CLI_USAGE',
      message: '--prompt-file /dev/zero: is not a regular file (a character device); only regular files are read',
    });
    const d = tmp();
    mkdirSync(join(d, 'dir'));
    expect(await refusal(join(d, 'dir'))).toMatchObject({
      message: `--prompt-file ${join(d, 'dir')}: is not a regular file (a directory); only regular files are read`,
    });
    const fifo = join(d, 'fifo');
    if (spawnSync('mkfifo', [fifo]).status === 0)
      expect(await refusal(fifo)).toMatchObject({
        message: `--prompt-file ${fifo}: is not a regular file (a FIFO); only regular files are read`,
      });
    expect(await refusal(join(d, 'missing.txt'))).toEqual({
      code: 'CLI_USAGE',
      message: `--prompt-file ${join(d, 'missing.txt')}: does not exist`,
    });
  });
});
