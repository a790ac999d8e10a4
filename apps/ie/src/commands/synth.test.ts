/** Ctrl-C during ie synth --format hf / gguf: no partial file left, a previous model untouched. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IE_CLI, runIe, sameBytes } from '@ie/testing';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-synth-int-'));
/** Big enough that the write takes seconds (about 350 MB in f16), not so big that it fills /tmp. */
const BIG = ['--preset', 'tinyllama-1.1b', '--layers', '2', '--dtype', 'f16', '--quiet'];
/** @ie/format's temporary names: `.<final>.partial-<pid>-<id>` and `.ie-staging-<pid>-<id>`. */
const PARTIAL = /^\.(?:.+\.partial|ie-staging)-\d+-/;

/** The largest file this process has under `dir` (staging directories included), in bytes. */
function partialBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let most = 0;
  for (const n of readdirSync(dir).filter((n) => PARTIAL.test(n))) {
    const p = join(dir, n);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isFile()) most = Math.max(most, st.size);
    else if (st.isDirectory())
      for (const f of readdirSync(p)) most = Math.max(most, statSync(join(p, f), { throwIfNoEntry: false })?.size ?? 0);
  }
  return most;
}

/** Starts `ie synth args`, sends SIGINT once a partial file under `watch` has passed 8 MB, and returns the exit code. */
async function interrupted(args: string[], watch: string): Promise<number | null> {
  const child = spawn(process.execPath, [IE_CLI, 'synth', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let seen = 0;
  for (let i = 0; i < 6000 && child.exitCode === null; i++) {
    seen = partialBytes(watch);
    if (seen > 8 << 20) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(seen, `it was mid-write (${err})`).toBeGreaterThan(8 << 20);
  child.kill('SIGINT');
  const code = await exited;
  expect(err).toContain('interrupted by SIGINT; partial output removed');
  return code;
}

/** Every file under `dir` with its bytes. */
function snapshot(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((n) => [n, readFileSync(join(dir, n))]));
}

describe('an interrupted ie synth leaves no partial files', () => {
  it('--format hf into a new directory: the directory is not left behind', async () => {
    const d = tmp();
    const out = join(d, 'hf');
    expect(await interrupted([...BIG, '--format', 'hf', '--out-dir', out], out)).toBe(130);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
  });

  it('--format hf over a previous model: every previous file untouched, nothing else there', async () => {
    const out = tmp();
    expect(runIe(['synth', '--preset', 'tiny', '--format', 'hf', '--out-dir', out]).code).toBe(0);
    const before = snapshot(out);
    expect(await interrupted([...BIG, '--format', 'hf', '--out-dir', out], out)).toBe(130);
    const after = snapshot(out);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [n, b] of before) expect(sameBytes(after.get(n) as Buffer, b), n).toBe(true);
  });

  it('--format gguf over a previous file: the file untouched, no partial beside it', async () => {
    const d = tmp();
    const file = join(d, 'm.gguf');
    expect(runIe(['synth', '--preset', 'tiny', '--format', 'gguf', '--out', file]).code).toBe(0);
    const before = readFileSync(file);
    expect(await interrupted([...BIG, '--format', 'gguf', '--out', file], d)).toBe(130);
    expect(readdirSync(d)).toEqual(['m.gguf']);
    expect(sameBytes(readFileSync(file), before)).toBe(true);
  });
});
