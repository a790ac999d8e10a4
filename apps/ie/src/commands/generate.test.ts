import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SYNTH_CHAT_TEMPLATE } from '@ie/format';
import { Engine } from '@ie/runtime';
import { IE_CLI, runIe } from '@ie/testing';
import { unescapeStop } from './generate.js';

describe('ie generate: prompts from anywhere, short flags, stop escapes', () => {
  let model = '';
  beforeAll(() => {
    model = mkdtempSync(join(tmpdir(), 'ie-cli-gen-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
  });

  it('the summary line says n/a, never NaN, for the figures of a run that generated nothing', () => {
    const r = runIe(['generate', model, 'Once upon a time', '-n', '0', '-t', '1']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/0 generated \([^,]*, p50 n\/a, p95 n\/a\), TTFT n\/a;/);
    expect(r.err).not.toMatch(/NaN/);
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
    // Without --seed the run draws one and says which: passing it back repeats a sampled run.
    const drawn = runIe(['generate', model, 'Once upon a time', '-n', '8', '-t', '1', '--temperature', '1.5', '--json']);
    const first = JSON.parse(drawn.out) as { tokens: number[]; seed: number };
    expect(Number.isSafeInteger(first.seed)).toBe(true);
    const again = runIe([
      'generate',
      model,
      'Once upon a time',
      '-n',
      '8',
      '-t',
      '1',
      '--temperature',
      '1.5',
      '--json',
      '-s',
      String(first.seed),
    ]);
    expect((JSON.parse(again.out) as { tokens: number[]; seed: number }).tokens).toEqual(first.tokens);
    expect(runIe(['generate', model, 'Once', '-n', '2', '-t', '1', '-s', '77']).err).toMatch(/; seed 77; stop: /);
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

  it("--presence-penalty and --frequency-penalty give the engine's tokens for presencePenalty and frequencyPenalty; a negative one too", async () => {
    const tokens = (args: string[]) => {
      const r = runIe(['generate', model, 'aaa', '-n', '12', '--temperature', '0', '-t', '1', '--json', ...args]);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out).tokens as number[];
    };
    await using e = await Engine.load(model, { threads: 1 });
    for (const [args, o] of [
      [['--frequency-penalty', '1.5'], { frequencyPenalty: 1.5 }],
      [['--presence-penalty', '-2', '--frequency-penalty', '0.5'], { presencePenalty: -2, frequencyPenalty: 0.5 }],
    ] as const)
      expect(tokens([...args]), args.join(' ')).toEqual((await e.complete('aaa', { maxTokens: 12, temperature: 0, ...o })).tokens);
    const far = runIe(['generate', model, 'aaa', '--presence-penalty', '-3']);
    expect([far.code, far.err.trim()]).toEqual([2, 'ie: --presence-penalty must be a number in -2..2, got "-3" [CLI_USAGE]']);
  });
});

describe('ie generate --chat with a chat template', () => {
  let model = '';
  let hf = '';
  beforeAll(() => {
    model = mkdtempSync(join(tmpdir(), 'ie-cli-chat-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '5', '--out-dir', model]).code).toBe(0);
    hf = mkdtempSync(join(tmpdir(), 'ie-cli-chat-hf-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '5', '--format', 'hf', '--out-dir', hf]).code).toBe(0);
  });

  it("writes the prompt as the user's message in the model's template and prints the answer: what engine.chat() gives", async () => {
    const r = runIe(['generate', model, 'Hi there', '--chat', '--system', 'Be brief.', '-n', '6', '--temperature', '0', '--json']);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out);
    await using e = await Engine.load(model);
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hi there' },
    ];
    expect(e.chatPrompt(messages).text).toBe('<|system|>\nBe brief.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n');
    const want = await e.chat(messages, { temperature: 0, maxTokens: 6 });
    expect(out.tokens).toEqual(want.tokens);
    expect(out.final).toBe(want.final);
    expect(out.analysis).toBe('');
    expect(out.stopReason).toBe(want.stopReason);
    expect(out.metrics.promptTokens).toBe(e.chatPrompt(messages).ids.length);
    // Streamed: the answer on stdout; harmony's flags are noted as not applying.
    const text = runIe([
      'generate',
      model,
      'Hi there',
      '--chat',
      '--system',
      'Be brief.',
      '-n',
      '6',
      '--temperature',
      '0',
      '--reasoning',
      'low',
    ]);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toBe(`${want.final}\n`);
    expect(text.err).toContain('ie: note: --reasoning applies to gpt-oss (harmony) models');
  });

  it('ie convert carries the template of a Hugging Face directory; without tokenizer_config.json, --chat is IE_CHAT_NO_TEMPLATE (exit 3)', () => {
    expect(JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8')).chat_template).toBe(SYNTH_CHAT_TEMPLATE);
    const out = mkdtempSync(join(tmpdir(), 'ie-cli-chat-conv-'));
    expect(runIe(['convert', '--hf-dir', hf, '--out-dir', out, '--quiet']).code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'model.ie.json'), 'utf8')).chat.template).toBe(SYNTH_CHAT_TEMPLATE);
    const ok = runIe(['generate', out, 'Hi', '--chat', '-n', '3', '--temperature', '0', '--json']);
    expect(ok.code, ok.err).toBe(0);
    expect(JSON.parse(ok.out).metrics.promptTokens).toBeGreaterThan(5);
    rmSync(join(hf, 'tokenizer_config.json'));
    const bare = mkdtempSync(join(tmpdir(), 'ie-cli-chat-bare-'));
    expect(runIe(['convert', '--hf-dir', hf, '--out-dir', bare, '--quiet']).code).toBe(0);
    const r = runIe(['generate', bare, 'Hi', '--chat']);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/has no chat template .* \[IE_CHAT_NO_TEMPLATE\]/);
  });
});

describe('ie generate --json-schema / --grammar / --json-object: constrained output', () => {
  let model = '';
  let dir = '';
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 8 },
      age: { type: 'integer' },
      pets: { type: 'array', items: { enum: ['cat', 'dog'] }, maxItems: 2 },
    },
    required: ['name', 'age', 'pets'],
  };
  beforeAll(() => {
    model = mkdtempSync(join(tmpdir(), 'ie-cli-structured-'));
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
    dir = mkdtempSync(join(tmpdir(), 'ie-cli-structured-files-'));
    writeFileSync(join(dir, 'person.json'), JSON.stringify(schema));
    writeFileSync(join(dir, 'answer.gbnf'), 'root ::= ("yes" | "no") " " [0-9]{1,3} "."\n');
    writeFileSync(join(dir, 'broken.json'), '{"type": "object",');
    writeFileSync(join(dir, 'minimum.json'), '{"type": "integer", "minimum": 3}');
    writeFileSync(join(dir, 'broken.gbnf'), 'root ::= "yes');
  });

  it('--json-schema FILE: sampled output parses and has the schema’s shape, for several seeds; streamed text is the same', () => {
    for (const seed of ['1', '2', '3']) {
      const r = runIe([
        'generate',
        model,
        'Once upon a time',
        '--json-schema',
        join(dir, 'person.json'),
        '-n',
        '400',
        '-s',
        seed,
        '--json',
      ]);
      expect(r.code, r.err).toBe(0);
      const out = JSON.parse(r.out);
      expect(out.stopReason).toBe('eos');
      const v = JSON.parse(out.text);
      expect(Object.keys(v)).toEqual(['name', 'age', 'pets']);
      expect(typeof v.name === 'string' && [...v.name].length >= 1 && [...v.name].length <= 8).toBe(true);
      expect(Number.isInteger(v.age)).toBe(true);
      expect(v.pets.length <= 2 && v.pets.every((p: string) => p === 'cat' || p === 'dog')).toBe(true);
      if (seed === '1') {
        const streamed = runIe([
          'generate',
          model,
          'Once upon a time',
          '--json-schema',
          join(dir, 'person.json'),
          '-n',
          '400',
          '-s',
          seed,
          '--no-echo',
        ]);
        expect(streamed.code, streamed.err).toBe(0);
        expect(streamed.out).toBe(`${out.text}\n`);
        expect(streamed.err).toContain('stop: eos');
      }
    }
  });

  it('--grammar FILE and --json-object', () => {
    const g = runIe(['generate', model, 'Once', '--grammar', join(dir, 'answer.gbnf'), '-n', '40', '-s', '4', '--json']);
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).text).toMatch(/^(yes|no) \d{1,3}\.$/);
    // Any JSON object: its strings are unbounded, so a random model may still be in one at -n; those that end parse.
    let ended = 0;
    for (const seed of ['1', '2', '3', '4', '5']) {
      const o = runIe(['generate', model, 'Once', '--json-object', '-n', '400', '-s', seed, '--json']);
      expect(o.code, o.err).toBe(0);
      const out = JSON.parse(o.out);
      if (out.stopReason !== 'eos') {
        expect([out.stopReason, out.tokens.length]).toEqual(['length', 400]);
        continue;
      }
      ended++;
      const v = JSON.parse(out.text);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v)).toBe(true);
    }
    expect(ended).toBeGreaterThan(0);
  });

  it('typed errors, before the model loads: unreadable file (2), not JSON / unsupported schema / bad grammar (3), two flags (2)', () => {
    const missing = runIe(['generate', model, 'x', '--json-schema', join(dir, 'nope.json')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--json-schema .*nope\.json: does not exist \[CLI_USAGE\]/);
    const notJson = runIe(['generate', model, 'x', '--json-schema', join(dir, 'broken.json')]);
    expect(notJson.code).toBe(3);
    expect(notJson.err).toMatch(/--json-schema .*broken\.json: schema #: the file is not JSON .*\[IE_SCHEMA_INVALID\]/);
    const minimum = runIe(['generate', model, 'x', '--json-schema', join(dir, 'minimum.json')]);
    expect(minimum.code).toBe(3);
    expect(minimum.err).toMatch(/minimum.*\[IE_SCHEMA_UNSUPPORTED\]/);
    // Refused before the model loads: even a model directory that does not exist is never read.
    const early = runIe(['generate', join(dir, 'no-model'), 'x', '--grammar', join(dir, 'broken.gbnf')]);
    expect(early.code).toBe(3);
    expect(early.err).toMatch(/--grammar .*broken\.gbnf: grammar 1:10: .*\[IE_GRAMMAR_UNTERMINATED\]/);
    expect(early.err).not.toContain('internal error');
    const two = runIe(['generate', model, 'x', '--json-object', '--grammar', join(dir, 'answer.gbnf')]);
    expect(two.code).toBe(2);
    expect(two.err).toContain('give one of --json-schema, --grammar and --json-object, not --grammar and --json-object [CLI_USAGE]');
  });

  it('a flag file is read only if it is a regular file, and a schema that is not JSON is not quoted back', () => {
    writeFileSync(join(dir, 'passwd.json'), 'root:x:0:0:hunter2:/root:/bin/bash\n');
    const quoted = runIe(['generate', model, 'x', '--json-schema', join(dir, 'passwd.json')]);
    expect(quoted.code).toBe(3);
    expect(quoted.err).toContain('passwd.json: schema #: the file is not JSON (syntax error) [IE_SCHEMA_INVALID]');
    expect(quoted.err).not.toContain('hunter2');
    // /dev/zero would be read until the string limit gives out (512 MB), a directory is no file.
    for (const [flag, file, kind] of [
      ['--prompt-file', '/dev/zero', 'a character device'],
      ['--grammar', '/dev/zero', 'a character device'],
      ['--json-schema', dir, 'a directory'],
    ]) {
      const r = runIe(['generate', model, ...(flag === '--prompt-file' ? [] : ['x']), flag, file]);
      expect(r.code, flag).toBe(2);
      expect(r.err.trim()).toBe(`ie: ${flag} ${file}: is not a regular file (${kind}); only regular files are read [CLI_USAGE]`);
    }
  });

  it('--help describes the flags under "structured output"', () => {
    const h = runIe(['generate', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/structured output[\s\S]*--json-schema FILE\s+constrain the output to the JSON schema in FILE/);
    expect(h.out).toMatch(/--grammar FILE\s+constrain the output to the GBNF grammar in FILE/);
    expect(h.out).toMatch(/--json-object\s+constrain the output to a JSON object/);
  });
});
