/**
 * Checked loads through the CLI: a malformed tokenizer is refused by `ie convert` before anything
 * is written, a corrupt tokenizer.json by `ie generate`, NaN weights by `ie validate --deep`, a
 * flipped weight byte by `ie generate --verify` — each one line `ie: … [CODE]`, never a stack trace.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatHeaderJson } from '@ie/format';
import { runIe } from '@ie/testing';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-checked-'));
const ie = (...args: string[]) => runIe(args);

/** One coded line on stderr, no stack. */
function expectCoded(r: { code: number | null; err: string }, exit: number, code: string, text?: RegExp) {
  expect(r.code, r.err).toBe(exit);
  expect(r.err).toMatch(new RegExp(`^ie: .*\\[${code}\\]$`, 'm'));
  expect(r.err).not.toMatch(/^\s+at |SyntaxError|TypeError|internal error/m);
  if (text) expect(r.err).toMatch(text);
}

let hf = '';
let model = '';
beforeAll(() => {
  hf = tmp();
  expect(ie('synth', '--preset', 'tiny', '--format', 'hf', '--seed', '4', '--out-dir', hf).code).toBe(0);
  model = tmp();
  const c = ie('convert', '--hf-dir', hf, '--out-dir', model, '--quiet');
  expect(c.code, c.err).toBe(0);
}, 60_000);

function copyModel(): string {
  const d = tmp();
  for (const f of ['model.ie.json', 'model.ie.bin', 'tokenizer.json']) writeFileSync(join(d, f), readFileSync(join(model, f)));
  return d;
}

describe('ie convert probes the tokenizer before exporting', () => {
  const good = () => JSON.parse(readFileSync(join(hf, 'tokenizer.json'), 'utf8'));
  it.each([
    ['added_tokens null', (j: any) => (j.added_tokens = null)],
    ['merges a number', (j: any) => (j.model.merges = 5)],
    ['merges of numbers', (j: any) => (j.model.merges = [1, 2, 3])],
    ['vocab null', (j: any) => (j.model.vocab = null)],
    ['added_tokens [null]', (j: any) => (j.added_tokens = [null])],
    ['unknown decoder', (j: any) => (j.decoder = { type: 'X' })],
  ])('%s: IE_TOKENIZER_INVALID, nothing written', (_what, mutate) => {
    const j = good();
    mutate(j);
    const tok = join(tmp(), 'tokenizer.json');
    writeFileSync(tok, JSON.stringify(j));
    const out = join(tmp(), 'out');
    const r = ie('convert', '--hf-dir', hf, '--tokenizer', tok, '--out-dir', out, '--quiet');
    expectCoded(r, 3, 'IE_TOKENIZER_INVALID', /tokenizer\.json: /);
    expect(existsSync(join(out, 'model.ie.json'))).toBe(false);
  });

  it('a truncated tokenizer.json is a format error naming the file', () => {
    const tok = join(tmp(), 'tokenizer.json');
    writeFileSync(tok, readFileSync(join(hf, 'tokenizer.json'), 'utf8').slice(0, 300));
    expectCoded(
      ie('convert', '--hf-dir', hf, '--tokenizer', tok, '--out-dir', join(tmp(), 'o'), '--quiet'),
      3,
      'HF_BAD_TOKENIZER',
      /tokenizer\.json.*not valid JSON/,
    );
  });
});

describe('ie generate checks the tokenizer.json it loads', () => {
  it('a bit-flipped tokenizer.json: IE_TOKENIZER_INVALID (sha256), not a SyntaxError', () => {
    const d = copyModel();
    const p = join(d, 'tokenizer.json');
    const b = readFileSync(p);
    b[Math.floor(b.length / 3)] ^= 0x04;
    b[0] ^= 0x20; // '{' -> '[' : JSON.parse would fail
    writeFileSync(p, b);
    expectCoded(ie('generate', d, 'Hello', '--max-tokens', '2'), 3, 'IE_TOKENIZER_INVALID', /hashes to [0-9a-f]{64}/);
  });
});

/** Sets element `index` of tensor `name` (f32) to `value` and gives the tensor its new CRC, so only the values are wrong. */
function poison(dir: string, name: string, index: number, value: number) {
  const hp = join(dir, 'model.ie.json');
  const h = JSON.parse(readFileSync(hp, 'utf8'));
  const t = h.tensors.find((x: { name: string }) => x.name === name);
  expect(t.dtype).toBe('f32');
  const bin = readFileSync(join(dir, 'model.ie.bin'));
  bin.writeFloatLE(value, t.offset + 4 * index);
  writeFileSync(join(dir, 'model.ie.bin'), bin);
  t.crc32 = (crc32(bin.subarray(t.offset, t.offset + t.bytes)) >>> 0).toString(16).padStart(8, '0');
  writeFileSync(hp, formatHeaderJson(h) /* recomputes header_sha256 */);
}

describe('ie validate --deep and ie generate --verify', () => {
  it('validate --deep flags a NaN weight whose CRC is right', () => {
    const d = copyModel();
    poison(d, 'blk.0.ffn_up.weight', 123, Number.NaN);
    expect(ie('validate', d).code).toBe(0);
    const r = ie('validate', d, '--deep', '--quiet');
    expect(r.code).toBe(4);
    expect(r.out).toMatch(/problem: blk\.0\.ffn_up\.weight: element 123 is NaN or infinite.* \[IEBIN_NONFINITE\] \(tensors\[\d+\]\)/);
    const j = JSON.parse(ie('validate', d, '--deep', '--json').out);
    expect(j.problems).toEqual([expect.objectContaining({ code: 'IEBIN_NONFINITE' })]);
  });

  it('generate --verify refuses a flipped weight byte and an Inf weight; plain generate does not read the CRCs', () => {
    const d = copyModel();
    const h = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8'));
    const bin = readFileSync(join(d, 'model.ie.bin'));
    bin[h.tensors[6].offset + 1] ^= 0x01;
    writeFileSync(join(d, 'model.ie.bin'), bin);
    expect(ie('generate', d, 'Hello', '--max-tokens', '2', '--no-echo').code).toBe(0);
    expectCoded(
      ie('generate', d, 'Hello', '--max-tokens', '2', '--verify'),
      4,
      'IE_MODEL_CORRUPT',
      new RegExp(`${h.tensors[6].name.replace(/\./g, '\\.')}: bytes hash to`),
    );
    const d2 = copyModel();
    poison(d2, 'blk.1.attn_q.weight', 0, Number.POSITIVE_INFINITY);
    expectCoded(
      ie('generate', d2, 'Hello', '--max-tokens', '2', '--verify'),
      4,
      'IE_MODEL_CORRUPT',
      /blk\.1\.attn_q\.weight: element 0 is NaN or infinite/,
    );
    const ok = ie('generate', copyModel(), 'Hello', '--max-tokens', '2', '--verify', '--no-echo');
    expect(ok.code, ok.err).toBe(0);
  });
});
