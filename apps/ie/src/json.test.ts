/** `--json` prints one JSON document on stdout and nothing else, however ie is launched. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IE_CLI, REPO_ROOT, runIe } from '@ie/testing';
import { COMMANDS } from './main.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-json-'));
const pnpmAvailable = spawnSync('pnpm', ['--version'], { encoding: 'utf8' }).status === 0;

describe('--json: stdout holds exactly one JSON document', () => {
  const dir = tmp();
  const model = join(dir, 'tiny');
  const policy = join(dir, 'policy.json');
  beforeAll(() => {
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
    // Random weights quantize worse than trained ones: a loose gate, so the run passes and writes.
    const p = JSON.parse(readFileSync(join(REPO_ROOT, 'quant/q4_manifest.json'), 'utf8'));
    p.gate = { min_cosine: 0.9, min_snr_db: 5, max_kl: 1, min_top1: 0.3 };
    writeFileSync(policy, JSON.stringify(p));
  });

  // Every command with a --json flag, with the arguments that make it run (progress and notices left on).
  const RUNS: Record<string, () => string[]> = {
    inspect: () => ['inspect', model, '--json'],
    validate: () => ['validate', model, '--deep', '--json'],
    generate: () => ['generate', model, 'Once upon a time', '-n', '4', '--temperature', '0', '--precision', 'int8w', '--json'],
    embed: () => ['embed', model, 'Once upon a time', '--json'],
    perplexity: () => ['perplexity', model, '-f', join(REPO_ROOT, 'quant/calibration/default.txt'), '-c', '64', '--chunks', '2', '--json'],
    quantize: () => [
      'quantize',
      model,
      '--policy',
      policy,
      '--out',
      join(dir, 'm.json'),
      '--calib',
      join(REPO_ROOT, 'quant/calibration/default.txt'),
      '--json',
    ],
  };

  it('covers every command that has --json', () => {
    expect(Object.keys(RUNS).sort()).toEqual(
      COMMANDS.filter((c) => 'json' in c.flags)
        .map((c) => c.name)
        .sort(),
    );
  });

  it.each(Object.keys(RUNS))('node apps/ie/dist/cli.js %s … --json', (name) => {
    const r = runIe(RUNS[name]());
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out);
    expect(typeof doc).toBe('object');
    if (name === 'generate') {
      expect(doc.tokens).toHaveLength(4);
      expect(r.err).toContain('note:'); // the precision notice went to stderr, not into the JSON
    }
    if (name === 'inspect') expect(doc.tensorCount).toBeGreaterThan(0);
    if (name === 'validate') expect(doc.ok).toBe(true);
    if (name === 'quantize') expect(doc.status).toBe('accepted');
    if (name === 'perplexity') expect([doc.chunks, doc.tokens]).toEqual([2, 62]);
  });

  it('bench prints one JSON object per line', () => {
    const prompts = join(dir, 'p.txt');
    writeFileSync(prompts, 'abc\n');
    const r = runIe(['bench', model, '--prompts', prompts, '--runs', '2', '--warmup', '0', '--max-new', '2']);
    expect(r.code, r.err).toBe(0);
    expect(
      r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).run),
    ).toEqual([1, 2]);
  });

  it.skipIf(!pnpmAvailable)('pnpm -s ie … --json (pnpm without -s prints its banner on stdout first)', () => {
    const r = spawnSync('pnpm', ['-s', 'ie', 'inspect', model, '--json'], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tensorCount).toBeGreaterThan(0);
    expect(IE_CLI.endsWith(join('apps', 'ie', 'dist', 'cli.js'))).toBe(true);
  });
});
