import { describe, expect, it } from 'vitest';
import { BYTE_LEVEL_PRE_PATTERNS, byteLevelBpeTokenizerJson } from './byte-level-bpe.js';
import { synthModel } from './synth.js';

const spec = (pieces: string[], pre: string | null = 'gpt2') => ({ pieces, types: pieces.map(() => 1), merges: [], pre });

describe('byteLevelBpeTokenizerJson with names a file controls', () => {
  it('keeps a piece named "__proto__" (or "constructor") as a vocabulary entry of its own', () => {
    const json = byteLevelBpeTokenizerJson(spec(['a', '__proto__', 'constructor', 'toString']));
    const vocab = (json.model as { vocab: Record<string, number> }).vocab;
    expect(Object.entries(vocab)).toEqual([
      ['a', 0],
      ['__proto__', 1],
      ['constructor', 2],
      ['toString', 3],
    ]);
    expect(JSON.parse(JSON.stringify(json)).model.vocab).toEqual(JSON.parse('{"a":0,"__proto__":1,"constructor":2,"toString":3}'));
  });

  it.each(['constructor', '__proto__', 'toString'])('refuses the pre-tokenizer %s (an Object property name, not a pattern)', (pre) => {
    expect(() => byteLevelBpeTokenizerJson(spec(['a'], pre))).toThrow(
      `the byte-level BPE pre-tokenizer "${pre}" is not known; known: ${Object.keys(BYTE_LEVEL_PRE_PATTERNS).join(', ')}`,
    );
  });

  it('synthModel takes its own preset names only', () => {
    expect(() => synthModel('constructor')).toThrow(/^unknown synth preset "constructor"; presets: /);
  });
});
