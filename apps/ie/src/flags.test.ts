import { describe, expect, it } from 'vitest';
import { CliError } from './errors.js';
import { attachDashValues, checkValues, flagFacts, flagSpelling, parseArgsOptions, usageLine, type Flags } from './flags.js';

const FLAGS = {
  model: { type: 'string', arg: 'FILE', required: true, description: 'the model' },
  hf: { type: 'string', arg: 'DIR', oneOf: 'source', description: 'a directory' },
  gguf: { type: 'string', arg: 'FILE', oneOf: 'source', description: 'a file' },
  threads: { type: 'number', integer: true, min: 1, max: 64, arg: 'N', short: 't', description: 'threads', engineEnv: 'IE_THREADS' },
  temp: { type: 'number', arg: 'T', default: 0.8, description: 'temperature' },
  runs: { type: 'number', integer: true, min: 1, max: 9, default: 1, env: 'RUNS', arg: 'N', description: 'runs' },
  mode: { type: 'choice', arg: 'MODE', choices: ['a', 'b'], default: 'a', description: 'the mode' },
  stop: { type: 'string', arg: 'TEXT', multiple: true, description: 'stops' },
  json: { type: 'boolean', description: 'as JSON' },
} as const satisfies Flags;

const usage = usageLine(
  'demo',
  [
    { name: 'IN', description: 'input' },
    { name: 'OUT', optional: true, description: 'output' },
  ],
  FLAGS,
);
const check = (parsed: Record<string, string | boolean | string[]>, env: NodeJS.ProcessEnv = {}) =>
  checkValues(FLAGS, { model: 'm', hf: 'd', ...parsed }, env, usage);
const usageError = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CliError);
    expect((e as CliError).code).toBe('CLI_USAGE');
    return (e as Error).message;
  }
  throw new Error('no error');
};

describe('flag definitions', () => {
  it('give parseArgs strings for numbers and choices, with short aliases and multiple', () => {
    expect(parseArgsOptions(FLAGS)).toEqual({
      model: { type: 'string' },
      hf: { type: 'string' },
      gguf: { type: 'string' },
      threads: { type: 'string', short: 't' },
      temp: { type: 'string' },
      runs: { type: 'string' },
      mode: { type: 'string' },
      stop: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    });
  });

  it('generate the usage line: positionals, alternatives, required flags, then [options]', () => {
    expect(usage).toBe('ie demo IN [OUT] (--hf DIR | --gguf FILE) --model FILE [options]');
  });

  it('convert values, apply defaults and the environment, and leave absent flags undefined', () => {
    expect(check({ threads: '4', temp: '0.5', stop: ['x', 'y'], json: true })).toEqual({
      model: 'm',
      hf: 'd',
      threads: 4,
      temp: 0.5,
      runs: 1,
      mode: 'a',
      stop: ['x', 'y'],
      json: true,
    });
    expect(check({}, { RUNS: '3' }).runs).toBe(3);
    expect(check({ runs: '2' }, { RUNS: '3' }).runs).toBe(2); // the flag wins
    // The engine reads IE_THREADS itself: the parser passes nothing.
    expect(check({}, { IE_THREADS: '8' }).threads).toBeUndefined();
  });

  it("reject what the definitions exclude, in ie's messages", () => {
    expect(usageError(() => check({ threads: '0' }))).toBe('--threads must be an integer in 1..64, got "0"');
    expect(usageError(() => check({ threads: '2.5' }))).toBe('--threads must be an integer in 1..64, got "2.5"');
    expect(usageError(() => check({ temp: 'hot' }))).toBe('--temp must be a number, got "hot"');
    expect(usageError(() => check({ mode: 'c' }))).toBe('--mode must be one of a, b, got "c"');
    expect(usageError(() => check({}, { RUNS: 'many' }))).toBe('RUNS must be an integer in 1..9, got "many"');
    expect(usageError(() => checkValues(FLAGS, { hf: 'd' }, {}, usage))).toBe(`--model is required\nusage: ${usage}`);
    expect(usageError(() => checkValues(FLAGS, { model: 'm' }, {}, usage))).toBe(`give one of --hf, --gguf (the source)\nusage: ${usage}`);
    expect(usageError(() => check({ gguf: 'f' }))).toBe(`give only one of --hf, --gguf (the source)\nusage: ${usage}`);
  });

  it("attach a value that begins with '-' to its flag, which parseArgs would refuse as ambiguous", () => {
    // A negative number after a number flag (llama.cpp's `-n -1`), long or short: then checked by range.
    expect(attachDashValues(FLAGS, ['in', '-t', '-1', '--temp', '-0.5', '--runs', '-inf'])).toEqual([
      'in',
      '--threads=-1',
      '--temp=-0.5',
      '--runs=-inf',
    ]);
    expect(usageError(() => check({ threads: '-1' }))).toBe('--threads must be an integer in 1..64, got "-1"');
    // After a text flag, anything that is not one of the flags; never after a boolean or past `--`.
    expect(attachDashValues(FLAGS, ['--stop', '-END-', '--model', '-', '--json', '-x'])).toEqual([
      '--stop=-END-',
      '--model',
      '-',
      '--json',
      '-x',
    ]);
    expect(attachDashValues(FLAGS, ['--stop', '--json', '--stop', '-t'])).toEqual(['--stop', '--json', '--stop', '-t']);
    expect(attachDashValues(FLAGS, ['--temp', '-x', '--', '--temp', '-1'])).toEqual(['--temp', '-x', '--', '--temp', '-1']);
    expect(attachDashValues(FLAGS, ['--temp=-1', '--mode', '-b'])).toEqual(['--temp=-1', '--mode=-b']);
  });

  it('spell themselves for the help table with their facts', () => {
    expect(flagSpelling('threads', FLAGS.threads)).toBe('-t, --threads N');
    expect(flagSpelling('json', FLAGS.json)).toBe('    --json');
    expect(flagFacts(FLAGS.threads)).toEqual(['1..64', 'env IE_THREADS']);
    expect(flagFacts(FLAGS.runs)).toEqual(['1..9', 'default: 1', 'env RUNS']);
    expect(flagFacts(FLAGS.mode)).toEqual(['one of: a, b', 'default: a']);
    expect(flagFacts(FLAGS.stop)).toEqual(['repeatable']);
    expect(flagFacts(FLAGS.json)).toEqual([]);
  });
});
