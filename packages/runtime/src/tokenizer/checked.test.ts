/**
 * Checked loads: a corrupt or malformed tokenizer is one IeRuntimeError IE_TOKENIZER_INVALID
 * naming the file — at Engine.load (tokenizer.json changed after export: truncated, bytes
 * flipped, rewritten with the header's sha256 patched to match) and when a source's tokenizer is
 * built and probed (what ie convert does). Never a raw SyntaxError or TypeError.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportIebin, openHfDir, synthHfTokenizerJson, synthModel, synthVocabulary, writeHfDir, formatHeaderJson } from '@ie/format';
import { Engine } from '../engine.js';
import { IeRuntimeError } from '../errors.js';
import { buildTokenizer } from './index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-tokcheck-'));

/** A tiny model exported from a Hugging Face directory: its tokenizer is a tokenizer.json. */
let model = '';
let good = '';
beforeAll(async () => {
  const hf = tmp();
  await writeHfDir(synthModel('tiny', { seed: 2 }), hf);
  model = tmp();
  const src = await openHfDir(hf);
  await exportIebin(src, model, { converter: 'test' });
  await src.close();
  good = readFileSync(join(model, 'tokenizer.json'), 'utf8');
});

/** A copy of the model whose tokenizer.json is `bytes`; with `rehash`, the header records its size and sha256 (as a malicious or buggy exporter would). */
function withTokenizer(bytes: Buffer | string, rehash: boolean): string {
  const d = tmp();
  for (const f of ['model.ie.json', 'model.ie.bin']) writeFileSync(join(d, f), readFileSync(join(model, f)));
  const b = Buffer.from(bytes);
  writeFileSync(join(d, 'tokenizer.json'), b);
  const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
  // The size is checked at open (IEBIN_BAD_TOKENIZER); keep it equal so the tokenizer check is what fails.
  h.tokenizer.bytes = b.length;
  if (rehash) h.tokenizer.sha256 = createHash('sha256').update(b).digest('hex');
  writeFileSync(join(d, 'model.ie.json'), formatHeaderJson(h) /* recomputes header_sha256 */);
  return d;
}

async function loadError(dir: string): Promise<unknown> {
  try {
    const e = await Engine.load(dir);
    await e.dispose();
    return null;
  } catch (e) {
    return e;
  }
}

/** Deterministic byte flips. */
function flip(s: string, seed: number, n: number): Buffer {
  const b = Buffer.from(s);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[x % b.length] ^= 1 << (x >>> 29);
  }
  return b;
}

const expectInvalid = (e: unknown, file: RegExp) => {
  expect(e).toBeInstanceOf(IeRuntimeError);
  expect((e as IeRuntimeError).code).toBe('IE_TOKENIZER_INVALID');
  expect((e as Error).message).toMatch(file);
  expect((e as Error).message).not.toMatch(/\n|at .*\.js:\d+/);
};

describe('Engine.load checks the tokenizer.json', () => {
  it('loads the intact model', async () => {
    expect(await loadError(model)).toBeNull();
  });

  it.each([1, 2, 3, 4, 5, 6])('a bit-flipped tokenizer.json (seed %i) is refused by its sha256', async (seed) => {
    const e = await loadError(withTokenizer(flip(good, seed, 3), false));
    expectInvalid(e, /tokenizer\.json: hashes to [0-9a-f]{64}, model\.ie\.json says/);
  });

  it.each([
    ['truncated', (s: string) => s.slice(0, Math.floor(s.length / 2)), /is not valid JSON \(at the end \(truncated\)\)/],
    ['bit-flipped braces', (s: string) => s.replace('{', '['), /is not valid JSON/],
    [
      'not UTF-8',
      (s: string) => Buffer.concat([Buffer.from(s.slice(0, 10)), Buffer.from([0xff, 0xfe]), Buffer.from(s.slice(12))]),
      /is not valid UTF-8/,
    ],
    ['an array', () => '[]', /must hold a JSON object/],
    ['no model', (s: string) => JSON.stringify({ ...JSON.parse(s), model: null }), /has no "model" object/],
    ['vocab null', (s: string) => mutate(s, (j) => (j.model.vocab = null)), /the tokenizers library refuses it/],
    ['merges a number', (s: string) => mutate(s, (j) => (j.model.merges = 5)), /the tokenizers library refuses it/],
    ['merges of objects', (s: string) => mutate(s, (j) => (j.model.merges = [{ a: 1 }])), /the tokenizers library refuses it/],
    ['added_tokens null', (s: string) => mutate(s, (j) => (j.added_tokens = null)), /the tokenizers library refuses it/],
    ['added_tokens a string', (s: string) => mutate(s, (j) => (j.added_tokens = 'x')), /has an "added_tokens" member that is not a list/],
    [
      'added_tokens [null]',
      (s: string) => mutate(s, (j) => (j.added_tokens = [null])),
      /added_tokens\[0\] has id undefined, not a token id in 0\.\./,
    ],
    [
      'an added token past the vocabulary',
      (s: string) => mutate(s, (j) => j.added_tokens.push({ id: 99999, content: '<x>', special: true })),
      /added_tokens\[\d+\] \("<x>"\) has id 99999, not a token id in 0\.\.\d+ \(the model's vocabulary\)/,
    ],
    [
      'vocab ids strings',
      (s: string) => mutate(s, (j) => Object.keys(j.model.vocab).forEach((k) => (j.model.vocab[k] = 'x'))),
      /token id of type string|refuses it|fails to encode/,
    ],
    ['vocab an array', (s: string) => mutate(s, (j) => (j.model.vocab = [1, 2])), /decodes .* to no text|refuses it|token id/],
    ['unknown normalizer', (s: string) => mutate(s, (j) => (j.normalizer = { type: 'Weird' })), /the tokenizers library refuses it/],
    ['unknown decoder', (s: string) => mutate(s, (j) => (j.decoder = { type: 'X' })), /the tokenizers library refuses it/],
  ] as const)('%s: IE_TOKENIZER_INVALID even when the header hash matches', async (_what, corrupt, message) => {
    const e = await loadError(withTokenizer(corrupt(good) as string | Buffer, true));
    expectInvalid(e, /tokenizer\.json: /);
    expect((e as Error).message).toMatch(message);
  });
});

function mutate(s: string, f: (j: any) => void): string {
  const j = JSON.parse(s);
  f(j);
  return JSON.stringify(j);
}

describe("buildTokenizer on a source spec (ie convert's probe)", () => {
  const config = { bos_id: 1, eos_id: 2, vocab_size: 512 };
  it('accepts a good tokenizer.json and refuses one whose ids run past the vocabulary', async () => {
    const f = join(tmp(), 'tokenizer.json');
    writeFileSync(f, synthHfTokenizerJson(synthVocabulary(512)));
    const t = await buildTokenizer({ model: 'hf', source: f }, config, { file: f });
    expect(t.decode(t.encode('Hello'))).toContain('Hello');
    const e = await buildTokenizer({ model: 'hf', source: f }, { ...config, vocab_size: 10 }, { file: f }).catch((x) => x);
    expectInvalid(e, /not an integer in 0\.\.9/);
  });

  it('refuses a tokenizer.json whose pre-tokenizer regex could backtrack exponentially, before a prompt hangs on it', async () => {
    const f = join(tmp(), 'tokenizer.json');
    const json = JSON.parse(synthHfTokenizerJson(synthVocabulary(512)));
    json.pre_tokenizer = { type: 'Split', pattern: { Regex: '(a|aa)+$' }, behavior: 'Isolated', invert: false };
    writeFileSync(f, JSON.stringify(json));
    const e = await buildTokenizer({ model: 'hf', source: f }, config, { file: f }).catch((x) => x);
    expectInvalid(e, /regex \("\(a\|aa\)\+\$"\) whose matching time can grow exponentially/);
  });

  it('wraps a missing file and a non-regular file', async () => {
    const e = await buildTokenizer({ model: 'hf', source: '/nonexistent/tokenizer.json' }, config, { file: 'x' }).catch((x) => x);
    expectInvalid(e, /\/nonexistent\/tokenizer\.json: does not exist/);
    const e2 = await buildTokenizer({ model: 'hf', source: '/dev/zero' }, config, { file: 'x' }).catch((x) => x);
    expectInvalid(e2, /is not a regular file/);
  });
});

describe('EngineOptions.verify', () => {
  it("checks the weights' CRCs before running: a flipped weight byte is IE_MODEL_CORRUPT naming the tensor", async () => {
    const d = withTokenizer(good, false);
    await using ok = await Engine.load(d, { verify: true });
    expect(ok.contextLength).toBeGreaterThan(0);
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    const t = h.tensors[4];
    const bin = readFileSync(join(d, 'model.ie.bin'));
    bin[t.offset + 9] ^= 0x10;
    writeFileSync(join(d, 'model.ie.bin'), bin);
    await using plain = await Engine.load(d); // without verify, only the structure is checked
    expect(plain.contextLength).toBeGreaterThan(0);
    const e = await Engine.load(d, { verify: true }).catch((x) => x);
    expect(e).toBeInstanceOf(IeRuntimeError);
    expect(e.code).toBe('IE_MODEL_CORRUPT');
    expect(e.message).toContain(`${t.name}: bytes hash to`);
    await expect(Engine.load(d, { verify: 'yes' as never })).rejects.toMatchObject({ code: 'IE_INVALID_OPTION' });
  });
});
