import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IE_CLI, runIe } from '@ie/testing';
import { unescapeStop } from './generate.js';

describe('ie generate: prompts from anywhere, short flags, stop escapes', () => {
  let model = '';
  beforeAll(() => {
    model = mkdtempSync(join(tmpdir(), 'ie-cli-gen-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
  });

  it('--stop takes \\n, \\t, \\r and \\\\ as escapes', () => {
    expect(unescapeStop('\\n\\n')).toBe('\n\n');
    expect(unescapeStop('a\\tb\\r')).toBe('a\tb\r');
    expect(unescapeStop('\\\\n')).toBe('\\n');
    expect(unescapeStop('\\x')).toBe('\\x');
  });

  it('the same greedy tokens from an argument, from standard input ("-") and from --prompt-file; -n, -s, -t work as the long flags', () => {
    const json = (r: { code: number | null; out: string; err: string }) => {
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).tokens as number[];
    };
    const arg = json(runIe(['generate', model, 'Once upon a time', '-n', '5', '-s', '9', '-t', '1', '--temperature', '0', '--json']));
    expect(arg).toHaveLength(5);
    const long = json(
      runIe(['generate', model, 'Once upon a time', '--max-tokens', '5', '--seed', '9', '--threads', '1', '--temperature', '0', '--json']),
    );
    expect(long).toEqual(arg);
    const stdin = spawnSync(process.execPath, [IE_CLI, 'generate', model, '-', '-n', '5', '--temperature', '0', '--json'], {
      input: 'Once upon a time',
      encoding: 'utf8',
    });
    expect(json({ code: stdin.status, out: stdin.stdout, err: stdin.stderr })).toEqual(arg);
    const file = join(model, 'prompt.txt');
    writeFileSync(file, 'Once upon a time');
    expect(json(runIe(['generate', model, '--prompt-file', file, '-n', '5', '--temperature', '0', '--json']))).toEqual(arg);
    const both = runIe(['generate', model, 'x', '--prompt-file', file]);
    expect(both.code).toBe(2);
    expect(both.err).toContain('CLI_USAGE');
    expect(runIe(['generate', model]).code).toBe(2);
  });
});
