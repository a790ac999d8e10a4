import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { QuantError } from '../errors.js';
import { PatternSyntaxError, compileGlob, compileRegex } from './glob.js';
import { manifestCalibrationPath, parseManifest, readCalibrationText, readManifest } from './parse.js';

const NAMES = [
  'token_embd.weight',
  'blk.0.attn_q.weight',
  'blk.12.ffn_down.weight',
  'blk.3.ffn_gate_exps.weight',
  'output.weight',
  'blk.1.attn_k.bias',
];

describe('regex patterns: the answers RegExp gives, in linear time', () => {
  it.each([
    'blk\\.\\d+\\.attn_[qk]\\.weight',
    'blk\\.(0|12)\\..*',
    '(?:token_embd|output)\\.weight',
    '^blk\\.[0-9]{1,2}\\.ffn_(gate|up|down)(_exps)?\\.weight$',
    '[^.]+\\.weight',
    'blk\\.\\d{2,}\\..+',
    '.*bias',
    'blk\\.\\w+\\.attn_q\\.weight|output\\.weight',
    'blk\\.\\d+?\\.a.*',
  ])('%s', (re) => {
    const want = new RegExp(`^(?:${re})$`, 'u');
    const got = compileRegex(re);
    for (const n of NAMES) expect(got.test(n), n).toBe(want.test(n));
  });

  it('answers catastrophic patterns at once', () => {
    const name = `blk.0.${'a'.repeat(200)}.weight`;
    const t0 = performance.now();
    for (const re of ['^((.*)*)*x$', '(a+)+b', '(a|a)*b', '(a|aa)+b', '(.*a){20}', `${'.*'.repeat(50)}x`])
      expect(compileRegex(re).test(name), re).toBe(false);
    expect(compileRegex('^((.*)*)*weight$').test(name)).toBe(true);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('refuses what has no linear-time match, saying where', () => {
    for (const [re, what] of [
      ['(a)\\1', /backreference/],
      ['(?=a)a', /lookaround/],
      ['(?<!a)b', /lookaround/],
      ['\\bfoo', /word boundary/],
      ['a{5000}', /repetition past/],
      ['a**', /two quantifiers/],
      ['(ab', /unclosed/],
      ['a$b', /"\$" before its end/],
      ['\\p{L}', /escape/],
    ] as const) {
      expect(() => compileRegex(re), re).toThrow(PatternSyntaxError);
      expect(() => compileRegex(re), re).toThrow(what);
    }
    expect(() => compileRegex('(a{1000}){1000}')).toThrow(/states/);
  });
});

describe('globs in linear time', () => {
  it('a pathological glob is answered at once', () => {
    const name = `blk.0.${'a'.repeat(300)}`;
    const t0 = performance.now();
    expect(compileGlob(`${'**a'.repeat(40)}x`).test(name)).toBe(false);
    expect(compileGlob(`${'*a'.repeat(40)}x`).test(name)).toBe(false);
    expect(compileGlob('blk.*.{attn_*,ffn_*}.weight').test('blk.3.ffn_gate_exps.weight')).toBe(true);
    expect(performance.now() - t0).toBeLessThan(500);
  });

  it('a policy with a catastrophic regex parses and resolves fast', () => {
    const m = parseManifest(JSON.stringify({ kind: 'policy', version: 1, rules: [{ regex: '^((.*)*)*x$', scheme: 'f16' }] }));
    expect(m.kind).toBe('policy');
  });
});

describe('manifest and calibration files', () => {
  const tmp = () => mkdtempSync(join(tmpdir(), 'ie-quant-files-'));

  it('a manifest that is not JSON is reported without quoting it', () => {
    let e: unknown;
    try {
      parseManifest('SECRET=hunter2', 'm.json');
    } catch (x) {
      e = x;
    }
    expect((e as QuantError).code).toBe('QUANT_MANIFEST_INVALID');
    expect((e as Error).message).not.toMatch(/SECRET|hunter2/);
  });

  it('a manifest that is a FIFO or a device is refused at once', async () => {
    const d = tmp();
    if (existsSync('/dev/zero')) await expect(readManifest('/dev/zero')).rejects.toMatchObject({ code: 'QUANT_MANIFEST_INVALID' });
    try {
      execFileSync('mkfifo', [join(d, 'fifo')]);
    } catch {
      return;
    }
    await expect(readManifest(join(d, 'fifo'))).rejects.toThrow(/not a regular file/);
  });

  it("calibration.text resolves under the manifest's directory or the working directory only", async () => {
    const d = tmp();
    mkdirSync(join(d, 'sub'));
    writeFileSync(join(d, 'calib.txt'), 'some text');
    writeFileSync(join(d, 'sub', 'c.txt'), 'some text');
    const manifest = join(d, 'policy.json');
    expect(await manifestCalibrationPath(manifest, 'calib.txt', d)).toBe(join(d, 'calib.txt'));
    expect(await manifestCalibrationPath(manifest, 'sub/c.txt', '/')).toBe(join(d, 'sub', 'c.txt'));
    const other = tmp();
    await expect(manifestCalibrationPath(manifest, '/etc/hostname', other)).rejects.toMatchObject({ code: 'QUANT_CALIBRATION' });
    await expect(manifestCalibrationPath(join(d, 'sub', 'p.json'), '../calib.txt', other)).rejects.toThrow(/outside/);
    // A symlink inside the directory that points out of it is outside too.
    if (existsSync('/proc/self/environ')) {
      symlinkSync('/proc/self/environ', join(d, 'env.txt'));
      await expect(manifestCalibrationPath(manifest, 'env.txt', other)).rejects.toThrow(/outside/);
    }
  });

  it('calibration text is read only from a regular file', async () => {
    const d = tmp();
    writeFileSync(join(d, 'calib.txt'), 'héllo');
    expect(await readCalibrationText(join(d, 'calib.txt'))).toBe('héllo');
    for (const p of ['/dev/zero', '/proc/self/environ'])
      if (existsSync(p)) await expect(readCalibrationText(p)).rejects.toMatchObject({ code: 'QUANT_CALIBRATION' });
    writeFileSync(join(d, 'bin'), Buffer.from([0xff, 0xfe]));
    await expect(readCalibrationText(join(d, 'bin'))).rejects.toThrow(/UTF-8/);
  });
});
