import { describe, expect, it } from 'vitest';
import type { Gpt2TokenizerSpec } from '@ie/format';
import { seededFloats } from '@ie/testing';
import { IeRuntimeError } from '../errors.js';
import { gpt2Tokenizer } from './gpt2.js';

/** GPT-2's byte -> printable character table (the alphabet byte-level BPE pieces are written in). */
function byteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep(b) ? b : 256 + extra++));
}

/** 256 byte pieces, then merged pieces, then two specials (types: 1 normal, 3 control). */
function spec(pre: string | null): Gpt2TokenizerSpec {
  const bytes = byteChars();
  const sp = bytes[32];
  const merges = ['h e', 'l l', 'he ll', 'hell o', `${sp} w`, `${sp}w o`, `${sp}wo r`, `${sp}wor l`, `${sp}worl d`, '1 2', '12 3'];
  const merged = ['he', 'll', 'hell', 'hello', `${sp}w`, `${sp}wo`, `${sp}wor`, `${sp}worl`, `${sp}world`, '12', '123'];
  const pieces = [...bytes, ...merged, '<|start|>', '<|end|>'];
  return { model: 'gpt2', pieces, types: pieces.map((_, i) => (i >= 256 + merged.length ? 3 : 1)), merges, pre, add_bos: false };
}
const id = (s: Gpt2TokenizerSpec, piece: string) => s.pieces.indexOf(piece);

describe('GGUF byte-level BPE (gpt2) tokenizers', () => {
  it('merge by the GGUF merges, keep special tokens whole, and add no BOS unless the file says so', () => {
    const s = spec('gpt-4o');
    const t = gpt2Tokenizer(s, 0, id(s, '<|end|>'));
    const sp = byteChars()[32];
    expect(t.encode('hello world')).toEqual([id(s, 'hello'), id(s, `${sp}world`)]);
    expect(t.encode('<|start|>hello<|end|>')).toEqual([id(s, '<|start|>'), id(s, 'hello'), id(s, '<|end|>')]);
    // o200k's split: a digit run is its own piece, at most 3 digits (1234 -> 123, 4).
    expect(t.encode('1234')).toEqual([id(s, '123'), '4'.charCodeAt(0)]);
    const withBos = gpt2Tokenizer({ ...s, add_bos: true }, 7, 1);
    expect(withBos.encode('hello')[0]).toBe(7);
  });

  it("splits as llama.cpp's pre-tokenizer of each name: its default with none, SmolLM's digits alone, Llama 3's whole pieces first", () => {
    const digits = (pre: string | null) => gpt2Tokenizer(spec(pre), 0, 1).encode('1234123');
    const s = spec('gpt2');
    const [d123, d12] = [id(s, '123'), id(s, '12')];
    const [one, two, three, four] = ['1', '2', '3', '4'].map((c) => c.charCodeAt(0));
    // GPT-2: one digit run, merged as it goes.
    expect(digits('gpt2')).toEqual([d123, four, d123]);
    expect(digits('gpt-2')).toEqual(digits('gpt2'));
    // llama.cpp's default (no name): digit runs cut three at a time before merging: 123 | 412 | 3.
    expect(digits(null)).toEqual([d123, four, d12, three]);
    expect(digits('default')).toEqual(digits(null));
    // SmolLM: every digit alone.
    expect(digits('smollm')).toEqual([one, two, three, four, one, two, three]);
    // Llama 3's family takes a pre-token that is a whole piece before any merge (ignore_merges).
    const withWhole = { ...spec('llama-bpe'), pieces: [...s.pieces, 'xyz'], types: [...s.types, 1] };
    const xyz = withWhole.pieces.length - 1;
    for (const pre of ['llama-bpe', 'llama3', 'llama-v3', 'falcon3'])
      expect(gpt2Tokenizer({ ...withWhole, pre }, 0, 1).encode('xyz'), pre).toEqual([xyz]);
    expect(gpt2Tokenizer({ ...withWhole, pre: 'qwen2' }, 0, 1).encode('xyz')).toEqual([...'xyz'].map((c) => c.charCodeAt(0)));
  });

  it.each(['gpt2', 'gpt-2', 'default', 'smollm', 'llama-bpe', 'llama3', 'smaug-bpe', 'qwen2', 'gpt-4o'])(
    '%s: any text round-trips through encode and decode, byte for byte (400 seeded strings)',
    (pre) => {
      const s = spec(pre === 'default' ? null : pre);
      const t = gpt2Tokenizer(s, 0, 1);
      const r = seededFloats(400 * 24, 11, 1);
      const alphabet = [
        'a',
        'Z',
        ' ',
        '  ',
        '\n',
        '\r\n',
        '\t',
        "'s",
        "'LL",
        '7',
        '123456',
        'é',
        'ß',
        'Ω',
        '中文',
        '😀',
        '\u0301',
        '/',
        '.',
        '!?',
        'hello',
        ' world',
      ];
      for (let n = 0; n < 400; n++) {
        let text = '';
        for (let k = 0; k < 24; k++) text += alphabet[Math.floor(Math.abs(r[n * 24 + k]) * alphabet.length) % alphabet.length];
        const ids = t.encode(text);
        expect(t.decode(ids), JSON.stringify(text)).toBe(text);
      }
    },
  );

  it('streams thousands of tokens in linear time, characters split over byte tokens released whole, the text equal to a whole decode', () => {
    const t = gpt2Tokenizer(spec('gpt-4o'), 0, 1);
    const text = Array.from({ length: 300 }, (_, i) => `hello world ${i} 中文😀 é\n`).join('');
    const ids = t.encode(text);
    expect(ids.length).toBeGreaterThan(4000);
    const d = t.streamDecoder();
    const t0 = performance.now();
    let out = '';
    for (const id of ids) {
      const piece = d.push(id);
      expect(piece.includes('\uFFFD'), 'no half character is released').toBe(false);
      out += piece;
    }
    out += d.flush();
    const ms = performance.now() - t0;
    expect(ms).toBeLessThan(2000);
    expect(out).toBe(text);
    expect(out).toBe(t.decode(ids));
  });

  it('an unknown pre-tokenizer name is a typed error naming the known ones', () => {
    expect(() => gpt2Tokenizer(spec('no-such-pre'), 0, 1)).toThrow(IeRuntimeError);
    expect(() => gpt2Tokenizer(spec('no-such-pre'), 0, 1)).toThrow(/no-such-pre.*gpt-4o/);
    for (const name of ['valueOf', '__proto__', 'constructor'])
      expect(() => gpt2Tokenizer(spec(name), 0, 1), name).toThrow(expect.objectContaining({ code: 'IE_TOKENIZER_UNSUPPORTED' }));
  });
});
